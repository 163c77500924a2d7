// Retrying what fails for reasons outside the agent (an apiserver restart, journalctl exiting): wait
// 0.5 s, doubling to 30 s, and start short again once the thing has run well. One policy for every
// watch and follower, so an outage costs each agent a handful of calls, not a storm.
export class Backoff {
  private delay: number;

  constructor(
    private readonly initialMs = 500,
    private readonly maxMs = 30_000,
  ) {
    this.delay = initialMs;
  }

  /** The wait before the next try; each call doubles the one after, up to the maximum. */
  next(): number {
    const wait = this.delay;
    this.delay = Math.min(this.delay * 2, this.maxMs);
    return wait;
  }

  /** It worked: the next failure starts again from the shortest wait. */
  reset(): void {
    this.delay = this.initialMs;
  }

  /** The next wait, without taking it (for log lines). */
  get peek(): number {
    return this.delay;
  }

  /** Resolves after the next wait, or at once when `signal` aborts. */
  wait(signal?: AbortSignal): Promise<void> {
    const ms = this.next();
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
