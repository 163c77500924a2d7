// The cluster-wide recovery budget (kube store): at most `maxNodes` nodes recovering at once. The slots
// are a ConfigMap in the agent's namespace whose annotation holds {node: expiry}; every change is a
// compare-and-swap on its resourceVersion, so two nodes never take the last slot together, and a
// holder that vanishes loses its slot when its TTL runs out.
import { ApiException, CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import type { RecoveryBudget } from './rails.js';

const HOLDERS = 'nodemedic.io/recovering-nodes';

export type ClusterBudgetOptions = { kc: KubeConfig; namespace: string; name: string; nodeName: string; maxNodes: number; ttlSeconds: number; now?: () => number };

export class ClusterBudget implements RecoveryBudget {
  private readonly core: CoreV1Api;
  private readonly now: () => number;
  /** This node's recoveries in flight: the node holds one slot however many it runs. */
  private held = 0;

  constructor(private readonly opts: ClusterBudgetOptions) {
    this.core = opts.kc.makeApiClient(CoreV1Api);
    this.now = opts.now ?? Date.now;
  }

  async take(): Promise<boolean> {
    const taken = await this.update((holders) => {
      if (!(this.opts.nodeName in holders) && Object.keys(holders).length >= this.opts.maxNodes) return false;
      holders[this.opts.nodeName] = this.now() + this.opts.ttlSeconds * 1000; // taken, or renewed
      return true;
    });
    if (taken) this.held++;
    return taken;
  }

  async give(): Promise<void> {
    this.held = Math.max(0, this.held - 1);
    if (this.held > 0) return; // another recovery of this node still acts
    await this.update((holders) => {
      delete holders[this.opts.nodeName];
      return true;
    });
  }

  /** Read, prune expired holders, change, write back with CAS; again on a conflict. */
  private async update(change: (holders: Record<string, number>) => boolean): Promise<boolean> {
    const { namespace, name } = this.opts;
    for (let attempt = 0; attempt < 5; attempt++) {
      let map: V1ConfigMap | undefined;
      try {
        map = await this.core.readNamespacedConfigMap({ namespace, name });
      } catch (err) {
        if (!(err instanceof ApiException && err.code === 404)) throw err;
      }
      const holders = parseHolders(map?.metadata?.annotations?.[HOLDERS]);
      for (const [node, expires] of Object.entries(holders)) if (expires <= this.now()) delete holders[node];
      if (!change(holders)) return false;
      const annotations = { ...map?.metadata?.annotations, [HOLDERS]: JSON.stringify(holders) };
      try {
        if (map) await this.core.replaceNamespacedConfigMap({ namespace, name, body: { ...map, metadata: { ...map.metadata, annotations } } });
        else await this.core.createNamespacedConfigMap({ namespace, body: { metadata: { name, annotations } } });
        return true;
      } catch (err) {
        if (err instanceof ApiException && (err.code === 409 || err.code === 422)) continue; // someone else changed it first
        throw err;
      }
    }
    return false;
  }
}

function parseHolders(text: string | undefined): Record<string, number> {
  try {
    const parsed = JSON.parse(text ?? '{}') as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, number>) : {};
  } catch {
    return {}; // unreadable: treated as free; the next write puts it right
  }
}
