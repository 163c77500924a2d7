// Garbage collection: a finished Abnormal is deleted by its own node's agent once it has been finished
// for its phase's time to live (Succeeded shorter; Failed and Unknown wait for a person, longer), and
// beyond `maxFinished` on the node, the oldest first. Unfinished ones are never touched. Each delete is
// conditional on the object being as read (store.remove), so one changed meanwhile stays until the next
// round. The store answers for this node only (the kube store: its node's label, in trusted namespaces).
import type { Logger } from 'pino';
import { endedAt, isTerminal } from '../api/phase.js';
import type { Abnormal } from '../api/types.generated.js';
import type { AbnormalStore } from '../store/store.js';

export type GarbageOptions = { succeededTTLSeconds: number; failedTTLSeconds: number; maxFinished: number; intervalSeconds: number };

/** What to delete now, oldest first: the expired, then the oldest of the rest beyond maxFinished. */
export function garbageOf(abnormals: readonly Abnormal[], now: number, opts: Omit<GarbageOptions, 'intervalSeconds'>): Abnormal[] {
  const finished = abnormals
    .filter((a) => isTerminal(a.status?.phase))
    .map((abnormal) => {
      // One whose end cannot be told (no conditions, no creation time: a file written by hand) counts as just finished.
      const ended = endedAt(abnormal);
      return { abnormal, ended: Number.isFinite(ended) ? ended : now };
    })
    .sort((a, b) => a.ended - b.ended);
  const ttl = (a: Abnormal) => (a.status?.phase === 'Succeeded' ? opts.succeededTTLSeconds : opts.failedTTLSeconds) * 1000;
  const expired = finished.filter(({ abnormal, ended }) => !(now - ended < ttl(abnormal)));
  const kept = finished.filter((f) => !expired.includes(f));
  const overCap = kept.slice(0, Math.max(0, kept.length - opts.maxFinished));
  return [...expired, ...overCap].sort((a, b) => a.ended - b.ended).map((f) => f.abnormal);
}

export class GarbageCollector {
  /** Abnormals deleted, by phase (for metrics and tests). */
  readonly deleted: Record<string, number> = {};
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(private readonly opts: GarbageOptions & { store: AbnormalStore; log: Logger }) {}

  /** A round now, then one every intervalSeconds. */
  start(): void {
    void this.collect();
    this.timer = setInterval(() => void this.collect(), this.opts.intervalSeconds * 1000);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One round; a round already running is waited for instead. */
  collect(): Promise<void> {
    this.running ??= this.round().finally(() => (this.running = undefined));
    return this.running;
  }

  private async round(): Promise<void> {
    const { store, log } = this.opts;
    try {
      const garbage = garbageOf(await store.listOfNode(), Date.now(), this.opts);
      let deleted = 0;
      for (const abnormal of garbage) {
        if (!(await store.remove(abnormal))) continue; // changed since read: looked at again next round
        const phase = abnormal.status?.phase ?? 'none';
        this.deleted[phase] = (this.deleted[phase] ?? 0) + 1;
        deleted++;
      }
      if (deleted > 0) log.info({ deleted, of: garbage.length }, 'deleted finished Abnormals (gc)');
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'garbage collection failed; trying again next round');
    }
  }
}
