// The journal (kubelet, container runtime): `journalctl -f -o json` for the chosen units (or syslog
// identifiers), from the system journal or a journal directory. With a state directory it resumes
// after the last entry handled (its cursor is kept there); otherwise, and on the first start, it reads
// from `since` (default: the moment it was made, to the second, so an entry of that same second may be
// read). When journalctl exits it is started again with backoff (agent/lib/backoff.ts), from the last
// cursor or `since`.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Logger } from 'pino';
import { Backoff } from '../lib/backoff.js';
import { readState, writeState } from '../lib/files.js';
import { LineSplitter } from '../lib/line-splitter.js';
import { Turns } from '../lib/turns.js';
import type { LineReader, PositionSync } from './line-reader.js';

export type JournalSelection = { directory?: string; units: string[]; identifiers: string[] };

export type JournaldOptions = JournalSelection & {
  stateDir?: string;
  /** Where to begin without a cursor, in UNIX seconds. */
  since?: number;
  log: Logger;
  journalctl?: string;
  /** Keeping the cursor in step with the symptom journal. */
  sync?: PositionSync;
  /** The longest line handed on, a line journald split put back together (default 64 KiB). */
  maxLineBytes?: number;
};

type JournalState = { cursor: string };

/** journalctl that ran this long ran well: a later exit starts the backoff from its shortest wait. */
const RAN_WELL_MS = 60_000;
/** The largest journal entry read (as journalctl's JSON): a longer one is skipped and counted as lost. */
const MAX_ENTRY = 1024 * 1024;
/** The longest line handed on once put back together (maxLineBytes), as for files. */
const MAX_LINE = 64 * 1024;
/** Streams with a split line being put back together, at most. */
const MAX_STREAMS = 64;

export class JournaldReader implements LineReader {
  readonly where: string;
  private child?: { process: ChildProcess; exited: Promise<{ exitCode: number | null; signal: NodeJS.Signals | null }> };
  private cursor?: string;
  private savedCursor?: string;
  private readonly stopping = new AbortController();
  private saveTimer?: NodeJS.Timeout;
  private restarts = 0;
  private readonly saves = new Turns();
  private readonly since: number;
  /** Entries skipped for being larger than MAX_ENTRY. */
  lost = 0;
  /** Lines journald split, their pieces so far, by stream. */
  private readonly pieces = new Map<string, string>();

  constructor(private readonly opts: JournaldOptions) {
    this.where = `journald:${[...opts.units, ...opts.identifiers].join(',')}`;
    this.since = opts.since ?? Math.floor(Date.now() / 1000);
  }

  private get stateFile() {
    if (!this.opts.stateDir) return undefined;
    const id = createHash('sha256').update(JSON.stringify([this.opts.directory, this.opts.units, this.opts.identifiers])).digest('hex').slice(0, 16);
    return path.join(this.opts.stateDir, 'journald', `${id}.json`);
  }

  async start(onLine: (line: string) => void): Promise<void> {
    this.cursor = this.stateFile ? (await readState<JournalState>(this.stateFile))?.cursor : undefined;
    this.savedCursor = this.cursor;
    void this.run(onLine);
    if (this.stateFile) {
      this.saveTimer = setInterval(() => void this.save(), 1000);
      this.opts.sync?.onJournaled(() => this.save());
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    clearInterval(this.saveTimer);
    this.child?.process.kill('SIGTERM');
    await this.child?.exited;
    await this.save();
  }

  /** Run journalctl until stopped, again with backoff whenever it exits. */
  private async run(onLine: (line: string) => void): Promise<void> {
    const backoff = new Backoff();
    while (!this.stopping.signal.aborted) {
      const started = Date.now();
      let stderr = '';
      // --all: without it journalctl's JSON gives a field over 4,096 bytes as null, and such a message is lost.
      const args = ['--follow', '--output=json', '--all', '--no-pager', this.cursor ? `--after-cursor=${this.cursor}` : `--since=@${this.since}`];
      if (this.opts.directory) args.push(`--directory=${this.opts.directory}`);
      for (const unit of this.opts.units) args.push(`--unit=${unit}`);
      for (const id of this.opts.identifiers) args.push(`--identifier=${id}`);
      // Node's own spawn: a long-running reader of one stream is all this needs (execa would add ~15 MiB to every agent).
      const child = spawn(this.opts.journalctl ?? 'journalctl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      const exited = new Promise<{ exitCode: number | null; signal: NodeJS.Signals | null }>((resolve) => {
        child.once('error', (err) => {
          stderr = err.message; // not found, not executable: said below as the reason it exited
          resolve({ exitCode: null, signal: null });
        });
        child.once('close', (exitCode, signal) => resolve({ exitCode, signal }));
      });
      this.child = { process: child, exited };
      const lines = new LineSplitter(MAX_ENTRY);
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (chunk: string) => {
        const cutBefore = lines.cut;
        const entries = lines.push(chunk);
        if (lines.cut > cutBefore) {
          entries.pop(); // the cut one is no longer JSON: skipped, and said
          this.lost += lines.cut - cutBefore;
          this.opts.log.warn({ where: this.where, maxBytes: MAX_ENTRY, lost: this.lost }, 'a journal entry larger than the limit was skipped');
        }
        for (const entry of entries) this.onEntry(entry, onLine);
      });
      child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
      const result = await exited;
      if (this.stopping.signal.aborted) return;
      if (Date.now() - started > RAN_WELL_MS) backoff.reset();
      this.restarts++;
      this.opts.log.warn({ where: this.where, exitCode: result.exitCode, signal: result.signal, stderr: stderr.trim() || undefined, retryInMs: backoff.peek, restarts: this.restarts },
        'journalctl exited; starting it again');
      await backoff.wait(this.stopping.signal);
    }
  }

  private onEntry(text: string, onLine: (line: string) => void): void {
    let entry: { MESSAGE?: unknown; __CURSOR?: string; _LINE_BREAK?: unknown; _PID?: unknown; _SYSTEMD_UNIT?: unknown };
    try {
      entry = JSON.parse(text);
    } catch {
      return; // journalctl writes one JSON object per line; anything else is not an entry
    }
    if (entry.__CURSOR) this.cursor = entry.__CURSOR;
    const raw = entry.MESSAGE;
    // A message with bytes that are not text comes as an array of byte values.
    let message = typeof raw === 'string' ? raw : Array.isArray(raw) ? Buffer.from(raw as number[]).toString('utf8') : undefined;
    if (message === undefined) return;
    // journald cuts a line longer than its LineMax (48 KiB by default) into entries, each but the last
    // marked _LINE_BREAK=line-max: put back together per stream (process and unit), up to maxLineBytes.
    const stream = `${String(entry._PID)}\u0000${String(entry._SYSTEMD_UNIT)}`;
    const held = this.pieces.get(stream);
    if (held !== undefined) {
      this.pieces.delete(stream);
      message = held + message;
    }
    const max = this.opts.maxLineBytes ?? MAX_LINE;
    if (entry._LINE_BREAK === 'line-max' && message.length < max) {
      this.pieces.set(stream, message);
      if (this.pieces.size > MAX_STREAMS) this.pieces.delete(this.pieces.keys().next().value!); // the oldest, bounded
      return;
    }
    onLine(message.length > max ? message.slice(0, max) : message);
  }

  /** Saves the cursor, if it moved; one save at a time, so an older one never lands last. */
  private save(): Promise<void> {
    return this.saves.run(async () => {
      const stateFile = this.stateFile;
      if (!stateFile || !this.cursor || this.cursor === this.savedCursor) return;
      await this.opts.sync?.beforeSave();
      const cursor = this.cursor;
      await writeState(stateFile, { cursor } satisfies JournalState).then(
        () => (this.savedCursor = cursor),
        (err) => this.opts.log.warn({ err: (err as Error).message }, 'could not save the journal cursor'),
      );
    });
  }
}
