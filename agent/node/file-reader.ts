// Plain log files, tailed with @logdna/tail-file: rotation by rename and by copy-truncate, and files
// behind symlinks (the target's inode is what counts). With a state directory, the byte position is
// kept there: a restart on the same file resumes there; a file replaced while the agent was down is
// read from its start; the first start on a file begins at its end. Without one (the goroutine-dump
// collector waiting for a dump in containerd's log), it reads what is written from now on.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import TailFile from '@logdna/tail-file';
import type { Logger } from 'pino';
import { readState, writeState } from '../lib/files.js';
import type { LineReader } from './line-reader.js';

type FileState = { inode: number; position: number };

export type FileReaderOptions = { file: string; stateDir?: string; pollMs?: number; log: Logger };

export class FileReader implements LineReader {
  readonly where: string;
  private tail?: TailFile;
  private position = 0;
  private inode = 0;
  private partial = '';
  private saveTimer?: NodeJS.Timeout;

  constructor(private readonly opts: FileReaderOptions) {
    this.where = opts.file;
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
      this.partial = '';
      void stat(this.opts.file).then((s) => (this.inode = s.ino), () => {});
    };
    tail.on('renamed', () => restart('renamed'));
    tail.on('truncated', () => restart('truncated'));
    tail.on('tail_error', (err: Error) => this.opts.log.warn({ file: this.opts.file, err: err.message }, 'tailing failed'));
    tail.on('data', (chunk: string) => {
      this.position += Buffer.byteLength(chunk);
      const lines = (this.partial + chunk).split('\n');
      this.partial = lines.pop()!; // an unfinished last line waits for the rest
      for (const line of lines) onLine(line);
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
    // The unfinished line is not handled yet: resume before it.
    const position = this.position - Buffer.byteLength(this.partial);
    await writeState(this.stateFile, { inode: this.inode, position } satisfies FileState).catch((err) =>
      this.opts.log.warn({ err: (err as Error).message }, 'could not save the file position'),
    );
  }
}
