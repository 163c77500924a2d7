// The kube backend's Events: core/v1 Events about the Abnormal, so `kubectl describe ab` tells its story,
// and about the Node (`kubectl describe node`).
// In order: each Event carries eventTime (microseconds) beside the second-precision timestamps, and is
// named as client-go names them, <object>.<hex nanoseconds>, so the apiserver lists an object's Events
// in the order they happened (kubectl sorts by lastTimestamp only; Events within one second keep the
// list's order). The same Event again (same type, reason and message) is counted on the first one, as
// its series, rather than written anew.
import type { Logger } from 'pino';
import { EVENT_COMPONENT, GROUP, VERSION } from '../api/crds.js';
import type { Abnormal } from '../api/types.generated.js';
import { apiStatus, seg, type KubeClient } from '../kube/client.js';
import { microTime } from '../kube/lease.js';
import type { EventRecorder, EventType } from './store.js';

type InvolvedObject = { apiVersion: string; kind: string; namespace?: string; name?: string; uid?: string; resourceVersion?: string };

/** Repeats remembered at most (the oldest forgotten first): each is one Event's name and count. */
const MAX_REMEMBERED = 1000;
/** An Event name's longest part taken from the Abnormal's name: with "." and 16 hex digits, at most 253. */
const NAME_PART = 253 - 17;

export class KubeEventRecorder implements EventRecorder {
  /** Events written (for the figures in docs/). */
  written = 0;
  private readonly repeats = new Map<string, { name: string; namespace: string; count: number }>();
  private lastNanos = 0n;

  constructor(private readonly opts: { client: KubeClient; nodeName: string; log: Logger }) {}

  async recordEvent(abnormal: Abnormal, type: EventType, reason: string, message: string): Promise<void> {
    const { namespace, name, uid, resourceVersion } = abnormal.metadata ?? {};
    await this.record({ apiVersion: `${GROUP}/${VERSION}`, kind: 'Abnormal', namespace, name, uid, resourceVersion }, namespace!, type, reason, message, true);
  }

  /**
   * An Event about this node, as the kubelet and node-problem-detector write them: in namespace
   * default, the Node named with its name as uid (which `kubectl describe node` looks for), and without
   * eventTime, which the apiserver accepts for a cluster-scoped object only in kube-system.
   */
  async recordNodeEvent(type: EventType, reason: string, message: string): Promise<void> {
    const name = this.opts.nodeName;
    await this.record({ apiVersion: 'v1', kind: 'Node', name, uid: name }, 'default', type, reason, message, false);
  }

  /** `micro`: with eventTime and series (the order kept to the microsecond). */
  private async record(involved: InvolvedObject, namespace: string, type: EventType, reason: string, message: string, micro: boolean): Promise<void> {
    const now = Date.now();
    const text = message.slice(0, 1024);
    const key = `${involved.kind}\n${involved.uid}\n${type}\n${reason}\n${text}`;
    this.written++;
    try {
      const repeat = this.repeats.get(key);
      if (repeat && (await this.countAgain(repeat, now, micro))) return;
      const eventName = `${involved.name!.slice(0, NAME_PART)}.${this.nanos(now).toString(16)}`;
      await this.opts.client.request('POST', `/api/v1/namespaces/${seg(namespace)}/events`, {
        body: {
          metadata: { name: eventName, namespace },
          involvedObject: involved,
          type, reason, message: text,
          source: { component: EVENT_COMPONENT, host: this.opts.nodeName },
          firstTimestamp: new Date(now), lastTimestamp: new Date(now), count: 1,
          ...(micro ? { eventTime: microTime(now), action: reason.slice(0, 128), reportingComponent: EVENT_COMPONENT, reportingInstance: this.opts.nodeName.slice(0, 128) } : {}),
        },
      });
      this.repeats.delete(key);
      this.repeats.set(key, { name: eventName, namespace, count: 1 });
      if (this.repeats.size > MAX_REMEMBERED) this.repeats.delete(this.repeats.keys().next().value!);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message, about: `${involved.kind} ${involved.namespace ? `${involved.namespace}/` : ''}${involved.name}`, reason }, 'could not record an event');
    }
  }

  /** Counts a repeat on its first Event; false when that Event is gone (Events expire): write a new one. */
  private async countAgain(repeat: { name: string; namespace: string; count: number }, now: number, micro: boolean): Promise<boolean> {
    try {
      await this.opts.client.request('PATCH', `/api/v1/namespaces/${seg(repeat.namespace)}/events/${seg(repeat.name)}`, {
        contentType: 'application/merge-patch+json',
        body: { count: repeat.count + 1, lastTimestamp: new Date(now), ...(micro ? { series: { count: repeat.count + 1, lastObservedTime: microTime(now) } } : {}) },
      });
      repeat.count++;
      return true;
    } catch (err) {
      if (apiStatus(err) === 404) return false;
      throw err;
    }
  }

  /** Nanoseconds since the epoch, strictly increasing: two Events in one millisecond keep their order. */
  private nanos(nowMs: number): bigint {
    const nanos = BigInt(nowMs) * 1_000_000n;
    this.lastNanos = nanos > this.lastNanos ? nanos : this.lastNanos + 1n;
    return this.lastNanos;
  }
}
