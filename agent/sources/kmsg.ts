// The kernel log, read from /dev/kmsg directly: opened non-blocking, one record per read(), drained on a
// timer. Where it starts:
//   - the first start on this node: at the end (what is already there is history, not news);
//   - a restart in the same boot: after the last sequence number handled, kept in the state directory,
//     so nothing is missed or repeated;
//   - the first start after a reboot: at the start of the new boot's log, so nothing of it is missed.
// When the kernel has overwritten records before they were read, read() fails with EPIPE; the reader
// counts the records lost (from the jump in sequence numbers) and carries on.
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { readState, writeState } from './state.js';
import type { LineReader } from './log-source.js';

/** One record; `usec` is when it was logged, in microseconds since boot. */
export type KmsgRecord = { seq: number; usec: number; level: number; facility: number; message: string };

/** "6,1234,5678901,-;message\n KEY=value\n" → the record; undefined for what is not one. */
export function parseKmsgRecord(text: string): KmsgRecord | undefined {
  const semi = text.indexOf(';');
  if (semi < 0) return undefined;
  const [pri, seq, usec] = text.slice(0, semi).split(',');
  const priority = Number(pri);
  const sequence = Number(seq);
  if (!Number.isInteger(priority) || !Number.isInteger(sequence)) return undefined;
  const end = text.indexOf('\n', semi);
  // The kernel escapes unprintable bytes as \xNN.
  const message = text.slice(semi + 1, end < 0 ? undefined : end).replace(/\\x([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return { seq: sequence, usec: Number(usec), level: priority & 7, facility: priority >> 3, message };
}

type KmsgState = { bootId: string; seq: number };

export type KmsgOptions = { device?: string; stateDir: string; pollMs?: number; log: Logger };

export class KmsgReader implements LineReader {
  readonly where: string;
  /** Records the kernel overwrote before they could be read. */
  lost = 0;
  private fd?: number;
  private timer?: NodeJS.Timeout;
  private lastSeq = -1;
  private savedSeq = -1;
  private bootId = '';
  private readonly buffer = Buffer.alloc(16 * 1024); // a record is at most 8 KiB with its dictionary

  constructor(private readonly opts: KmsgOptions) {
    this.where = opts.device ?? '/dev/kmsg';
  }

  private get stateFile() {
    return path.join(this.opts.stateDir, 'kmsg.json');
  }

  async start(onLine: (line: string) => void): Promise<void> {
    this.bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'unknown')).trim();
    const state = await readState<KmsgState>(this.stateFile);
    this.fd = openSync(this.where, constants.O_RDONLY | constants.O_NONBLOCK);
    if (state?.bootId === this.bootId) {
      this.lastSeq = state.seq;
      this.opts.log.info({ device: this.where, afterSeq: state.seq }, 'kernel log: resuming where the last run stopped');
    } else if (!state) {
      this.drain(() => {});
      this.opts.log.info({ device: this.where, atSeq: this.lastSeq }, 'kernel log: first start on this node, starting at the end');
    } else {
      this.opts.log.info({ device: this.where }, 'kernel log: a new boot, reading its log from the start');
    }
    this.drain(onLine);
    await this.save();
    // Drained every pollMs; while records keep coming in bulk (a flood fills the kernel's buffer, 128 KiB
    // here, in milliseconds), drained again at once, so fewer are overwritten before they are read.
    const pollMs = this.opts.pollMs ?? 100;
    const tick = () => {
      const read = this.drain(onLine);
      void this.save();
      if (this.fd !== undefined) this.timer = setTimeout(tick, read >= 64 ? 0 : pollMs);
    };
    this.timer = setTimeout(tick, pollMs);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    await this.save();
  }

  /** Read every record there is now (at most a few thousand, so a flood cannot starve the agent); returns how many. */
  private drain(onLine: (line: string) => void): number {
    for (let read = 0; ; read++) {
      if (read >= 4096) return read;
      let n: number;
      try {
        n = readSync(this.fd!, this.buffer, 0, this.buffer.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') return read; // nothing more for now
        if (code === 'EPIPE') continue; // overwritten records; the sequence jump below counts them
        throw err;
      }
      const record = parseKmsgRecord(this.buffer.toString('utf8', 0, n));
      if (!record || record.seq <= this.lastSeq) continue; // already handled before a restart
      if (this.lastSeq >= 0 && record.seq > this.lastSeq + 1) {
        const missed = record.seq - this.lastSeq - 1;
        this.lost += missed;
        this.opts.log.warn({ missed, lost: this.lost }, 'kernel log records were overwritten before they could be read');
      }
      this.lastSeq = record.seq;
      onLine(record.message);
    }
  }

  private async save(): Promise<void> {
    if (this.lastSeq === this.savedSeq) return;
    this.savedSeq = this.lastSeq;
    await writeState(this.stateFile, { bootId: this.bootId, seq: this.lastSeq } satisfies KmsgState).catch((err) =>
      this.opts.log.warn({ err: (err as Error).message }, 'could not save the kernel log position'),
    );
  }
}
