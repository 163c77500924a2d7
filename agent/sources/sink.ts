// Between the sources and the store: dedup and flood control. A flood of symptoms must never flood the
// apiserver, and no symptom is dropped silently.
//   - Each symptom has a fingerprint: source + node + reason + subject (the involved object, the alert).
//   - A repeat while the fingerprint's Abnormal is open, or within `cooldownSeconds` after it ended, adds
//     to that Abnormal's spec.occurrences (count, lastSeen) instead of creating another. Repeats are
//     counted in memory and written at most once per `flushSeconds` per fingerprint, so 100,000
//     identical lines cost one create and a few updates.
//   - Creation is rate limited per node (a token bucket). A symptom waiting for a token stays counted
//     here and is created when one frees up.
//   - The fingerprint is a label on the Abnormal, so after a restart repeats still find it.
//   - One Abnormal per fault: a new symptom about a pod that an Abnormal still counting is
//     about already joins it, counted in its spec.related (the kubelet's FailedKillPod for a pod found
//     stuck terminating), instead of making another (joins()).
//   - A symptom that has ended (a resolved alert, a custom plugin passing again) records its end on its
//     Abnormal (spec.occurrences.endedAt) and creates nothing.
//   - A symptom whose Abnormal the API would refuse (validated first; or refused by the apiserver as
//     invalid) is a poison: it is logged, counted by source (rejected) and dropped — never retried, and
//     it spends no creation token, so it cannot hold back the symptoms behind it.
//   - What is seen and not yet written is journaled on local disk (journal.ts) before the sources
//     save their positions past it, and replayed at start: a restart loses no symptom.
// The sink is the only part of the sources that writes to the store.
import type { Logger } from 'pino';
import { FINGERPRINT_LABEL, LIMITS } from '../api/crds.js';
import { keyOf } from '../api/kinds.js';
import { fitText } from '../api/limits.js';
import { endedAt, isTerminal, toRFC3339 } from '../api/phase.js';
import type { Abnormal } from '../api/types.generated.js';
import { ConflictError, InvalidObjectError, type AbnormalStore } from '../store/store.js';
import type { JournalRecord, SymptomJournal } from './journal.js';
import { abnormalOf, fingerprintOf, refusalOf, subjectLabelOf, type Symptom } from './source.js';

export type SinkOptions = {
  store: AbnormalStore;
  nodeName: string;
  log: Logger;
  flushSeconds: number;
  cooldownSeconds: number;
  createBurst: number;
  createPerMinute: number;
  /** Fingerprints tracked at most; symptoms of new ones beyond it are counted and reported, not kept. */
  maxTracked: number;
  /** Where what is held is kept across restarts; absent: in memory only. */
  journal?: SymptomJournal;
  /** Told of each write: an Abnormal created, a repeat counted on one, an end recorded on one. */
  onWritten?: (abnormal: Abnormal, what: 'created' | 'counted' | 'ended') => void;
};

type Entry = {
  fingerprint: string;
  first: Symptom;
  /** Seen but not yet written. */
  pending: number;
  firstSeen: Date;
  lastSeen: Date;
  /** The Abnormal these symptoms count on, as last written or read. */
  abnormal?: Abnormal;
  /** Looked for an existing Abnormal with this fingerprint (after a restart) already. */
  searched: boolean;
  /** `abnormal` is another symptom's, about the same subject: these count in its spec.related. */
  joined?: boolean;
};

/** Distinct (source, reason) pairs counted by name; more are counted as (source, Other). */
const MAX_PROBLEMS = 200;

export class SymptomSink {
  private readonly entries = new Map<string, Entry>();
  /** Ends to record, by fingerprint: when each symptom ended. */
  private readonly endings = new Map<string, { symptom: Symptom; endedAt: string }>();
  private tokens: number;
  private lastRefill = Date.now();
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  private soon = false;
  /** Fingerprints whose count changed since the journal last took them. */
  private readonly unjournaled = new Set<string>();
  private journaling: Promise<void> = Promise.resolve();
  private readonly journaledListeners: Array<() => Promise<void>> = [];
  /** For tests, metrics and the benchmark. */
  readonly stats = {
    accepted: 0, bySource: {} as Record<string, number>, created: 0, updated: 0, ended: 0, writeFailures: 0, rateLimited: 0, untracked: 0,
    /** Symptoms counted on another symptom's Abnormal about the same subject (spec.related). */
    joined: 0,
    /** Poison symptoms by source: their Abnormal would be, or was, refused as invalid. */
    rejectedBySource: {} as Record<string, number>,
    /** Symptoms replayed from the journal at start. */
    replayed: 0,
    /** Symptoms the full journal could not take (still held in memory). */
    journalFull: 0,
    /**
     * Symptoms by source and reason ("source\treason"), repeats included: nodemedic_problems_total.
     * At most MAX_PROBLEMS pairs; a Kubernetes Event's or an alert's reason is chosen by whoever wrote
     * it, so pairs beyond that are counted under the reason "Other".
     */
    byProblem: new Map<string, number>(),
  };

  constructor(private readonly opts: SinkOptions) {
    this.tokens = opts.createBurst;
  }

  /** Replay what a previous run journaled, then flush on a timer. Before any source starts. */
  async start(): Promise<void> {
    for (const record of (await this.opts.journal?.load()) ?? []) {
      if (this.entries.size >= this.opts.maxTracked) break;
      this.entries.set(record.fingerprint, { fingerprint: record.fingerprint, first: record.symptom, pending: record.pending, firstSeen: record.firstSeen, lastSeen: record.lastSeen, searched: false });
      this.stats.replayed += record.pending;
    }
    if (this.stats.replayed > 0) {
      this.opts.log.info({ symptoms: this.stats.replayed, fingerprints: this.entries.size }, 'replaying the symptoms the last run had not written yet');
      this.flushSoon();
    }
    this.timer = setInterval(() => void this.flush(), this.opts.flushSeconds * 1000);
  }

  /**
   * Journal every count that changed since the last call, fsync'd. A source calls this before it saves
   * its position: what it read up to there is then on disk.
   */
  syncJournal(): Promise<void> {
    return this.journalTurn('write the symptom journal', async (journal) => {
      if (this.unjournaled.size === 0) return;
      const records = [...this.unjournaled].map((fp) => this.entries.get(fp)).filter((e): e is Entry => e !== undefined && e.pending > 0).map(recordOf);
      this.unjournaled.clear();
      if (await journal.append(records)) this.journaled();
      else {
        this.stats.journalFull += records.reduce((sum, r) => sum + r.pending, 0);
        this.opts.log.warn({ symptoms: records.length, journalBytes: journal.bytes, full: this.stats.journalFull }, 'the symptom journal is full: these are held in memory only until it is rewritten');
      }
    });
  }

  /** Rewrite the journal to hold only what is still pending (after a flush wrote the rest). */
  private compactJournal(): Promise<void> {
    return this.journalTurn('rewrite the symptom journal', async (journal) => {
      if (journal.bytes === 0) return;
      this.unjournaled.clear();
      await journal.rewrite([...this.entries.values()].filter((e) => e.pending > 0).map(recordOf));
      this.journaled();
    });
  }

  /**
   * `listener` is called each time the journal has just taken everything the sources handed so far:
   * their positions may move past it now (PositionSync.onJournaled).
   */
  onJournaled(listener: () => Promise<void>): void {
    this.journaledListeners.push(listener);
  }

  private journaled(): void {
    for (const listener of this.journaledListeners) void listener();
  }

  /** Work on the journal, one at a time; a failure is logged, and the next turn still runs. */
  private journalTurn(what: string, work: (journal: SymptomJournal) => Promise<void>): Promise<void> {
    const journal = this.opts.journal;
    this.journaling = this.journaling
      .then(() => journal && work(journal))
      .catch((err) => this.opts.log.warn({ err: (err as Error).message }, `could not ${what}`));
    return this.journaling;
  }

  /** Take a symptom. Never blocks, never throws: the store is written by flush(). */
  accept(symptom: Symptom): void {
    this.stats.accepted++;
    this.stats.bySource[symptom.source] = (this.stats.bySource[symptom.source] ?? 0) + 1;
    let problem = `${symptom.source}\t${symptom.reason}`;
    if (!this.stats.byProblem.has(problem) && this.stats.byProblem.size >= MAX_PROBLEMS) problem = `${symptom.source}\tOther`;
    this.stats.byProblem.set(problem, (this.stats.byProblem.get(problem) ?? 0) + 1);
    const fingerprint = fingerprintOf(symptom, symptom.nodeName ?? this.opts.nodeName);
    if (symptom.endedAt !== undefined) {
      if (!this.endings.has(fingerprint) && this.endings.size >= this.opts.maxTracked) return this.untracked(symptom);
      this.endings.set(fingerprint, { symptom, endedAt: symptom.endedAt });
      this.flushSoon();
      return;
    }
    let entry = this.entries.get(fingerprint);
    if (!entry) {
      if (this.entries.size >= this.opts.maxTracked) return this.untracked(symptom);
      entry = { fingerprint, first: symptom, pending: 0, firstSeen: symptom.seenAt, lastSeen: symptom.seenAt, searched: false };
      this.entries.set(fingerprint, entry);
      this.flushSoon(); // a new symptom becomes an Abnormal now; repeats wait for the next flush
    }
    entry.pending++;
    entry.lastSeen = symptom.seenAt;
    this.unjournaled.add(fingerprint);
  }

  /** Write what is pending, then stop; what could not be written stays in the journal for the next start. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.syncJournal();
    await this.flush();
  }

  /** Write every pending count: one create or update per fingerprint. One flush runs at a time. */
  async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = (async () => {
      for (const entry of [...this.entries.values()]) {
        try {
          await this.flushEntry(entry);
        } catch (err) {
          this.stats.writeFailures++;
          this.opts.log.warn({ err: (err as Error).message, reason: entry.first.reason }, 'could not write a symptom; it stays counted and is tried again');
        }
      }
      for (const [fingerprint, ending] of [...this.endings]) {
        try {
          if (await this.recordEnd(fingerprint, ending.endedAt)) this.endings.delete(fingerprint);
        } catch (err) {
          this.stats.writeFailures++;
          this.opts.log.warn({ err: (err as Error).message, reason: ending.symptom.reason }, 'could not record the end of a symptom; it is tried again');
        }
      }
      await this.syncJournal(); // what was seen while writing
      await this.compactJournal();
    })().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private untracked(symptom: Symptom): void {
    this.stats.untracked++;
    this.opts.log.warn({ reason: symptom.reason, untracked: this.stats.untracked }, 'too many distinct symptoms at once; this one is counted but not kept');
  }

  /**
   * Record an ended symptom's end on the Abnormal of its fingerprint (spec.occurrences.endedAt, and an
   * alert's spec.prometheusAlert.endsAt).
   * True when done or nothing is left to do (no such Abnormal); false to try again at the next flush
   * (a conflict, or the Abnormal not yet created because its creation waits for a token).
   */
  private async recordEnd(fingerprint: string, endsAt: string): Promise<boolean> {
    if ((this.entries.get(fingerprint)?.pending ?? 0) > 0) return false;
    const [abnormal] = await this.opts.store.findByFingerprint(fingerprint, this.endings.get(fingerprint)?.symptom.nodeName ?? this.opts.nodeName);
    if (!abnormal || abnormal.spec.occurrences?.endedAt === endsAt) return true;
    const { spec } = abnormal;
    try {
      const written = await this.opts.store.writeSpec(abnormal, {
        ...spec,
        occurrences: { count: 1, ...spec.occurrences, endedAt: endsAt },
        ...(spec.prometheusAlert ? { prometheusAlert: { ...spec.prometheusAlert, endsAt } } : {}),
      });
      this.stats.ended++;
      this.opts.onWritten?.(written, 'ended');
      return true;
    } catch (err) {
      if (err instanceof ConflictError) return false;
      throw err;
    }
  }

  private flushSoon(): void {
    if (this.soon) return;
    this.soon = true;
    setImmediate(() => {
      this.soon = false;
      void this.flush().then(() => {
        // A flush already running when this one was asked for may have missed the newest entries
        // (never looked at yet). Rate-limited ones wait for the next periodic flush.
        if ([...this.entries.values()].some((e) => e.pending > 0 && !e.searched)) this.flushSoon();
      });
    });
  }

  private async flushEntry(entry: Entry): Promise<void> {
    if (entry.pending === 0) {
      if (this.expired(entry)) this.entries.delete(entry.fingerprint);
      return;
    }
    if (!entry.abnormal && !entry.searched) {
      entry.searched = true;
      const node = entry.first.nodeName ?? this.opts.nodeName;
      const found = await this.opts.store.findByFingerprint(entry.fingerprint, node);
      entry.abnormal = found.find((a) => this.stillCounting(a));
      const subject = subjectLabelOf(entry.first.subject, node);
      if (!entry.abnormal && subject) {
        entry.abnormal = (await this.opts.store.findBySubject(subject, node)).find((a) => this.joins(entry.first, a));
        entry.joined = entry.abnormal !== undefined;
      }
    }
    if (entry.abnormal) {
      const current = await this.opts.store.get(keyOf(entry.abnormal));
      if (current && this.stillCounting(current)) return entry.joined ? this.addRelated(entry, current) : this.addTo(entry, current);
      entry.abnormal = undefined; // gone, or ended longer ago than the cooldown: a new Abnormal
      entry.joined = false;
    }
    const refused = refusalOf(entry.first, this.opts.nodeName);
    if (refused) return this.reject(entry, refused);
    if (!this.takeToken()) {
      this.stats.rateLimited++;
      return; // stays pending; created when a token frees up
    }
    const pending = entry.pending;
    let created: Abnormal;
    try {
      created = await this.opts.store.create(abnormalOf(entry.first, this.opts.nodeName, pending, entry.firstSeen, entry.lastSeen));
    } catch (err) {
      if (!(err instanceof InvalidObjectError)) throw err;
      this.tokens++; // nothing was created: the token goes back
      return this.reject(entry, [err.message]);
    }
    entry.pending -= pending;
    entry.abnormal = created;
    this.stats.created++;
    this.opts.onWritten?.(created, 'created');
  }

  /** A poison symptom: said, counted and dropped with its repeats. */
  private reject(entry: Entry, problems: string[]): void {
    const source = entry.first.source;
    this.stats.rejectedBySource[source] = (this.stats.rejectedBySource[source] ?? 0) + 1;
    this.entries.delete(entry.fingerprint);
    this.opts.log.warn({ source, reason: entry.first.reason, problems, occurrences: entry.pending }, 'a symptom was refused as invalid; dropped, not retried');
  }

  private async addTo(entry: Entry, current: Abnormal): Promise<void> {
    const pending = entry.pending;
    const before = current.spec.occurrences;
    try {
      entry.abnormal = await this.opts.store.writeSpec(current, {
        ...current.spec,
        occurrences: { ...before, count: (before?.count ?? 1) + pending, firstSeen: before?.firstSeen ?? toRFC3339(entry.firstSeen), lastSeen: toRFC3339(entry.lastSeen) },
      });
      entry.pending -= pending;
      this.stats.updated++;
      this.opts.onWritten?.(entry.abnormal, 'counted');
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err; // changed meanwhile: counted again at the next flush
    }
  }

  /**
   * Whether `symptom` joins `abnormal`, another symptom's about the same subject: when that one still
   * counts (open, or cooling down). A Kubernetes Event joins anything; a symptom of the agent's own
   * (a stuck pod) never joins an Abnormal an Event made, for it carries what the diagnosers act on.
   */
  private joins(symptom: Symptom, abnormal: Abnormal): boolean {
    if (abnormal.metadata?.labels?.[FINGERPRINT_LABEL] === fingerprintOf(symptom, symptom.nodeName ?? this.opts.nodeName)) return false;
    if (abnormal.spec.source === 'KubernetesEvent' && symptom.source !== 'KubernetesEvent') return false;
    return this.stillCounting(abnormal);
  }

  /** Count what is pending on `current`'s spec.related, one entry per source and reason. */
  private async addRelated(entry: Entry, current: Abnormal): Promise<void> {
    const pending = entry.pending;
    const { source, reason } = entry.first;
    const related = [...(current.spec.related ?? [])];
    const at = related.findIndex((r) => r.source === source && r.reason === reason);
    if (at >= 0) {
      related[at] = { ...related[at]!, count: related[at]!.count + pending, lastSeen: toRFC3339(entry.lastSeen) };
    } else if (related.length < LIMITS.listItems) {
      related.push({ source, reason, count: pending, firstSeen: toRFC3339(entry.firstSeen), lastSeen: toRFC3339(entry.lastSeen), message: fitText(messageOf(entry.first), LIMITS.shortText) });
    } else {
      entry.pending -= pending; // the list is full: counted here, as a symptom not kept
      this.stats.untracked += pending;
      return;
    }
    try {
      entry.abnormal = await this.opts.store.writeSpec(current, { ...current.spec, related });
      entry.pending -= pending;
      this.stats.joined += pending;
      this.opts.onWritten?.(entry.abnormal, 'counted');
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err; // changed meanwhile: counted again at the next flush
    }
  }

  /** Open, or ended less than the cooldown ago. */
  private stillCounting(abnormal: Abnormal): boolean {
    if (!isTerminal(abnormal.status?.phase)) return true;
    return Date.now() - endedAt(abnormal) < this.opts.cooldownSeconds * 1000;
  }

  /** Quiet for longer than the cooldown: forget it (memory stays bounded); a repeat finds its Abnormal by label. */
  private expired(entry: Entry): boolean {
    return Date.now() - entry.lastSeen.getTime() > this.opts.cooldownSeconds * 1000;
  }

  private takeToken(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.opts.createBurst, this.tokens + ((now - this.lastRefill) / 60_000) * this.opts.createPerMinute);
    this.lastRefill = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

const recordOf = (e: Entry): JournalRecord => ({ fingerprint: e.fingerprint, symptom: e.first, pending: e.pending, firstSeen: e.firstSeen, lastSeen: e.lastSeen });

/** What a symptom said, in a line: an Event's message, a log entry's first line. */
function messageOf(symptom: Symptom): string {
  const { kubernetesEvent, log } = symptom.detail;
  const eventMessage = (kubernetesEvent as { message?: unknown } | undefined)?.message;
  return typeof eventMessage === 'string' ? eventMessage : (log?.logEntry?.split('\n')[0] ?? '');
}
