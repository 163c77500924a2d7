// What every log follower on the node looks like — the kernel log, a file, the journal: started with a
// place to put lines, stopped. Log sources match rules on the lines; the goroutine-dump collector reads
// a shim's dump from containerd's log through the same followers.
export interface LineReader {
  /** Where the lines come from, as an Abnormal's spec.log.filePath shows it. */
  readonly where: string;
  /** Lines that were lost before they could be read (the kernel overwrote them), if the reader can tell. */
  readonly lost?: number;
  /** Resolves once following has begun: every line logged from then on reaches onLine. */
  start(onLine: (line: string) => void): Promise<void>;
  stop(): Promise<void>;
  /**
   * Lines in which `sieve` (a RegExp with the g flag) finds nothing may be passed over without reaching
   * onLine; undefined hands on every line again. Optional: a reader that gets whole records one at a
   * time (the kernel log, the journal) gains nothing from it.
   */
  passOver?(sieve: RegExp | undefined): void;
}

/**
 * How a reader that keeps its position (in the state directory) keeps it in step with the symptom
 * journal, so that a restart neither loses nor repeats what was read: the position is saved only
 * after the journal has what was read up to it, and as soon as it has.
 */
export type PositionSync = {
  /** Awaited before each position is saved: what was read up to there must be on disk first. */
  beforeSave: () => Promise<void>;
  /**
   * Registers the reader's save, called each time the journal has just taken what was read: the
   * position follows within milliseconds, not at the next periodic save, so an agent killed in
   * between does not read those lines again (and count their symptoms twice).
   */
  onJournaled: (save: () => Promise<void>) => void;
};
