// Text arriving in chunks, split into lines — with a limit: a line longer than `maxLength` is handed on
// cut (with a note saying so) and the rest of it, up to its newline, is skipped. So a writer that never
// ends its line costs bounded memory and work, however much it writes.
export class LineSplitter {
  private partial = '';
  /** Inside a line already cut: what follows until its newline is skipped. */
  private skipping = false;
  /** Lines handed on cut. */
  cut = 0;

  constructor(private readonly maxLength: number) {}

  /** The lines a chunk completes (the unfinished last one waits for the rest). */
  push(chunk: string): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let newline = chunk.indexOf('\n'); newline >= 0; newline = chunk.indexOf('\n', start)) {
      const piece = chunk.slice(start, newline);
      start = newline + 1;
      if (this.skipping) this.skipping = false; // the end of the line that was cut
      else lines.push(this.partial + piece);
      this.partial = '';
    }
    if (this.skipping) return lines;
    this.partial += chunk.slice(start);
    if (this.partial.length > this.maxLength) {
      this.cut++;
      lines.push(`${this.partial.slice(0, this.maxLength)} … [cut by nodemedic: the line is longer than ${this.maxLength} characters]`);
      this.partial = '';
      this.skipping = true;
    }
    return lines;
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
