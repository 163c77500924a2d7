// The kernel log, read from /dev/kmsg directly. KmsgDevice is the one read loop — opened non-blocking,
// one record per read(), overwritten records skipped — used by the kernel-log source (KmsgReader) and,
// through KmsgHistory, by the kernel-log collector.
//
// KmsgReader, the source's follower, waits on the device with epoll (agent/lib/pollable-fd.ts): a
// record is handled as soon as the kernel logs it, and an idle agent is not woken at all. Where this
// Node cannot wait on the device, it drains it every 100 ms instead. Where it starts:
//   - the first start on this node: at the end (what is already there is history, not news);
//   - a restart in the same boot: after the last sequence number handled, kept in the state directory,
//     so nothing is missed or repeated;
//   - the first start after a reboot: at the start of the new boot's log, so nothing of it is missed.
// When the kernel has overwritten records before they were read, read() fails with EPIPE; the reader
// counts the records lost (from the jump in sequence numbers) and carries on.
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { pollableStream } from '../lib/pollable-fd.js';
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

/** Records read at once that mean a flood: read on in batches rather than a wakeup per record. */
const BULK = 64;

/** When the record in buffer[0, length) was logged (µs since boot), from its header "pri,seq,usec,…;". */
function loggedAt(buffer: Buffer, length: number): number {
  const semi = buffer.indexOf(0x3b, 0); // ';'
  const header = buffer.toString('latin1', 0, semi < 0 || semi > length ? Math.min(length, 64) : semi);
  return Number(header.split(',')[2]);
}

/** An open /dev/kmsg. Each open descriptor has its own position, so readers never disturb each other. */
export class KmsgDevice {
  private readonly buffer = Buffer.alloc(16 * 1024); // a record is at most 8 KiB with its dictionary
  private fd?: number;
  /** While following: the stream that waits on `fd`, and owns it. */
  private stream?: Socket;

  /** Opens at the oldest record the kernel still holds; throws what open(2) says (ENOENT, EACCES, EPERM). */
  constructor(readonly path = '/dev/kmsg') {
    this.fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  }

  /**
   * Every record there is now, at most `max` of them (so a flood cannot starve the event loop), each to
   * `onRecord`; returns how many were read. Those logged before `sinceUsec` are read and counted but
   * not decoded or handed on. Records overwritten before they were read are skipped; the
   * jump in sequence numbers shows how many.
   */
  readAvailable(onRecord: (record: KmsgRecord) => void, max = Infinity, sinceUsec = -Infinity): number {
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
      if (sinceUsec > 0 && loggedAt(this.buffer, n) < sinceUsec) continue; // not decoded: only counted
      const record = parseKmsgRecord(this.buffer.toString('utf8', 0, n));
      if (record) onRecord(record);
    }
  }

  /**
   * Hands each record to `onRecord` as soon as the kernel logs it, waiting on the device with epoll;
   * each wakeup also drains what else is there (at most `max`). False where this Node cannot wait on
   * the device: the caller polls readAvailable instead. `onError` gets what ends following.
   */
  follow(onRecord: (record: KmsgRecord) => void, onError: (err: Error) => void, max = Infinity): boolean {
    // In a flood, a wakeup per record costs more than the record: while drains keep finding records in
    // bulk, waiting stops and the device is drained every millisecond instead, in batches.
    const drainInBulk = () => {
      if (this.stream !== stream) return;
      if (this.readAvailable(onRecord, max) >= BULK) setTimeout(drainInBulk, 1);
      else stream?.resume();
    };
    const stream = this.fd === undefined ? undefined : pollableStream(this.fd, this.buffer, (length) => {
      const record = parseKmsgRecord(this.buffer.toString('utf8', 0, length));
      if (record) onRecord(record);
      if (this.readAvailable(onRecord, max) < BULK) return true;
      setTimeout(drainInBulk, 1);
      return false; // paused: nothing read behind the drains' back, so records stay in order
    });
    if (!stream) return false;
    this.stream = stream;
    stream.on('error', (err: NodeJS.ErrnoException) => {
      // The stream has closed the descriptor. EPIPE: records were overwritten while unread; a new
      // descriptor starts at the oldest still there, as the old one would have gone on.
      this.stream = undefined;
      this.fd = undefined;
      try {
        if (err.code !== 'EPIPE') throw err;
        this.fd = openSync(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
        if (!this.follow(onRecord, onError, max)) throw new Error('cannot wait on the reopened kernel log device');
      } catch (failed) {
        onError(failed as Error);
      }
    });
    return true;
  }

  close(): void {
    if (this.stream) this.stream.destroy(); // closes fd
    else if (this.fd !== undefined) closeSync(this.fd);
    this.stream = undefined;
    this.fd = undefined;
  }
}

export type KmsgHistoryOptions = {
  /** Records kept at most, and characters of their messages in all; in a flood, the oldest are left out. */
  maxRecords?: number;
  maxChars?: number;
  /** Records read in one turn of the event loop: a few milliseconds, so a full buffer never holds the agent up. */
  perTurn?: number;
  /** The device is closed, and what was read let go, this long after the last read. */
  idleMs?: number;
};

/** How much earlier than asked the history keeps records from. */
const SLACK_USEC = 60e6;

/**
 * The kernel log from some time on, read once and shared by the reads that follow close in time. The
 * device gives one record per read() and cannot seek by time, so a reader that wants the records of the
 * last few minutes reads every record the kernel holds (thousands, each costing a read()). A burst of
 * Abnormals, each collecting the kernel log, would read the whole buffer once each; here the first
 * reads it, the device stays open, and the next ones read only what the kernel logged since.
 */
export class KmsgHistory {
  private device?: KmsgDevice;
  private records: KmsgRecord[] = [];
  /** The characters of the kept records' messages, in all. */
  private chars = 0;
  /** The records kept start here (µs since boot): nothing logged since is left out, unless the cap dropped it. */
  private since = Infinity;
  private closeTimer?: NodeJS.Timeout;
  private readonly reads = new Turns();
  private readonly maxRecords: number;
  private readonly maxChars: number;
  private readonly perTurn: number;
  private readonly idleMs: number;

  constructor(readonly path = '/dev/kmsg', opts: KmsgHistoryOptions = {}) {
    this.maxRecords = opts.maxRecords ?? 10_000;
    this.maxChars = opts.maxChars ?? 2 * 1024 * 1024;
    this.perTurn = opts.perTurn ?? 1000;
    this.idleMs = opts.idleMs ?? 5000;
  }

  /**
   * The records logged from `fromUsec` (µs since boot) until now, oldest first, at most maxRecords (the
   * newest). Read the result at once: the next read appends to it. Throws what open(2) says.
   */
  read(fromUsec: number): Promise<readonly KmsgRecord[]> {
    return this.reads.run(async () => {
      clearTimeout(this.closeTimer);
      // Kept from later than asked: the earlier records were never kept, so read them all again, and
      // keep a minute more than asked, so the next reads, for symptoms seen moments apart in any order,
      // find theirs kept.
      if (fromUsec < this.since) this.close(fromUsec - SLACK_USEC);
      try {
        this.device ??= new KmsgDevice(this.path);
        const keep = (record: KmsgRecord) => {
          this.records.push(record);
          this.chars += record.message.length;
        };
        // Bounded, so a kernel logging as fast as this reads cannot hold the read forever.
        for (let read = 0; read < 100_000; read += this.perTurn) {
          const got = this.device.readAvailable(keep, this.perTurn, this.since);
          this.dropOldest();
          if (got < this.perTurn) break;
          await nextTurn();
        }
      } catch (err) {
        this.close();
        throw err;
      }
      this.closeTimer = setTimeout(() => this.close(), this.idleMs).unref();
      return this.records;
    });
  }

  /** Within the caps again: the oldest records dropped. */
  private dropOldest(): void {
    let drop = 0;
    while (drop < this.records.length && (this.records.length - drop > this.maxRecords || this.chars > this.maxChars)) {
      this.chars -= this.records[drop++]!.message.length;
    }
    if (drop > 0) this.records.splice(0, drop);
  }

  /** Closes the device and lets go of what was read; the next read starts again from `since`. */
  close(since = Infinity): void {
    clearTimeout(this.closeTimer);
    this.device?.close();
    this.device = undefined;
    this.records = [];
    this.chars = 0;
    this.since = since;
  }
}

type KmsgState = { bootId: string; seq: number };

export type KmsgOptions = {
  device?: string; stateDir: string; log: Logger;
  /** Drain the device every pollMs instead of waiting on it (as where this Node cannot wait on it). */
  pollMs?: number;
  /** Keeping the position in step with the symptom journal. */
  sync?: PositionSync;
  /** On the first start on a node, the records logged this long ago are read too (NPD's lookback). */
  lookbackMs?: number;
};

/** Records read per drain at most; a drain that reads this many is followed by another at once. */
const DRAIN_MAX = 4096;

export class KmsgReader implements LineReader {
  readonly where: string;
  /** Records the kernel overwrote before they could be read. */
  lost = 0;
  private device?: KmsgDevice;
  private timer?: NodeJS.Timeout;
  private saveTimer?: NodeJS.Timeout;
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
      // Skip to the end, or to the lookback's start; bounded, so a kernel logging faster than this
      // reads cannot hold the start forever.
      const since = this.opts.lookbackMs ? (await uptimeUsec()) - this.opts.lookbackMs * 1000 : Infinity;
      const skip = (record: KmsgRecord) => this.handle(record, record.usec >= since ? onLine : () => {});
      for (let i = 0; i < 256 && this.device.readAvailable(skip, DRAIN_MAX) >= DRAIN_MAX; i++);
      this.opts.log.info({ device: this.where, atSeq: this.lastSeq, lookbackMs: this.opts.lookbackMs }, `kernel log: first start on this node, starting ${this.opts.lookbackMs ? 'at the lookback' : 'at the end'}`);
    } else {
      this.opts.log.info({ device: this.where }, 'kernel log: a new boot, reading its log from the start');
    }
    this.drain(onLine);
    await this.save();
    this.opts.sync?.onJournaled(() => this.save());
    const device = this.device;
    if (this.opts.pollMs === undefined && device.follow((record) => this.handle(record, onLine), (err) => this.followFailed(err, onLine), DRAIN_MAX)) return;
    if (this.opts.pollMs === undefined) this.opts.log.warn({ device: this.where }, 'kernel log: this Node cannot wait on the device; draining it every 100 ms instead');
    this.poll(onLine);
  }

  /**
   * Drained every pollMs; while records keep coming in bulk (a flood fills the kernel's buffer, 128 KiB
   * here, in milliseconds), drained again at once, so fewer are overwritten before they are read.
   */
  private poll(onLine: (line: string) => void): void {
    const pollMs = this.opts.pollMs ?? 100;
    const tick = () => {
      const read = this.drain(onLine);
      void this.save();
      if (this.device) this.timer = setTimeout(tick, read >= BULK ? 0 : pollMs);
    };
    this.timer = setTimeout(tick, pollMs);
  }

  private followFailed(err: Error, onLine: (line: string) => void): void {
    this.opts.log.error({ device: this.where, err: err.message }, 'kernel log: waiting on the device failed; reopening it and draining it every 100 ms');
    try {
      this.device = new KmsgDevice(this.where);
      this.poll(onLine);
    } catch (reopen) {
      this.device = undefined;
      this.opts.log.error({ device: this.where, err: (reopen as Error).message }, 'kernel log: cannot reopen the device; no longer reading it');
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    clearTimeout(this.saveTimer);
    this.device?.close();
    this.device = undefined;
    await this.save();
  }

  /** Hand on every new record there is now (at most DRAIN_MAX); returns how many were read. */
  private drain(onLine: (line: string) => void): number {
    return this.device?.readAvailable((record) => this.handle(record, onLine), DRAIN_MAX) ?? 0;
  }

  private handle(record: KmsgRecord, onLine: (line: string) => void): void {
    if (record.seq <= this.lastSeq) return; // already handled before a restart
    if (this.lastSeq >= 0 && record.seq > this.lastSeq + 1) {
      const missed = record.seq - this.lastSeq - 1;
      this.lost += missed;
      this.opts.log.warn({ missed, lost: this.lost }, 'kernel log records were overwritten before they could be read');
    }
    this.lastSeq = record.seq;
    onLine(record.message);
    // The position follows within 100 ms, as it did when drained on a timer (and at once when the
    // symptom journal takes a line).
    this.saveTimer ??= setTimeout(() => {
      this.saveTimer = undefined;
      void this.save();
    }, 100);
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

/** Time since boot in microseconds, the clock /dev/kmsg stamps its records with. */
async function uptimeUsec(): Promise<number> {
  const text = await readFile('/proc/uptime', 'utf8').catch(() => '0');
  return Number.parseFloat(text) * 1e6;
}
