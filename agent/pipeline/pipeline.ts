// The pipeline: collect → diagnose → recover, one step per status write, driven only by what the
// Abnormal says. reconcile() reads the Abnormal from the store, does the step its phase calls for,
// writes status, and repeats until a terminal phase — so a crash at any line resumes from the last
// status written. The pipeline knows processors only through the registry.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { AGENT_CONTEXT_PREFIX } from '../api/crds.js';
import { keyOf, type AbnormalKey } from '../api/kinds.js';
import { fitStatus } from '../api/limits.js';
import { canTransition, isTerminal, setCondition, toRFC3339, type ConditionType, type Phase } from '../api/phase.js';
import { Reason } from '../api/reasons.js';
import type { Abnormal, AbnormalStatus, ProcessorRef } from '../api/types.generated.js';
import { validateAbnormalStatus } from '../api/validate.js';
import { BUILTIN_NAMESPACE, refName, type Outcome, type Processor } from '../processors/contract.js';
import type { ProcessorRegistry } from '../processors/registry.js';
import { ConflictError, type AbnormalStore, type EventRecorder, type EventType } from '../store/store.js';
import { WorkQueue } from './queue.js';
import type { RecoveryRails } from './rails.js';

/**
 * The recovery log, kept in status.context: every recoverer call is recorded before it is made, and
 * its result after. A call with no result means the agent stopped while a recoverer was acting; the
 * agent cannot tell what happened then, so it moves the Abnormal to Unknown instead of acting again.
 */
export const RECOVERY_LOG = `${AGENT_CONTEXT_PREFIX}recovery`;
type RecoveryAttempt = { recoverer: string; startedAt: string; result?: 'Recovered' | 'NotRecovered' | 'Failed'; message?: string };

export type PipelineOptions = {
  store: AbnormalStore;
  /** Where each phase change and each hold by a rail is told (kubectl describe). */
  events: EventRecorder;
  registry: ProcessorRegistry;
  nodeName: string;
  concurrency: number;
  log: Logger;
  now?: () => Date;
  /** Told of every processor call and its outcome (`nodemedic run` prints them; metrics count them). */
  onStep?: (processor: Processor, outcome: Outcome, ms: number) => void;
  /** Told of every phase an Abnormal enters, once it is written (metrics). */
  onTransition?: (phase: Phase, reason: string) => void;
  /** Told of every Abnormal the store says appeared or changed, once the store holds the change. */
  onChange?: (key: AbnormalKey) => void;
  /** Rate limits, cooldown and the cluster-wide budget, checked before any recoverer acts. */
  rails?: RecoveryRails;
  /** Dry run: HTTP and script recoverers are not called (built-in ones are told, and say what they would do). */
  dryRun?: boolean;
  /** How long an Abnormal held back by a rail waits before it is looked at again. */
  railRetryMs?: number;
};

export class Pipeline {
  private readonly queue: WorkQueue<AbnormalKey>;
  private readonly now: () => Date;
  private readonly halt = new AbortController();
  /** Abnormals held back by a rail, with a look again scheduled. */
  private readonly waiting = new Set<AbnormalKey>();
  /** For metrics. */
  readonly stats = { reconcileErrors: 0 };

  constructor(private readonly opts: PipelineOptions) {
    this.now = opts.now ?? (() => new Date());
    this.queue = new WorkQueue(opts.concurrency, (key) => this.reconcile(key), (key, err) => {
      this.stats.reconcileErrors++;
      opts.log.error({ err, abnormal: key }, 'reconcile failed; it will be retried on the next change or resync');
    });
  }

  /** Abnormals waiting for a worker, and being worked on. */
  get queueSize(): { pending: number; running: number } {
    return this.queue.size;
  }

  start(): Promise<void> {
    return this.opts.store.start((key) => {
      this.queue.add(key);
      this.opts.onChange?.(key);
    });
  }

  /** Finish the steps in flight and take no new ones; `abort` also cancels processor calls in flight. */
  async stop(abort = false): Promise<void> {
    if (abort) this.halt.abort();
    await this.queue.stop();
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  async reconcile(key: AbnormalKey): Promise<void> {
    let abnormal = await this.opts.store.get(key);
    try {
      while (abnormal && abnormal.spec.nodeName === this.opts.nodeName && !isTerminal(abnormal.status?.phase)) {
        abnormal = await this.step(abnormal);
      }
    } catch (err) {
      if (!(err instanceof StepInterrupted)) throw err;
    }
  }

  /** One step for the Abnormal's phase; resolves to the Abnormal as stored after the step's write. */
  private async step(abnormal: Abnormal): Promise<Abnormal | undefined> {
    if (this.halt.signal.aborted) throw new StepInterrupted();
    const phase = abnormal.status?.phase;
    switch (phase) {
      case undefined:
        return this.commit(abnormal, { ...abnormal.status, phase: 'InformationCollecting', startTime: toRFC3339(this.now()) },
          { reason: Reason.Accepted, message: `accepted by the agent on ${this.opts.nodeName}` });
      case 'InformationCollecting':
        return this.collect(abnormal);
      case 'Diagnosing':
        return this.diagnose(abnormal);
      case 'Recovering':
        return this.recover(abnormal);
      default:
        return undefined; // terminal
    }
  }

  private async collect(abnormal: Abnormal): Promise<Abnormal | undefined> {
    let { status, ran, total, failures } = await this.runCollectors(abnormal, { ...abnormal.status });
    const [condition, reason] =
      total === 0 ? (['True', Reason.NoCollectors] as const)
      : failures.length === 0 ? (['True', Reason.Collected] as const)
      : failures.length < total ? (['True', Reason.PartiallyCollected] as const)
      : (['False', Reason.CollectionFailed] as const);
    const message = failures.length > 0 ? `failed: ${failures.join('; ')}` : `${ran} collector(s) ran`;
    status = this.condition(status, 'InformationCollected', condition, reason, message);
    const next: Phase = abnormal.spec.skipDiagnosis ? (abnormal.spec.skipRecovery ? 'Succeeded' : 'Recovering') : 'Diagnosing';
    return this.commit(abnormal, { ...status, phase: next }, { reason, message });
  }

  /** The Abnormal's collectors, in order, each given the status so far; what they return merged into `status`. */
  private async runCollectors(abnormal: Abnormal, status: AbnormalStatus): Promise<{ status: AbnormalStatus; ran: number; total: number; failures: string[] }> {
    const { processors, missing } = await this.opts.registry.resolve('InformationCollector', abnormal.spec.assignedInformationCollectors);
    const failures = missing.map(notRegistered);
    for (const processor of processors) {
      const outcome = await this.run(processor, { ...abnormal, status });
      if (outcome.ok) status = merge(status, outcome);
      else failures.push(`${refName(processor.ref)}: ${failed(outcome)}`);
    }
    return { status, ran: processors.length, total: processors.length + missing.length, failures };
  }

  private async diagnose(abnormal: Abnormal): Promise<Abnormal | undefined> {
    const { processors, missing } = await this.opts.registry.resolve('Diagnoser', abnormal.spec.assignedDiagnosers);
    let status: AbnormalStatus = { ...abnormal.status };
    const reasons = missing.map(notRegistered);
    for (const processor of processors) {
      const outcome = await this.run(processor, { ...abnormal, status });
      if (outcome.ok) status = merge(status, outcome);
      if (outcome.ok && outcome.identified) {
        const message = `identified by ${refName(processor.ref)}${outcome.message ? `: ${outcome.message}` : ''}`;
        status = this.condition({ ...status, identifiable: true, diagnoser: processor.ref }, 'Identified', 'True', outcome.reason ?? Reason.Identified, message);
        const next: Phase = abnormal.spec.skipRecovery ? 'Succeeded' : 'Recovering';
        return this.commit(abnormal, { ...status, phase: next }, { reason: Reason.Identified, message });
      }
      reasons.push(`${refName(processor.ref)}: ${outcome.ok ? `not identified${outcome.message ? ` (${outcome.message})` : ''}` : failed(outcome)}`);
    }
    const message = processors.length + missing.length === 0 ? 'no diagnoser is registered' : `no diagnoser identified the fault: ${reasons.join('; ')}`;
    status = this.condition({ ...status, identifiable: false }, 'Identified', 'False', Reason.NotIdentified, message);
    return this.commit(abnormal, { ...status, phase: 'Failed' }, { reason: Reason.NotIdentified, message, eventType: 'Warning' });
  }

  private async recover(abnormal: Abnormal): Promise<Abnormal | undefined> {
    const log = recoveryLog(abnormal.status);
    const unfinished = log.find((attempt) => attempt.result === undefined);
    if (unfinished) {
      const message = `the agent stopped while ${unfinished.recoverer} was acting (started ${unfinished.startedAt}); ` +
        'it cannot tell whether the fault was recovered and will not act again: a person should look';
      const status = this.condition({ ...abnormal.status }, 'Recovered', 'Unknown', Reason.RecoveryInterrupted, message);
      return this.commit(abnormal, { ...status, phase: 'Unknown' }, { reason: Reason.RecoveryInterrupted, message, eventType: 'Warning' });
    }
    const { processors, missing } = await this.opts.registry.resolve('Recoverer', abnormal.spec.assignedRecoverers);
    const tried = new Set(log.map((attempt) => attempt.recoverer));
    const next = processors.find((p) => !tried.has(refName(p.ref)));
    if (!next) {
      const reasons = [...missing.map(notRegistered), ...log.map((a) => `${a.recoverer}: ${a.message ?? a.result}`)];
      const message = reasons.length === 0 ? 'no recoverer is registered' : `no recoverer recovered the fault: ${reasons.join('; ')}`;
      const status = this.condition({ ...abnormal.status, recoverable: false }, 'Recovered', 'False', Reason.NotRecovered, message);
      return this.commit(abnormal, { ...status, phase: 'Failed' }, { reason: Reason.NotRecovered, message, eventType: 'Warning' });
    }

    // The rails, before anything acts (a dry run acts on nothing, so it takes no part of them).
    const dryRun = this.opts.dryRun === true;
    const admission = this.opts.rails && !dryRun ? await this.opts.rails.admit(abnormal) : undefined;
    if (admission && !admission.ok) {
      if (!admission.wait) {
        const status = this.condition({ ...abnormal.status, recoverable: false }, 'Recovered', 'False', admission.reason, admission.message);
        return this.commit(abnormal, { ...status, phase: 'Failed' }, { reason: admission.reason, message: admission.message, eventType: 'Warning' });
      }
      this.retryLater(keyOf(abnormal));
      const held = abnormal.status?.conditions?.find((c) => c.type === 'Recovered');
      if (held?.reason === admission.reason) return undefined; // already said so; a write per retry would be noise
      const status = this.condition({ ...abnormal.status }, 'Recovered', 'Unknown', admission.reason, admission.message);
      await this.commit(abnormal, status, { reason: admission.reason, message: admission.message });
      await this.opts.events.recordEvent(abnormal, 'Warning', admission.reason, admission.message);
      return undefined;
    }
    let acted = false;
    try {
      const confirmed = await this.confirm(abnormal);
      if (!confirmed.ok) {
        const { reason, message } = confirmed;
        const status = this.condition({ ...abnormal.status, recoverable: false }, 'Recovered', 'False', reason, message);
        return await this.commit(abnormal, { ...status, phase: 'Failed' }, { reason, message, eventType: 'Warning' });
      }
      acted = true;
      return await this.callRecoverer(abnormal, confirmed.evidence, next, log, dryRun);
    } finally {
      await admission?.release(acted); // a recovery that never acted leaves no mark on the rails
    }
  }

  /**
   * The diagnosis, confirmed afresh right before a recoverer acts. Nothing stored in status is taken as
   * evidence — anyone who may write an Abnormal's status may have written it — so every collector runs
   * again on a status holding only the agent's own records, then the diagnoser on record (one of those
   * the Abnormal's diagnosis would run) runs on that fresh evidence and must identify the fault again.
   * The recoverer is given this evidence and this diagnosis, never the stored ones. An Abnormal that
   * skips diagnosis gets fresh evidence and no diagnosis.
   */
  private async confirm(abnormal: Abnormal): Promise<{ ok: true; evidence: Record<string, unknown> } | { ok: false; reason: string; message: string }> {
    let { status } = await this.runCollectors(abnormal, { ...abnormal.status, context: splitContext(abnormal.status?.context).agent });
    const evidence = () => splitContext(status.context).evidence;
    if (abnormal.spec.skipDiagnosis) return { ok: true, evidence: evidence() };
    const unconfirmed = (message: string) => ({ ok: false as const, reason: Reason.DiagnosisNotConfirmed, message });
    const ref = abnormal.status?.diagnoser;
    if (!ref) return unconfirmed('no diagnosis is on record: nothing acts without a diagnosis the agent has just confirmed');
    const { processors: diagnosers } = await this.opts.registry.resolve('Diagnoser', abnormal.spec.assignedDiagnosers);
    const diagnoser = diagnosers.find((d) => refName(d.ref) === refName(ref));
    if (!diagnoser) return unconfirmed(`${refName(ref)}, the diagnoser on record, is not one this Abnormal's diagnosis runs`);
    const outcome = await this.run(diagnoser, { ...abnormal, status });
    if (!outcome.ok) return unconfirmed(`confirming the diagnosis before acting, ${refName(ref)} failed: ${failed(outcome)}`);
    if (!outcome.identified) return unconfirmed(`confirming the diagnosis before acting, ${refName(ref)} no longer identifies the fault${outcome.message ? `: ${outcome.message}` : ''}`);
    status = merge(status, outcome);
    return { ok: true, evidence: evidence() };
  }

  private async callRecoverer(abnormal: Abnormal, evidence: Record<string, unknown>, next: Processor, log: RecoveryAttempt[], dryRun: boolean): Promise<Abnormal | undefined> {
    // Write-ahead: the call is on record before it is made.
    const attempt: RecoveryAttempt = { recoverer: refName(next.ref), startedAt: toRFC3339(this.now()) };
    let status = withRecoveryLog({ ...abnormal.status, recoverer: next.ref }, [...log, attempt]);
    status = this.condition(status, 'Recovered', 'Unknown', Reason.RecovererRunning, `calling ${attempt.recoverer}`);
    // On a conflict this write is not reapplied: whoever changed the object may have recorded a call
    // of their own, so the step starts over from what the store now says.
    const recorded = await this.commit(abnormal, status, { reapplyOnConflict: false });
    if (!recorded || !isDeepStrictEqual(recoveryLog(recorded.status), [...log, attempt])) return recorded;

    // What the recoverer acts on: the evidence and diagnosis just confirmed, beside the agent's records.
    const stored = splitContext(recorded.status?.context);
    const confirmed: Abnormal = { ...recorded, status: { ...recorded.status, context: { ...stored.evidence, ...evidence, ...stored.agent } } };
    const outcome: Outcome = dryRun && next.ref.namespace !== BUILTIN_NAMESPACE
      ? { ok: true, recovered: false, reason: Reason.DryRun, message: 'dry run: not called (only built-in recoverers are asked what they would do)' }
      : await this.run(next, confirmed);
    status = outcome.ok ? merge({ ...confirmed.status }, outcome) : { ...confirmed.status };
    const done: RecoveryAttempt = {
      ...attempt,
      result: outcome.ok ? (outcome.recovered ? 'Recovered' : 'NotRecovered') : 'Failed',
      message: outcome.ok ? (outcome.message ?? (outcome.recovered ? 'recovered' : 'not recovered')) : failed(outcome),
    };
    status = withRecoveryLog(status, [...log, done]);
    if (outcome.ok && outcome.recovered) {
      const message = `recovered by ${attempt.recoverer}${outcome.message ? `: ${outcome.message}` : ''}`;
      status = this.condition({ ...status, recoverable: true }, 'Recovered', 'True', outcome.reason ?? Reason.Recovered, message);
      return this.commit(recorded, { ...status, phase: 'Succeeded' }, { reason: Reason.Recovered, message });
    }
    status = this.condition(status, 'Recovered', 'False', Reason.RecovererFailed, `${attempt.recoverer}: ${done.message}`);
    return this.commit(recorded, status); // the next step tries the next recoverer
  }

  /**
   * Look at a held-back Abnormal again later (once per Abnormal, however often it is looked at
   * meanwhile), after half to one and a half times railRetryMs: nodes held back by the cluster budget at
   * the same moment then ask again spread out, so a freed slot is taken within moments instead of all
   * of them asking together one period later (measured with 100 agents: docs/benchmarks.md, fleet).
   */
  private retryLater(key: AbnormalKey): void {
    if (this.waiting.has(key)) return;
    this.waiting.add(key);
    setTimeout(() => {
      this.waiting.delete(key);
      this.queue.add(key);
    }, (this.opts.railRetryMs ?? 30_000) * (0.5 + Math.random())).unref();
  }

  /** Runs one processor; a throw (a bug in it) becomes a failed outcome, never a stuck Abnormal. */
  private async run(processor: Processor, abnormal: Abnormal): Promise<Outcome> {
    const started = Date.now();
    let outcome: Outcome;
    try {
      outcome = await processor.run(abnormal, this.halt.signal);
    } catch (err) {
      outcome = { ok: false, reason: Reason.ProcessorError, message: err instanceof Error ? err.message : String(err) };
    }
    // Cancelled by a hard stop: what the processor did not finish is not its failure. Write nothing;
    // the step runs again after the restart (a recoverer's write-ahead record makes that Unknown).
    if (this.halt.signal.aborted) throw new StepInterrupted();
    this.opts.onStep?.(processor, outcome, Date.now() - started);
    this.opts.log.info({ abnormal: keyOf(abnormal), processor: refName(processor.ref), kind: processor.kind,
      ok: outcome.ok, ms: Date.now() - started, ...(outcome.ok ? {} : { reason: outcome.reason }) }, 'processor ran');
    return outcome;
  }

  private condition(status: AbnormalStatus, type: ConditionType, value: 'True' | 'False' | 'Unknown', reason: string, message: string): AbnormalStatus {
    return { ...status, conditions: setCondition(status.conditions, { type, status: value, reason, message }, this.now()) };
  }

  /**
   * Write `status` (fitted to the API's limits); with a reason, it becomes the object's latest reason
   * and message (`kubectl get ab` shows the reason). On a conflict — someone changed the object, most
   * likely its spec or labels — write the same status onto the fresh object, as status is the agent's
   * alone (unless `reapplyOnConflict` is false); give up, returning the fresh object, if it has moved to
   * another phase. A phase change gets an Event of `eventType`.
   */
  private async commit(abnormal: Abnormal, status: AbnormalStatus, options: CommitOptions = {}): Promise<Abnormal | undefined> {
    const { reason, message, eventType = 'Normal', reapplyOnConflict = true } = options;
    const from = abnormal.status?.phase;
    const to = status.phase;
    if (to !== from && (to === undefined || !canTransition(from, to))) throw new Error(`bug: illegal phase transition ${from} → ${to}`);
    const latest = reason !== undefined ? { ...status, reason, message: message ?? status.message } : status;
    const fitted = validateAbnormalStatus(fitStatus(latest));
    let current: Abnormal | undefined = abnormal;
    for (let attempt = 0; ; attempt++) {
      try {
        const written = await this.opts.store.writeStatus(current, fitted);
        if (to !== from && to !== undefined) {
          this.opts.onTransition?.(to, reason ?? to);
          await this.opts.events.recordEvent(written, eventType, reason ?? to, `${from ?? '(new)'} → ${to}: ${message ?? ''}`);
        }
        return written;
      } catch (err) {
        if (!(err instanceof ConflictError) || attempt >= 5) throw err;
        current = await this.opts.store.get(keyOf(abnormal));
        if (!current || !reapplyOnConflict || current.status?.phase !== from) return current;
      }
    }
  }
}

type CommitOptions = {
  /** The outcome of the step: the object's latest reason and message, and the Event's. */
  reason?: string;
  message?: string;
  eventType?: EventType;
  /** Write the same status onto a fresh read after a conflict (default). */
  reapplyOnConflict?: boolean;
};

class StepInterrupted extends Error {}

const notRegistered = (ref: ProcessorRef) => `${refName(ref)}: not registered`;
const failed = (outcome: Outcome & { ok: false }) => `${outcome.reason}: ${outcome.message}`;

function merge(status: AbnormalStatus, outcome: Outcome & { ok: true }): AbnormalStatus {
  const out = { ...status };
  if (outcome.context) out.context = { ...out.context, ...outcome.context };
  if (outcome.output !== undefined) out.output = out.output ? `${out.output}\n${outcome.output}` : outcome.output;
  return out;
}

/** status.context split in two: the agent's own records (keys under nodemedic.io/, such as the recovery log), and what processors wrote, the evidence. */
function splitContext(context: Record<string, unknown> | undefined): { agent: Record<string, unknown>; evidence: Record<string, unknown> } {
  const split = { agent: {} as Record<string, unknown>, evidence: {} as Record<string, unknown> };
  for (const [key, value] of Object.entries(context ?? {})) split[key.startsWith(AGENT_CONTEXT_PREFIX) ? 'agent' : 'evidence'][key] = value;
  return split;
}

function recoveryLog(status: AbnormalStatus | undefined): RecoveryAttempt[] {
  const log = status?.context?.[RECOVERY_LOG];
  return Array.isArray(log) ? (log as RecoveryAttempt[]) : [];
}

function withRecoveryLog(status: AbnormalStatus, log: RecoveryAttempt[]): AbnormalStatus {
  return { ...status, context: { ...status.context, [RECOVERY_LOG]: log } };
}
