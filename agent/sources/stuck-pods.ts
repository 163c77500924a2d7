// Stuck pods: a pod on this node still there `marginSeconds` after its deletion deadline becomes an
// Abnormal naming the pod — the entry point of the shim-deadlock case. The deadline is the pod's
// deletionTimestamp, which the apiserver sets to the moment its grace period ends. The agent watches
// only the pods of its own node (a field selector on spec.nodeName), so its traffic stays flat as the
// cluster grows.
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Reason } from '../api/reasons.js';
import type { KubeClient } from '../kube/client.js';
import { Informer, keepWatching } from '../kube/informer.js';
import type { Symptom, SymptomSource } from './source.js';

export type StuckPodOptions = { client: KubeClient; nodeName: string; marginSeconds: number; checkSeconds: number; log: Logger };

export class StuckPodSource implements SymptomSource {
  readonly name = 'stuck pods';
  private informer?: Informer<V1Pod>;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  /** Pods already reported (by uid), so a stuck pod is one symptom, not one per check. */
  private readonly reported = new Set<string>();

  constructor(private readonly opts: StuckPodOptions) {}

  async start(emit: (symptom: Symptom) => void): Promise<void> {
    const fieldSelector = `spec.nodeName=${this.opts.nodeName}`;
    const informer = new Informer<V1Pod>(this.opts.client, '/api/v1/pods', { fieldSelector });
    this.informer = informer;
    informer.on('delete', (pod) => this.reported.delete(pod.metadata?.uid ?? ''));
    // Not awaited: a watch that cannot start yet (the apiserver away, a permission missing) is retried
    // with backoff and logged, and must not hold up the agent's other sources.
    void keepWatching(informer, `pods?fieldSelector=${fieldSelector}`, this.opts.log, () => this.stopped);
    this.timer = setInterval(() => this.check(emit), this.opts.checkSeconds * 1000);
    this.opts.log.info({ node: this.opts.nodeName, marginSeconds: this.opts.marginSeconds }, 'watching this node\'s pods for ones stuck terminating');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.informer?.stop();
  }

  /** Checks made so far (tests wait on it). */
  checks = 0;

  private check(emit: (symptom: Symptom) => void): void {
    this.checks++;
    const now = Date.now();
    for (const pod of this.informer?.list() ?? []) {
      const meta = pod.metadata ?? {};
      if (!meta.deletionTimestamp || !meta.uid || this.reported.has(meta.uid)) continue;
      const deadline = new Date(meta.deletionTimestamp).getTime();
      const overdueSeconds = Math.round((now - deadline) / 1000);
      if (overdueSeconds < this.opts.marginSeconds) continue;
      this.reported.add(meta.uid);
      emit({
        source: 'Custom',
        reason: Reason.PodStuckTerminating,
        subject: `Pod ${meta.namespace}/${meta.name} ${meta.uid}`,
        detail: {
          context: {
            pod: {
              namespace: meta.namespace, name: meta.name, uid: meta.uid,
              deletionTimestamp: new Date(meta.deletionTimestamp).toISOString(),
              deletionGracePeriodSeconds: meta.deletionGracePeriodSeconds,
              overdueSeconds,
              finalizers: meta.finalizers ?? [],
              containers: (pod.status?.containerStatuses ?? []).map((c) => ({ name: c.name, containerID: c.containerID, ready: c.ready })),
            },
          },
        },
        seenAt: new Date(now),
      });
    }
  }
}
