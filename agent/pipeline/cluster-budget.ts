// The cluster-wide recovery budget (kube store): at most `maxNodes` nodes recovering at once. The slots
// are an annotation {node: expiry} on a Lease in the agent's namespace, changed by compare-and-swap
// (agent/kube/lease.ts), so two nodes never take the last slot together, and a holder that vanishes
// loses its slot when its TTL runs out.
import type { KubeClient } from '../kube/client.js';
import { LeaseRecord } from '../kube/lease.js';
import type { RecoveryBudget } from './rails.js';

const HOLDERS = 'nodemedic.io/recovering-nodes';

export type ClusterBudgetOptions = { client: KubeClient; namespace: string; name: string; nodeName: string; maxNodes: number; ttlSeconds: number; now?: () => number };

export class ClusterBudget implements RecoveryBudget {
  private readonly record: LeaseRecord;
  private readonly now: () => number;
  /** This node's recoveries in flight: the node holds one slot however many it runs. */
  private held = 0;

  constructor(private readonly opts: ClusterBudgetOptions) {
    this.record = new LeaseRecord(opts.client, opts.namespace, opts.name);
    this.now = opts.now ?? Date.now;
  }

  async take(): Promise<boolean> {
    const taken = await this.change((holders) => {
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
    await this.change((holders) => {
      delete holders[this.opts.nodeName];
      return true;
    });
  }

  /** The holders, expired ones pruned, through `change`; written back if it says so. */
  private change(change: (holders: Record<string, number>) => boolean): Promise<boolean> {
    return this.record.update((lease) => {
      const holders = parseHolders(lease.metadata?.annotations?.[HOLDERS]);
      for (const [node, expires] of Object.entries(holders)) if (expires <= this.now()) delete holders[node];
      if (!change(holders)) return undefined;
      return { ...lease, metadata: { ...lease.metadata, annotations: { ...lease.metadata?.annotations, [HOLDERS]: JSON.stringify(holders) } } };
    });
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
