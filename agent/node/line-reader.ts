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
}
