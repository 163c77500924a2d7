// Plain log files, tailed with @logdna/tail-file: rotation by rename and by copy-truncate, and files
// behind symlinks (the target's inode is what counts). With a state directory, the byte position is
// kept there: a restart on the same file resumes there; a file replaced while the agent was down is
// read from its start; the first start on a file begins at its end. Without one (the goroutine-dump
// collector waiting for a dump in containerd's log), it reads what is written from now on.
// A line is at most `maxLineBytes` (64 KiB): a longer one is handed on cut, with a note, and the rest
// of it up to its newline is skipped, so a line that never ends costs bounded memory and work.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import TailFile from '@logdna/tail-file';
import type { Logger } from 'pino';
import { readState, writeState } from '../lib/files.js';
import { LineSplitter } from '../lib/line-splitter.js';
import type { LineReader } from './line-reader.js';

type FileState = { inode: number; position: number };

export type FileReaderOptions = {
  file: string; stateDir?: string; pollMs?: number; maxLineBytes?: number; log: Logger;
  /** Awaited before each position is saved: what was read up to there must be safe first (the symptom journal). */
  beforeSave?: () => Promise<void>;
};

/** The longest line handed on (an Abnormal's log entry holds 64 KiB). */
const MAX_LINE = 64 * 1024;

export class FileReader implements LineReader {
  readonly where: string;
  private tail?: TailFile;
  private position = 0;
  private inode = 0;
  private readonly lines: LineSplitter;
  private saveTimer?: NodeJS.Timeout;

  constructor(private readonly opts: FileReaderOptions) {
    this.where = opts.file;
    this.lines = new LineSplitter(opts.maxLineBytes ?? MAX_LINE);
  }

  /** Lines longer than the limit, handed on cut. */
  get cutLines(): number {
    return this.lines.cut;
  }

  private get stateFile() {
    return this.opts.stateDir && path.join(this.opts.stateDir, 'files', `${encodeURIComponent(this.opts.file)}.json`);
  }

  async start(onLine: (line: string) => void): Promise<void> {
    const state = this.stateFile ? await readState<FileState>(this.stateFile) : undefined;
    const now = await stat(this.opts.file).catch(() => undefined);
    let startPos: number | null = null; // null: the end, for a file never read before
    if (state && now) startPos = now.ino === state.inode && now.size >= state.position ? state.position : 0;
    this.inode = now?.ino ?? 0;
    this.position = startPos ?? now?.size ?? 0;
    const tail = new TailFile(this.opts.file, { encoding: 'utf8', startPos, pollFileIntervalMs: this.opts.pollMs ?? 250, maxPollFailures: Infinity });
    const restart = (why: string) => {
      this.opts.log.info({ file: this.opts.file, why }, 'log file replaced; reading the new one from its start');
      this.position = 0;
      this.lines.reset();
      void stat(this.opts.file).then((s) => (this.inode = s.ino), () => {});
    };
    tail.on('renamed', () => restart('renamed'));
    tail.on('truncated', () => restart('truncated'));
    tail.on('tail_error', (err: Error) => this.opts.log.warn({ file: this.opts.file, err: err.message }, 'tailing failed'));
    tail.on('data', (chunk: string) => {
      this.position += Buffer.byteLength(chunk);
      const cutBefore = this.lines.cut;
      for (const line of this.lines.push(chunk)) onLine(line);
      if (this.lines.cut > cutBefore) this.opts.log.warn({ file: this.opts.file, cut: this.lines.cut }, 'a log line longer than the limit was cut');
    });
    await tail.start();
    this.tail = tail;
    if (this.stateFile) this.saveTimer = setInterval(() => void this.save(), 1000);
  }

  async stop(): Promise<void> {
    clearInterval(this.saveTimer);
    await this.tail?.quit();
    await this.save();
  }

  private async save(): Promise<void> {
    if (!this.stateFile) return;
    await this.opts.beforeSave?.();
    // The unfinished line is not handled yet: resume before it.
    const position = this.position - Buffer.byteLength(this.lines.pending);
    await writeState(this.stateFile, { inode: this.inode, position } satisfies FileState).catch((err) =>
      this.opts.log.warn({ err: (err as Error).message }, 'could not save the file position'),
    );
  }
}
