// The work queue: keys of Abnormals that need a look, worked on by at most `concurrency` workers and
// never by two workers at once for the same key. A key added while its worker runs is run once more
// afterwards, so no change is missed. The queue holds each key at most once, so its size is bounded by
// the number of this node's Abnormals, however many times each one changes.
export class WorkQueue<K> {
  private readonly pending = new Set<K>(); // insertion-ordered: first come, first served
  private readonly running = new Set<K>();
  private readonly again = new Set<K>();
  private stopping = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly concurrency: number,
    private readonly work: (key: K) => Promise<void>,
    private readonly onError: (key: K, err: unknown) => void,
  ) {}

  add(key: K): void {
    if (this.stopping) return;
    if (this.running.has(key)) this.again.add(key);
    else this.pending.add(key);
    this.pump();
  }

  get size(): { pending: number; running: number } {
    return { pending: this.pending.size, running: this.running.size };
  }

  /** Take no new work; resolve when the workers in flight have finished. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.pending.clear();
    this.again.clear();
    await this.idle();
  }

  /** Resolves when nothing is pending or running. */
  idle(): Promise<void> {
    if (this.running.size === 0 && this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (!this.stopping && this.running.size < this.concurrency && this.pending.size > 0) {
      const key = this.pending.values().next().value as K;
      this.pending.delete(key);
      this.running.add(key);
      void this.runOne(key);
    }
  }

  private async runOne(key: K): Promise<void> {
    try {
      await this.work(key);
    } catch (err) {
      this.onError(key, err);
    } finally {
      this.running.delete(key);
      if (this.again.delete(key)) this.pending.add(key);
      this.pump();
      if (this.running.size === 0 && (this.pending.size === 0 || this.stopping)) {
        for (const resolve of this.idleWaiters.splice(0)) resolve();
      }
    }
  }
}
