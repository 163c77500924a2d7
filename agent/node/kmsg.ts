// The kernel log, read from /dev/kmsg directly. KmsgDevice is the one read loop — opened non-blocking,
// one record per read(), overwritten records skipped — used by the kernel-log source (KmsgReader) and
// by the kernel-log collector alike.
//
// KmsgReader, the source's follower, drains the device on a timer. Where it starts:
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
import { readState, writeState } from '../lib/files.js';
import { Turns } from '../lib/turns.js';
import type { LineReader, PositionSync } from './line-reader.js';

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

/** An open /dev/kmsg. Each open descriptor has its own position, so readers never disturb each other. */
export class KmsgDevice {
  private readonly buffer = Buffer.alloc(16 * 1024); // a record is at most 8 KiB with its dictionary
  private fd?: number;

  /** Opens at the oldest record the kernel still holds; throws what open(2) says (ENOENT, EACCES, EPERM). */
  constructor(readonly path = '/dev/kmsg') {
    this.fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  }

  /**
   * Every record there is now, at most `max` of them (so a flood cannot starve the event loop), each to
   * `onRecord`; returns how many were read. Records overwritten before they were read are skipped; the
   * jump in sequence numbers shows how many.
   */
  readAvailable(onRecord: (record: KmsgRecord) => void, max = Infinity): number {
    for (let read = 0; ; read++) {
      if (read >= max || this.fd === undefined) return read;
      let n: number;
      try {
        n = readSync(this.fd, this.buffer, 0, this.buffer.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') return read; // nothing more for now
        if (code === 'EPIPE') continue; // overwritten while unread: go on with the oldest still there
        throw err;
      }
      const record = parseKmsgRecord(this.buffer.toString('utf8', 0, n));
      if (record) onRecord(record);
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

type KmsgState = { bootId: string; seq: number };

export type KmsgOptions = {
  device?: string; stateDir: string; pollMs?: number; log: Logger;
  /** Keeping the position in step with the symptom journal. */
  sync?: PositionSync;
};

/** Records read per drain at most; a drain that reads this many is followed by another at once. */
const DRAIN_MAX = 4096;

export class KmsgReader implements LineReader {
  readonly where: string;
  /** Records the kernel overwrote before they could be read. */
  lost = 0;
  private device?: KmsgDevice;
  private timer?: NodeJS.Timeout;
  private lastSeq = -1;
  private savedSeq = -1;
  private bootId = '';
  private readonly saves = new Turns();

  constructor(private readonly opts: KmsgOptions) {
    this.where = opts.device ?? '/dev/kmsg';
  }

  private get stateFile() {
    return path.join(this.opts.stateDir, 'kmsg.json');
  }

  async start(onLine: (line: string) => void): Promise<void> {
    this.bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'unknown')).trim();
    const state = await readState<KmsgState>(this.stateFile);
    this.device = new KmsgDevice(this.where);
    if (state?.bootId === this.bootId) {
      this.lastSeq = state.seq;
      this.opts.log.info({ device: this.where, afterSeq: state.seq }, 'kernel log: resuming where the last run stopped');
    } else if (!state) {
      // Skip to the end; bounded, so a kernel logging faster than this reads cannot hold the start forever.
      for (let i = 0; i < 256 && this.drain(() => {}) >= DRAIN_MAX; i++);
      this.opts.log.info({ device: this.where, atSeq: this.lastSeq }, 'kernel log: first start on this node, starting at the end');
    } else {
      this.opts.log.info({ device: this.where }, 'kernel log: a new boot, reading its log from the start');
    }
    this.drain(onLine);
    await this.save();
    this.opts.sync?.onJournaled(() => this.save());
    // Drained every pollMs; while records keep coming in bulk (a flood fills the kernel's buffer, 128 KiB
    // here, in milliseconds), drained again at once, so fewer are overwritten before they are read.
    const pollMs = this.opts.pollMs ?? 100;
    const tick = () => {
      const read = this.drain(onLine);
      void this.save();
      if (this.device) this.timer = setTimeout(tick, read >= 64 ? 0 : pollMs);
    };
    this.timer = setTimeout(tick, pollMs);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.device?.close();
    this.device = undefined;
    await this.save();
  }

  /** Hand on every new record there is now (at most DRAIN_MAX); returns how many were read. */
  private drain(onLine: (line: string) => void): number {
    return this.device?.readAvailable((record) => {
      if (record.seq <= this.lastSeq) return; // already handled before a restart
      if (this.lastSeq >= 0 && record.seq > this.lastSeq + 1) {
        const missed = record.seq - this.lastSeq - 1;
        this.lost += missed;
        this.opts.log.warn({ missed, lost: this.lost }, 'kernel log records were overwritten before they could be read');
      }
      this.lastSeq = record.seq;
      onLine(record.message);
    }, DRAIN_MAX) ?? 0;
  }

  /** Saves the position, if it moved; one save at a time, so an older one never lands last. */
  private save(): Promise<void> {
    return this.saves.run(async () => {
      await this.opts.sync?.beforeSave();
      const seq = this.lastSeq;
      if (seq === this.savedSeq) return;
      await writeState(this.stateFile, { bootId: this.bootId, seq } satisfies KmsgState).then(
        () => (this.savedSeq = seq),
        (err) => this.opts.log.warn({ err: (err as Error).message }, 'could not save the kernel log position'),
      );
    });
  }
}
