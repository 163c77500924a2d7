// Plain log files, tailed with @logdna/tail-file: rotation by rename and by copy-truncate, and files
// behind symlinks (the target's inode is what counts). With a state directory, the byte position is
// kept there: a restart on the same file resumes there; a file replaced while the agent was down is
// read from its start; the first start on a file begins at its end. Without one (the goroutine-dump
// collector waiting for a dump in containerd's log), it reads what is written from now on.
// A line is at most `maxLineBytes` (64 KiB): a longer one is handed on cut, with a note, and the rest
// of it up to its newline is skipped, so a line that never ends costs bounded memory and work.
//
// Rotation loses nothing the follower can still find. By rename: tail-file reads the old file to its
// end before it opens the new one. By copy-truncate (logrotate's copytruncate): what was written
// after the follower's last read and before the cut is gone from the file but is in the copy, so the
// follower finds the copy beside the file (FILE.1, FILE-20261130, …: the newest whose bytes before
// the follower's position are the ones it read last) and reads it from there to its end first.
import { closeSync, fstatSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import TailFile from '@logdna/tail-file';
import type { Logger } from 'pino';
import { readState, writeState } from '../lib/files.js';
import { LineSplitter } from '../lib/line-splitter.js';
import { Turns } from '../lib/turns.js';
import { Utf8Chunks } from '../lib/utf8-chunks.js';
import type { LineReader, PositionSync } from './line-reader.js';

type FileState = { inode: number; position: number };

export type FileReaderOptions = {
  file: string; stateDir?: string; pollMs?: number; maxLineBytes?: number; log: Logger;
  /** Keeping the position in step with the symptom journal. */
  sync?: PositionSync;
  /** A file never read before is read from its start (its rules skip what is too old), not its end. */
  fromStartOnFirstRead?: boolean;
};

/** The longest line handed on (an Abnormal's log entry holds 64 KiB). */
const MAX_LINE = 64 * 1024;
/** The most read from a copy after a copy-truncate, at once (a few milliseconds of work). */
const MAX_COPY_TAIL = 1024 * 1024;
/** How long stopping waits for tail-file's last read of the file. */
const QUIT_MS = 2000;
/** How many of the last bytes read identify the place in a copy. */
const FINGERPRINT = 64;

export class FileReader implements LineReader {
  readonly where: string;
  private tail?: TailFile;
  private position = 0;
  private inode = 0;
  private readonly lines: LineSplitter;
  private saveTimer?: NodeJS.Timeout;
  private readonly saves = new Turns();
  private saved?: FileState;
  /** The last bytes read from the file: where the follower stands, recognisable in a copy. */
  private lastRead = Buffer.alloc(0);
  private readonly text = new Utf8Chunks();

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
    let startPos: number | null = this.opts.fromStartOnFirstRead ? 0 : null; // null: the end, for a file never read before
    if (state && now) startPos = now.ino === state.inode && now.size >= state.position ? state.position : 0;
    this.inode = now?.ino ?? 0;
    this.position = startPos ?? now?.size ?? 0;
    const tail = new TailFile(this.opts.file, { startPos, pollFileIntervalMs: this.opts.pollMs ?? 250, maxPollFailures: Infinity });
    const restart = (why: string) => {
      this.opts.log.info({ file: this.opts.file, why }, 'log file replaced; reading the new one from its start');
      this.position = 0;
      this.lines.reset();
      this.text.reset();
      void stat(this.opts.file).then((s) => (this.inode = s.ino), () => {});
    };
    // Bytes, not text: the position counts what was read (lib/utf8-chunks.ts).
    const take = (chunk: Buffer) => {
      this.position += chunk.length;
      this.lastRead = Buffer.concat([this.lastRead, chunk.subarray(-FINGERPRINT)]).subarray(-FINGERPRINT);
      const cutBefore = this.lines.cut;
      this.lines.pushEach(this.text.decode(chunk), onLine);
      if (this.lines.cut > cutBefore) this.opts.log.warn({ file: this.opts.file, cut: this.lines.cut }, 'a log line longer than the limit was cut');
    };
    tail.on('renamed', () => restart('renamed'));
    // Emitted before tail-file reads the cut file again, so the copy's end comes first, in order.
    tail.on('truncated', () => {
      const rest = this.readCopiedRest();
      if (rest) take(rest);
      restart('truncated');
    });
    tail.on('tail_error', (err: Error) => this.opts.log.warn({ file: this.opts.file, err: err.message }, 'tailing failed'));
    tail.on('data', take);
    await tail.start();
    this.tail = tail;
    if (this.stateFile) {
      this.saveTimer = setInterval(() => void this.save(), 1000);
      this.opts.sync?.onJournaled(() => this.save());
    }
  }

  passOver(sieve: RegExp | undefined): void {
    this.lines.sieve = sieve;
  }

  async stop(): Promise<void> {
    clearInterval(this.saveTimer);
    // tail-file's quit() waits for one last poll to find the file; if the file is gone just then
    // (its directory removed), that poll only retries, and quit() would never end.
    let waited: NodeJS.Timeout | undefined;
    const gaveUp = await Promise.race([
      this.tail?.quit().then(() => false),
      new Promise<boolean>((resolve) => (waited = setTimeout(() => resolve(true), QUIT_MS))),
    ]);
    clearTimeout(waited);
    if (gaveUp) this.opts.log.warn({ file: this.opts.file }, `stopped following without a last read: the file was not there for ${QUIT_MS} ms`);
    await this.save();
  }

  /**
   * After a copy-truncate: what the copy holds beyond the follower's position, or undefined when no
   * copy beside the file has the bytes it read last just before that position. Synchronous and
   * bounded (MAX_COPY_TAIL), so that it is handed on before anything of the cut file.
   */
  private readCopiedRest(): Buffer | undefined {
    const { file, log } = this.opts;
    const fingerprint = this.lastRead;
    const position = this.position;
    if (position === 0 || fingerprint.length === 0) return undefined;
    const base = path.basename(file);
    let copies: Array<{ name: string; mtime: number }> = [];
    try {
      copies = readdirSync(path.dirname(file))
        .filter((name) => name.length > base.length && name.startsWith(base) && /^[.-]/.test(name.slice(base.length)) && !/\.(gz|bz2|xz|zst)$/.test(name))
        .map((name) => ({ name, mtime: statSync(path.join(path.dirname(file), name), { throwIfNoEntry: false })?.mtimeMs ?? 0 }))
        .sort((a, b) => b.mtime - a.mtime)
        .slice(0, 3);
    } catch {
      // the directory cannot be read: nothing to recover from
    }
    for (const { name } of copies) {
      let fd: number | undefined;
      try {
        fd = openSync(path.join(path.dirname(file), name), 'r');
        const { size } = fstatSync(fd);
        if (size < position) continue;
        const there = Buffer.alloc(fingerprint.length);
        readSync(fd, there, 0, there.length, position - fingerprint.length);
        if (!there.equals(fingerprint)) continue;
        const length = Math.min(size - position, MAX_COPY_TAIL);
        const rest = Buffer.alloc(length);
        readSync(fd, rest, 0, length, position);
        if (size - position > length) log.warn({ file, copy: name, skipped: size - position - length }, 'the copy holds more unread bytes than are read at once; the rest is lost');
        log.info({ file, copy: name, bytes: length }, 'file truncated after being copied; read the copy\'s unread end first');
        return rest;
      } catch {
        // gone or unreadable: try the next
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    }
    log.warn({ file, position }, 'file truncated and no copy of it found: what was written since the last read is lost');
    return undefined;
  }

  /** Saves the position, if it moved; one save at a time, so an older one never lands last. */
  private save(): Promise<void> {
    return this.saves.run(async () => {
      const stateFile = this.stateFile;
      if (!stateFile) return;
      await this.opts.sync?.beforeSave();
      // The unfinished line is not handled yet: resume before it.
      const state: FileState = { inode: this.inode, position: this.position - Buffer.byteLength(this.lines.pending) - this.text.heldBytes };
      if (this.saved?.inode === state.inode && this.saved.position === state.position) return;
      await writeState(stateFile, state).then(
        () => (this.saved = state),
        (err) => this.opts.log.warn({ err: (err as Error).message }, 'could not save the file position'),
      );
    });
  }
}
