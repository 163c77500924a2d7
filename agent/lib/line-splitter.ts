// Text arriving in chunks, split into lines — with a limit: a line longer than `maxLength` is handed on
// cut (with a note saying so) and the rest of it, up to its newline, is skipped. So a writer that never
// ends its line costs bounded memory and work, however much it writes.
//
// With a sieve (a global expression of the literals every rule needs, set by the log source), the
// lines holding none of them are passed over inside the chunk: one search of the whole chunk instead
// of a string and a test per line. On a busy log nearly every line is such a line, and cutting each
// out only to drop it was most of the agent's work and garbage (docs/benchmarks.md).
export class LineSplitter {
  private partial = '';
  /** Inside a line already cut: what follows until its newline is skipped. */
  private skipping = false;
  /** Lines handed on cut. */
  cut = 0;
  /**
   * When set (a RegExp with the g flag, no newline in any of its matches), a line in which it finds
   * nothing may be passed over. It may be changed from inside onLine; the next line sees the change.
   */
  sieve?: RegExp;

  constructor(private readonly maxLength: number) {}

  /** The lines a chunk completes (the unfinished last one waits for the rest). */
  push(chunk: string): string[] {
    const lines: string[] = [];
    this.pushEach(chunk, (line) => lines.push(line));
    return lines;
  }

  /** Hands each line a chunk completes to onLine, in order, passing over what the sieve rules out. */
  pushEach(chunk: string, onLine: (line: string) => void): void {
    let start = 0;
    // The line begun in an earlier chunk is whole only now: handed on without the sieve (it is one
    // line per chunk, and a literal may straddle the chunks).
    if (this.partial !== '' || this.skipping) {
      const newline = chunk.indexOf('\n');
      if (newline < 0) return this.hold(chunk, onLine);
      if (this.skipping) this.skipping = false; // the end of the line that was cut
      else onLine(this.partial + chunk.slice(0, newline));
      this.partial = '';
      start = newline + 1;
    }
    while (start < chunk.length) {
      const sieve = this.sieve;
      if (sieve) {
        sieve.lastIndex = start;
        const hit = sieve.exec(chunk);
        if (!hit) {
          const last = chunk.lastIndexOf('\n');
          if (last >= start) start = last + 1; // no whole line left holds anything
          break;
        }
        start = Math.max(start, chunk.lastIndexOf('\n', hit.index) + 1); // the lines before the hit's are passed over
      }
      const newline = chunk.indexOf('\n', start);
      if (newline < 0) break;
      onLine(chunk.slice(start, newline));
      start = newline + 1;
    }
    this.hold(chunk.slice(start), onLine);
  }

  /** Keeps the unfinished last line, cutting it when it outgrows the limit. */
  private hold(rest: string, onLine: (line: string) => void): void {
    if (this.skipping) return;
    this.partial += rest;
    if (this.partial.length > this.maxLength) {
      this.cut++;
      onLine(`${this.partial.slice(0, this.maxLength)} … [cut by nodemedic: the line is longer than ${this.maxLength} characters]`);
      this.partial = '';
      this.skipping = true;
    }
  }

  /** The unfinished line held now (not yet handed on). */
  get pending(): string {
    return this.partial;
  }

  /** Start afresh (the file was replaced). */
  reset(): void {
    this.partial = '';
    this.skipping = false;
  }
}
