// Work that must not overlap with itself — saving one position, writing one file — taking turns: each
// piece starts once the one before has ended (whether it succeeded or not).
export class Turns {
  private last: Promise<unknown> = Promise.resolve();

  /** Runs `work` after every piece handed in before it; resolves or rejects as it does. */
  run<T>(work: () => Promise<T>): Promise<T> {
    const next = this.last.then(work, work);
    this.last = next.catch(() => {});
    return next;
  }
}
