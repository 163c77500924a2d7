// The symptom journal: what the sink has seen but not yet written to the store, kept on local disk, so
// that neither a restart nor an apiserver outage across one loses a symptom. The order that makes it
// hold: a symptom is appended to the journal (in batches, fsync'd) before the source that produced it
// saves its position past it; a restarted agent replays the journal before its sources start; and once
// the sink has written what it held, the journal is rewritten to hold only what is still pending.
//
//   STATE_DIR/symptoms.jsonl   one JSON record per line: a fingerprint, the first symptom, how many
//                              times it was seen and not yet written, first and last seen; the latest
//                              record of a fingerprint wins.
// Bounded: past maxBytes nothing more is appended until the next rewrite; what could not be journaled
// is still held in memory, and counted and logged — never silently.
// At least once: a crash between a write to the store and the next rewrite replays a count already
// written, so a repeat count may come out higher after a crash, never lower.
import { open, readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { atomicWrite } from '../lib/files.js';
import type { Symptom } from './source.js';

export type JournalRecord = { fingerprint: string; symptom: Symptom; pending: number; firstSeen: Date; lastSeen: Date };

type Line = { fingerprint: string; symptom: Omit<Symptom, 'seenAt'> & { seenAt: string }; pending: number; firstSeen: string; lastSeen: string };

export class SymptomJournal {
  private size = 0;

  constructor(private readonly opts: { file: string; maxBytes: number; log: Logger }) {}

  /** The pending symptoms a previous run journaled (the latest record of each fingerprint); unreadable lines are skipped and said. */
  async load(): Promise<JournalRecord[]> {
    const text = await readFile(this.opts.file, 'utf8').catch(() => '');
    this.size = Buffer.byteLength(text);
    const latest = new Map<string, JournalRecord>();
    let unreadable = 0;
    for (const raw of text.split('\n')) {
      if (!raw) continue;
      try {
        const line = JSON.parse(raw) as Line;
        const record = { ...line, symptom: { ...line.symptom, seenAt: new Date(line.symptom.seenAt) }, firstSeen: new Date(line.firstSeen), lastSeen: new Date(line.lastSeen) };
        if (typeof record.fingerprint !== 'string' || !Number.isInteger(record.pending)) throw new Error('not a record');
        latest.set(record.fingerprint, record);
      } catch {
        unreadable++; // a line cut short by a crash, most likely
      }
    }
    if (unreadable > 0) this.opts.log.warn({ file: this.opts.file, unreadable }, 'symptom journal: lines that could not be read were skipped');
    return [...latest.values()].filter((r) => r.pending > 0);
  }

  /** Append records and fsync; false (nothing written) when the journal is full. */
  async append(records: readonly JournalRecord[]): Promise<boolean> {
    if (records.length === 0) return true;
    const text = linesOf(records);
    const bytes = Buffer.byteLength(text);
    if (this.size + bytes > this.opts.maxBytes) return false;
    const handle = await open(this.opts.file, 'a', 0o600);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    this.size += bytes;
    return true;
  }

  /** Replace the journal with these records (what is still pending), atomically. */
  async rewrite(records: readonly JournalRecord[]): Promise<void> {
    const text = linesOf(records);
    await atomicWrite(this.opts.file, text);
    this.size = Buffer.byteLength(text);
  }

  /** Bytes in the journal now. */
  get bytes(): number {
    return this.size;
  }
}

const linesOf = (records: readonly JournalRecord[]): string => records.map((r) => `${JSON.stringify(r)}\n`).join('');
