// The journal (kubelet, container runtime): `journalctl -f -o json` for the chosen units (or syslog
// identifiers), from the system journal or a journal directory. Resumed after the last entry handled
// (its cursor is kept in the state directory); the first start reads from the moment the agent
// started (to the second, so an entry of that same second may be read). When journalctl exits, it is
// started again with backoff (0.5 s doubling to 30 s), from the last cursor or that moment.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import type { Logger } from 'pino';
import type { LineReader } from './log-source.js';
import { readState, writeState } from './state.js';

export type JournalSelection = { directory?: string; units: string[]; identifiers: string[] };

export type JournaldOptions = JournalSelection & { stateDir: string; log: Logger; journalctl?: string };

type JournalState = { cursor: string };

export class JournaldReader implements LineReader {
  readonly where: string;
  private child?: ResultPromise;
  private cursor?: string;
  private savedCursor?: string;
  private stopped = false;
  private saveTimer?: NodeJS.Timeout;
  private restarts = 0;
  /** Where to begin when there is no cursor yet: the first start, in UNIX seconds. */
  private readonly since = Math.floor(Date.now() / 1000);

  constructor(private readonly opts: JournaldOptions) {
    this.where = `journald:${[...opts.units, ...opts.identifiers].join(',')}`;
  }

  private get stateFile() {
    const id = createHash('sha256').update(JSON.stringify([this.opts.directory, this.opts.units, this.opts.identifiers])).digest('hex').slice(0, 16);
    return path.join(this.opts.stateDir, 'journald', `${id}.json`);
  }

  async start(onLine: (line: string) => void): Promise<void> {
    this.cursor = (await readState<JournalState>(this.stateFile))?.cursor;
    this.savedCursor = this.cursor;
    void this.run(onLine);
    this.saveTimer = setInterval(() => void this.save(), 1000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.saveTimer);
    this.child?.kill('SIGTERM');
    await this.child?.catch(() => {});
    await this.save();
  }

  /** Run journalctl until stopped, again with backoff whenever it exits. */
  private async run(onLine: (line: string) => void): Promise<void> {
    for (let delay = 500; !this.stopped; delay = Math.min(delay * 2, 30_000)) {
      const started = Date.now();
      const args = ['--follow', '--output=json', '--no-pager', this.cursor ? `--after-cursor=${this.cursor}` : `--since=@${this.since}`];
      if (this.opts.directory) args.push(`--directory=${this.opts.directory}`);
      for (const unit of this.opts.units) args.push(`--unit=${unit}`);
      for (const id of this.opts.identifiers) args.push(`--identifier=${id}`);
      const child = execa(this.opts.journalctl ?? 'journalctl', args, { buffer: false, stdin: 'ignore', reject: false, stderr: 'pipe' });
      this.child = child;
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (text) => this.onEntry(text, onLine));
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
      const result = await child;
      if (this.stopped) return;
      if (Date.now() - started > 60_000) delay = 500; // it ran well for a while: start over with a short wait
      this.restarts++;
      this.opts.log.warn({ where: this.where, exitCode: result.exitCode, signal: result.signal, stderr: stderr.trim() || undefined, retryInMs: delay, restarts: this.restarts },
        'journalctl exited; starting it again');
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private onEntry(text: string, onLine: (line: string) => void): void {
    let entry: { MESSAGE?: unknown; __CURSOR?: string };
    try {
      entry = JSON.parse(text);
    } catch {
      return; // journalctl writes one JSON object per line; anything else is not an entry
    }
    if (entry.__CURSOR) this.cursor = entry.__CURSOR;
    const message = entry.MESSAGE;
    // A message with bytes that are not text comes as an array of byte values.
    if (typeof message === 'string') onLine(message);
    else if (Array.isArray(message)) onLine(Buffer.from(message as number[]).toString('utf8'));
  }

  private async save(): Promise<void> {
    if (!this.cursor || this.cursor === this.savedCursor) return;
    this.savedCursor = this.cursor;
    await writeState(this.stateFile, { cursor: this.cursor } satisfies JournalState).catch((err) =>
      this.opts.log.warn({ err: (err as Error).message }, 'could not save the journal cursor'),
    );
  }
}
