// A small shared record kept in one coordination.k8s.io Lease — the Kubernetes convention for a lock
// with a holder and a duration — changed by compare-and-swap: read it, decide, write it back with the
// resourceVersion that was read. Two agents deciding at once cannot both win: the second write is
// refused (409) and that agent reads and decides again. The event watcher's lock (the Lease's holder
// and renew time) and the cluster-wide recovery budget (its holders, in an annotation) are such records.
// The agent may get and update only the Leases its Role names (resourceNames): they are shipped in
// manifests/rbac/agent.yaml; one that is missing is created where that is allowed.
import type { V1Lease } from '@kubernetes/client-node';
import { apiStatus, seg, type KubeClient } from './client.js';

/** A Lease's time (metav1.MicroTime: RFC 3339 with exactly six fractional digits). */
export const microTime = (ms: number): string => new Date(ms).toISOString().replace(/Z$/, '000Z');

export class LeaseRecord {
  constructor(
    private readonly client: KubeClient,
    readonly namespace: string,
    readonly name: string,
  ) {}

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${seg(this.namespace)}/leases`;
  }

  /** The Lease as stored now (an empty one when it does not exist). */
  async read(): Promise<V1Lease> {
    return (await this.get()) ?? { metadata: { name: this.name, namespace: this.namespace }, spec: {} };
  }

  /**
   * `decide` gets the stored Lease and returns it as it should be, or undefined to write nothing.
   * Resolves true once a write of its decision succeeded; false when it decided to write nothing, or
   * when another writer won every one of `attempts` tries.
   */
  async update(decide: (current: V1Lease) => V1Lease | undefined, attempts = 5): Promise<boolean> {
    for (let attempt = 0; attempt < attempts; attempt++) {
      // The first read from the apiserver's cache (resourceVersion=0: no etcd read; the event watcher's
      // followers check every few seconds on every node); a stale copy only makes the write below fail
      // with a conflict, and the tries after a conflict read the latest.
      const stored = await this.get(attempt === 0);
      const next = decide(stored ?? { metadata: { name: this.name, namespace: this.namespace }, spec: {} });
      if (!next) return false;
      try {
        if (stored) await this.client.request('PUT', `${this.path}/${seg(this.name)}`, { body: next });
        else await this.client.request('POST', this.path, { body: { ...next, metadata: { name: this.name, namespace: this.namespace, annotations: next.metadata?.annotations } } });
        return true;
      } catch (err) {
        // Another writer came first (409), or the object went or changed meanwhile (404, 422): again.
        if (![409, 404, 422].includes(apiStatus(err) ?? 0)) throw err;
      }
    }
    return false;
  }

  private get(cached = false): Promise<V1Lease | undefined> {
    return this.client.get<V1Lease>(`${this.path}/${seg(this.name)}`, cached ? { resourceVersion: '0' } : undefined);
  }
}
