// Kubernetes events as symptoms. Warning events that concern a node — its Node object, or a pod bound
// to it — become Abnormals for that node.
//
// Keeping each agent's traffic flat: no agent can ask the apiserver for "events about pods on my node"
// (events cannot be selected by the node of their object), and every agent watching every Warning
// event would multiply the cluster's event traffic by its node count. So one agent at a time watches
// the Warning events of the whole cluster, as a cluster-wide event exporter would, and makes the
// Abnormals for every node; the others watch nothing. Which agent is chosen by a lock with a time to
// live — a coordination.k8s.io Lease in the agent's namespace (holder, renew time, duration), changed by
// compare-and-swap through agent/kube/lease.ts and renewed every third of its duration: if its holder
// vanishes, the lease expires and another agent takes over — a lock held forever by a dead node cannot
// happen.
import type { CoreV1Event, V1Lease, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { EVENT_COMPONENT } from '../api/crds.js';
import { seg, type KubeClient, type KubeList } from '../kube/client.js';
import { resumingWatch } from '../kube/informer.js';
import { LeaseRecord, microTime } from '../kube/lease.js';
import type { Symptom, SymptomSource } from './source.js';

export type EventSourceOptions = {
  client: KubeClient;
  nodeName: string;
  /** The lock: a Lease in the agent's namespace. */
  lockNamespace: string;
  lockName: string;
  /** Reasons to take; empty: all Warning events. */
  includeReasons: readonly string[];
  /** Reasons never to take. */
  excludeReasons: readonly string[];
  lockTTLSeconds: number;
  log: Logger;
};

/** Whether a lease is held by someone at `now`: a holder, renewed less than its duration ago. */
function heldAt(lease: V1Lease, now: number): string | undefined {
  const { holderIdentity, renewTime, leaseDurationSeconds } = lease.spec ?? {};
  const renewed = renewTime ? new Date(renewTime).getTime() : NaN;
  return holderIdentity && Number.isFinite(renewed) && now - renewed <= (leaseDurationSeconds ?? 0) * 1000 ? holderIdentity : undefined;
}

export class EventSource implements SymptomSource {
  readonly name = 'kubernetes events';
  private readonly lock: LeaseRecord;
  private timer?: NodeJS.Timeout;
  private watching?: { stop(): void };
  /** True from the moment the watch runs (its list's resourceVersion taken) until it stops: every Warning event made since reaches it. */
  streaming = false;
  private stopped = false;
  /** pod uid → node name, so each event costs at most one pod read. */
  private readonly podNodes = new Map<string, string | undefined>();
  private emit: (symptom: Symptom) => void = () => {};
  isLeader = false;

  constructor(private readonly opts: EventSourceOptions) {
    this.lock = new LeaseRecord(opts.client, opts.lockNamespace, opts.lockName);
  }

  async start(emit: (symptom: Symptom) => void): Promise<void> {
    this.emit = emit;
    const renewMs = (this.opts.lockTTLSeconds / 3) * 1000;
    const tick = () => void this.holdLock().catch((err) => this.opts.log.warn({ err: (err as Error).message }, 'event watcher lock: could not check it'));
    tick();
    this.timer = setInterval(tick, renewMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.watching?.stop();
    if (this.isLeader) await this.release().catch(() => {});
  }

  /** Take the lock if it is free or expired, renew it if ours; start or stop watching to match. */
  private async holdLock(): Promise<void> {
    if (this.stopped) return;
    const now = new Date();
    // Two tries: the first decides on the apiserver's cached copy; after a conflict, the second on the latest
    // (where another agent that took or renewed it first shows).
    const held = await this.lock.update((lease) => {
      const holder = heldAt(lease, now.getTime());
      if (holder && holder !== this.opts.nodeName) return undefined;
      const taking = holder !== this.opts.nodeName;
      return {
        ...lease,
        spec: {
          ...lease.spec, holderIdentity: this.opts.nodeName, leaseDurationSeconds: this.opts.lockTTLSeconds, renewTime: microTime(now.getTime()) as unknown as Date,
          ...(taking ? { acquireTime: microTime(now.getTime()) as unknown as Date, leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 } : {}),
        },
      };
    }, 2);
    if (!held) return this.follow();
    if (!this.isLeader) {
      this.isLeader = true;
      this.opts.log.info({ node: this.opts.nodeName }, 'this agent now watches the cluster\'s Warning events');
      await this.watch();
    }
  }

  private follow(): void {
    if (!this.isLeader) return;
    this.isLeader = false;
    this.streaming = false;
    this.watching?.stop();
    this.opts.log.info('another agent now watches the cluster\'s Warning events');
  }

  /** Expire the lock at once if it is ours: another agent takes over at its next check instead of waiting out the TTL. */
  private async release(): Promise<void> {
    await this.lock.update((lease) => (lease.spec?.holderIdentity === this.opts.nodeName
      ? { ...lease, spec: { ...lease.spec, holderIdentity: undefined, renewTime: undefined } }
      : undefined), 2);
  }

  /**
   * Watch Warning events from now on (what happened before is history, as for the logs), resumed
   * across the apiserver's timeouts (resumingWatch); when it fails, the next lock check starts afresh.
   */
  private async watch(): Promise<void> {
    const list = await this.opts.client.request<KubeList<CoreV1Event>>('GET', '/api/v1/events', { query: { fieldSelector: 'type=Warning', limit: 1 } });
    const watching = await resumingWatch<CoreV1Event>(this.opts.client, '/api/v1/events', {
      query: { fieldSelector: 'type=Warning' }, resourceVersion: list.metadata?.resourceVersion ?? '',
      onEvent: (type, event) => {
        if (type === 'ADDED' || type === 'MODIFIED') void this.onEvent(event).catch((err) => this.opts.log.warn({ err: (err as Error).message }, 'could not handle an event'));
      },
      onEnd: (err) => {
        if (this.stopped || !this.isLeader) return;
        this.streaming = false;
        this.opts.log.warn({ err: (err as Error).message }, 'event watch failed; watching again');
        this.isLeader = false; // the next lock check starts a new watch
      },
    });
    if (this.stopped || !this.isLeader) return watching.stop(); // stopped, or the lock lost, while the watch started
    this.watching = watching;
    this.streaming = true;
  }

  private async onEvent(event: CoreV1Event): Promise<void> {
    // The agents' own Warnings (on a Node, for each Abnormal from a temporary rule) tell of Abnormals
    // that exist already: taken, each would make a second one (the fleet made 189 for 100 symptoms).
    if (event.source?.component === EVENT_COMPONENT || event.reportingComponent === EVENT_COMPONENT) return;
    const reason = event.reason ?? '';
    if (this.opts.excludeReasons.includes(reason)) return;
    if (this.opts.includeReasons.length > 0 && !this.opts.includeReasons.includes(reason)) return;
    const object = event.involvedObject;
    const node = object.kind === 'Node' ? object.name : object.kind === 'Pod' ? await this.nodeOfPod(object.namespace!, object.name!, object.uid) : undefined;
    if (!node) return;
    this.emit({
      source: 'KubernetesEvent',
      nodeName: node,
      reason: /^[A-Za-z][A-Za-z0-9]*$/.test(reason) ? reason : 'KubernetesEvent',
      subject: `${object.kind} ${object.namespace ?? ''}/${object.name} ${object.uid ?? ''}`,
      detail: {
        kubernetesEvent: {
          reason, message: event.message, type: event.type, count: event.count,
          involvedObject: { kind: object.kind, namespace: object.namespace, name: object.name, uid: object.uid },
          source: event.source, firstTimestamp: event.firstTimestamp, lastTimestamp: event.lastTimestamp,
          metadata: { namespace: event.metadata?.namespace, name: event.metadata?.name },
        },
      },
      seenAt: new Date(),
    });
  }

  private async nodeOfPod(namespace: string, name: string, uid: string | undefined): Promise<string | undefined> {
    if (uid && this.podNodes.has(uid)) return this.podNodes.get(uid);
    const node = await this.opts.client.get<V1Pod>(`/api/v1/namespaces/${seg(namespace)}/pods/${seg(name)}`).then((pod) => pod?.spec?.nodeName, () => undefined);
    if (uid && node) {
      // Bound pods do not move; a pod not yet scheduled is asked about again at its next event.
      if (this.podNodes.size > 50_000) this.podNodes.clear();
      this.podNodes.set(uid, node);
    }
    return node;
  }
}
