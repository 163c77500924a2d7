// The kube backend's Events: core/v1 Events about the Abnormal, so `kubectl describe ab` tells its story.
import type { Logger } from 'pino';
import { GROUP, VERSION } from '../api/crds.js';
import { keyOf } from '../api/kinds.js';
import type { Abnormal } from '../api/types.generated.js';
import { seg, type KubeClient } from '../kube/client.js';
import type { EventRecorder, EventType } from './store.js';

export class KubeEventRecorder implements EventRecorder {
  /** Events written (for the figures in the README). */
  written = 0;
  constructor(private readonly opts: { client: KubeClient; nodeName: string; log: Logger }) {}

  async recordEvent(abnormal: Abnormal, type: EventType, reason: string, message: string): Promise<void> {
    const { namespace, name, uid, resourceVersion } = abnormal.metadata ?? {};
    const now = new Date();
    this.written++;
    try {
      await this.opts.client.request('POST', `/api/v1/namespaces/${seg(namespace!)}/events`, {
        body: {
          metadata: { generateName: `${name}.`, namespace },
          involvedObject: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Abnormal', namespace, name, uid, resourceVersion },
          type, reason, message: message.slice(0, 1024),
          source: { component: 'nodemedic', host: this.opts.nodeName },
          firstTimestamp: now, lastTimestamp: now, count: 1,
          reportingComponent: 'nodemedic', reportingInstance: this.opts.nodeName,
        },
      });
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message, abnormal: keyOf(abnormal), reason }, 'could not record an event');
    }
  }
}
