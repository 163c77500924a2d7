// The agent's Prometheus metrics, served at GET /metrics. Counts the parts keep themselves (the sink's
// stats, a source's lost lines, the pipeline's errors and queue) are read at scrape time; the pipeline
// tells of each processor call and phase change as it happens. One registry per agent, so that two
// agents in one process (the tests) do not add into each other. Label values are bounded: sources,
// phases, reasons the agent writes, and processors that are registered — never a pod or a line.
// prom-client's parts one by one: its index also loads the Pushgateway (node:https, node:zlib), the
// cluster aggregator (node:cluster) and Summary (two packages of its own), which the agent never uses.
import Counter from 'prom-client/lib/counter.js';
import collectDefaultMetrics from 'prom-client/lib/defaultMetrics.js';
import Gauge from 'prom-client/lib/gauge.js';
import Histogram from 'prom-client/lib/histogram.js';
import Registry from 'prom-client/lib/registry.js';
import type { GarbageCollector } from './pipeline/garbage.js';
import type { AbnormalStore } from './store/store.js';
import type { Pipeline } from './pipeline/pipeline.js';
import { refName, type Outcome, type Processor } from './processors/contract.js';
import { AlertSource } from './sources/alerts.js';
import type { SymptomSink } from './sources/sink.js';
import type { SymptomSource } from './sources/source.js';

/** Distinct (type, reason) pairs nodemedic_problem_active shows at most. */
const MAX_PROBLEM_SERIES = 200;

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly processorSeconds = new Histogram({
    name: 'nodemedic_processor_duration_seconds',
    help: 'Processor calls by kind, processor and outcome (ok, failed, identified, not_identified, recovered, not_recovered)',
    labelNames: ['kind', 'processor', 'outcome'] as const,
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  private readonly transitions = new Counter({
    name: 'nodemedic_abnormal_transitions_total',
    help: 'Abnormals entering a phase, by phase and reason (e.g. Failed/NotIdentified, Succeeded/Recovered)',
    labelNames: ['phase', 'reason'] as const,
    registers: [this.registry],
  });

  /**
   * process_* and nodejs_*: memory, CPU, event-loop delay, sampled every `eventLoopSampleMs`
   * (config.eventLoopSampleMs). Node's monitor records the time between samples, so nodejs_eventloop_lag_*
   * include that much: the delay itself is the value less it.
   */
  constructor(eventLoopSampleMs: number) {
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: eventLoopSampleMs });
  }

  /** The pipeline's onStep. */
  processorRan(processor: Processor, outcome: Outcome, ms: number): void {
    this.processorSeconds.observe({ kind: processor.kind, processor: refName(processor.ref), outcome: outcomeLabel(processor, outcome) }, ms / 1000);
  }

  /** The pipeline's onTransition. */
  phaseEntered(phase: string, reason: string): void {
    this.transitions.inc({ phase, reason });
  }

  /** The counts the pipeline, the sink and the sources keep, read at each scrape. */
  observe(parts: { pipeline: Pipeline; sink: SymptomSink; gc: GarbageCollector; store: AbnormalStore; sources: () => readonly SymptomSource[] }): void {
    const { pipeline, sink, gc, store, sources } = parts;
    this.problemsActive(store);
    this.countFrom('nodemedic_abnormals_deleted_total', 'Finished Abnormals of this node deleted by garbage collection (gc.*), by phase', ['phase'],
      () => Object.entries(gc.deleted).map(([phase, n]) => [{ phase }, n]));
    this.countFrom('nodemedic_symptoms_total', 'Symptoms the sources reported, repeats included, by source', ['source'],
      () => Object.entries(sink.stats.bySource).map(([source, n]) => [{ source }, n]));
    this.countFrom('nodemedic_problems_total', 'Symptoms by source and reason, repeats included (node-problem-detector\'s problem_counter); reasons come from rules, or beyond 200 pairs are counted as Other', ['source', 'reason'],
      () => [...sink.stats.byProblem].map(([problem, n]) => {
        const [source, reason] = problem.split('\t') as [string, string];
        return [{ source, reason }, n];
      }));
    this.countFrom('nodemedic_symptom_writes_total', 'API writes by the symptom sink: Abnormals created, repeat counts added to one', ['op'],
      () => [[{ op: 'create' }, sink.stats.created], [{ op: 'update' }, sink.stats.updated]]);
    this.countFrom('nodemedic_symptom_write_failures_total', 'Symptom writes that failed (kept and tried again); rising: the store is unreachable', [],
      () => [[{}, sink.stats.writeFailures]]);
    this.countFrom('nodemedic_symptom_creates_held_total', 'Times a new Abnormal waited for the per-node creation rate limit', [],
      () => [[{}, sink.stats.rateLimited]]);
    this.countFrom('nodemedic_symptoms_rejected_total', 'Symptoms refused as invalid (their Abnormal fails the API schema), by source: dropped, never retried', ['source'],
      () => {
        const bySource = { ...sink.stats.rejectedBySource };
        const alerts = sources().filter((s): s is AlertSource => s instanceof AlertSource).reduce((sum, s) => sum + s.refused, 0);
        if (alerts > 0) bySource.PrometheusAlert = (bySource.PrometheusAlert ?? 0) + alerts;
        return Object.entries(bySource).map(([source, n]) => [{ source }, n]);
      });
    this.countFrom('nodemedic_symptom_journal_full_total', 'Symptoms the full symptom journal could not take: held in memory only, lost if the agent stops before they are written', [],
      () => [[{}, sink.stats.journalFull]]);
    this.countFrom('nodemedic_symptoms_untracked_total', 'Symptoms dropped because too many distinct ones were open at once', [],
      () => [[{}, sink.stats.untracked]]);
    this.countFrom('nodemedic_log_lines_lost_total', 'Log lines lost before they could be read (kernel ring buffer overwritten), by source', ['source'],
      () => sources().filter((s) => s.lost !== undefined).map((s) => [{ source: s.name }, s.lost!]));
    this.countFrom('nodemedic_reconcile_errors_total', 'Pipeline steps that failed on the store and wait for the next change or resync', [],
      () => [[{}, pipeline.stats.reconcileErrors]]);
    new Gauge({
      name: 'nodemedic_pipeline_abnormals', help: 'Abnormals waiting for a worker or being worked on', labelNames: ['state'] as const, registers: [this.registry],
      collect() {
        const { pending, running } = pipeline.queueSize;
        this.set({ state: 'pending' }, pending);
        this.set({ state: 'running' }, running);
      },
    });
  }

  /**
   * nodemedic_problem_active{type,reason} (node-problem-detector's problem_gauge): 1 while this node has
   * an Abnormal from a permanent rule — type its condition, reason the rule's — that has not been
   * recovered (any phase but Succeeded); 0 once none has. Read from the store at each scrape. A hand-made
   * Abnormal may name any rule, so at most MAX_PROBLEM_SERIES pairs are shown.
   */
  private problemsActive(store: AbnormalStore): void {
    const shown = new Set<string>();
    new Gauge({
      name: 'nodemedic_problem_active', help: 'Problems from permanent rules on this node, by condition type and reason: 1 until their Abnormal is recovered',
      labelNames: ['type', 'reason'] as const, registers: [this.registry],
      async collect() {
        const active = new Set<string>();
        for (const abnormal of await store.listOfNode()) {
          const rule = abnormal.spec.context?.rule as { type?: unknown; condition?: unknown; reason?: unknown } | undefined;
          if (rule?.type !== 'permanent' || typeof rule.condition !== 'string' || typeof rule.reason !== 'string' || abnormal.status?.phase === 'Succeeded') continue;
          const key = JSON.stringify([rule.condition, rule.reason]);
          if (shown.has(key) || shown.size < MAX_PROBLEM_SERIES) active.add(key);
        }
        for (const key of active) shown.add(key);
        this.reset();
        for (const key of shown) {
          const [type, reason] = JSON.parse(key) as [string, string];
          this.set({ type, reason }, active.has(key) ? 1 : 0);
        }
      },
    });
  }

  /** The exposition text, and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** A counter whose values a part keeps: at each scrape it is advanced to them. */
  private countFrom<L extends string>(name: string, help: string, labelNames: L[], read: () => Array<[Partial<Record<L, string>>, number]>): void {
    const seen = new Map<string, number>();
    new Counter({
      name, help, labelNames, registers: [this.registry],
      collect() {
        for (const [labels, value] of read()) {
          const key = JSON.stringify(labels);
          const delta = value - (seen.get(key) ?? 0);
          if (delta > 0) this.inc(labels, delta);
          else if (delta === 0 && !seen.has(key)) this.inc(labels, 0); // shown at 0 from the start
          seen.set(key, value);
        }
      },
    });
  }
}

function outcomeLabel(processor: Processor, outcome: Outcome): string {
  if (!outcome.ok) return 'failed';
  if (processor.kind === 'Diagnoser') return outcome.identified ? 'identified' : 'not_identified';
  if (processor.kind === 'Recoverer') return outcome.recovered ? 'recovered' : 'not_recovered';
  return 'ok';
}
