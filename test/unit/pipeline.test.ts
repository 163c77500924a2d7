// The pipeline on its own: the file store in a temporary directory, processors as plain objects, no
// root and no apiserver. Every phase transition, the write-ahead record that turns an interrupted
// recovery into Unknown, a rail holding an Abnormal back, and a conflicting edit that the step's status
// is written over.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { parse, stringify } from 'yaml';
import { keyOf, type ProcessorKind } from '../../agent/api/kinds.js';
import type { Phase } from '../../agent/api/phase.js';
import type { Abnormal, AbnormalSpec } from '../../agent/api/types.generated.js';
import { Pipeline, RECOVERY_LOG } from '../../agent/pipeline/pipeline.js';
import { RecoveryRails } from '../../agent/pipeline/rails.js';
import { BUILTIN_NAMESPACE, type Outcome, type Processor } from '../../agent/processors/contract.js';
import { ProcessorRegistry } from '../../agent/processors/registry.js';
import { FileEventLog } from '../../agent/store/file-events.js';
import { FileStore } from '../../agent/store/file.js';

const log = pino({ level: 'silent' });
const NODE = 'node-a';

/** A processor that is a plain object: `run` says what it returns (and may record that it ran). */
function processor(kind: ProcessorKind, name: string, run: (abnormal: Abnormal, signal: AbortSignal) => Promise<Outcome> | Outcome): Processor & { calls: number } {
  const p = {
    kind, ref: { namespace: BUILTIN_NAMESPACE, name }, calls: 0,
    async run(abnormal: Abnormal, signal: AbortSignal) {
      p.calls++;
      return run(abnormal, signal);
    },
  };
  return p;
}

type Harness = {
  dir: string;
  pipeline: Pipeline;
  store: FileStore;
  /** An Abnormal in the store, as the sink or a person would create it. */
  add(name: string, spec?: Partial<AbnormalSpec>, status?: Abnormal['status']): Promise<string>;
  get(key: string): Promise<Abnormal>;
  /** The Events recorded for an Abnormal, as reason and the phase change they tell. */
  story(name: string): Promise<Array<{ type: string; reason: string; message: string }>>;
};

async function harness(t: TestContext, processors: Processor[], options: { rails?: RecoveryRails; dryRun?: boolean; dir?: string } = {}): Promise<Harness> {
  const dir = options.dir ?? (await mkdtemp(path.join(tmpdir(), 'nodemedic-pipeline-')));
  if (!options.dir) t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new FileStore({ dir, log, settleMs: 0, rescanMs: 3_600_000 });
  await store.start(() => {}); // steps are driven by reconcile() here, not by the watch
  t.after(() => store.stop());
  const registry = new ProcessorRegistry(processors, { catalog: { processors: async () => [] }, secrets: { readSecret: () => Promise.reject(new Error('no secrets')) } },
    { maxReplyBytes: 1 << 20, defaultTimeoutSeconds: 5 });
  const pipeline = new Pipeline({
    store, events: new FileEventLog({ dir, log }), registry, nodeName: NODE, concurrency: 1, log,
    ...(options.rails ? { rails: options.rails } : {}), ...(options.dryRun ? { dryRun: true } : {}),
  });
  return {
    dir, pipeline, store,
    async add(name, spec = {}, status) {
      const created = await store.create({
        apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal', metadata: { name }, spec: { source: 'Custom', nodeName: NODE, ...spec }, ...(status ? { status } : {}),
      });
      return keyOf(created);
    },
    async get(key) {
      const abnormal = await store.get(key);
      assert.ok(abnormal, `${key} is in the store`);
      return abnormal;
    },
    async story(name) {
      const lines = (await readFile(path.join(dir, 'events.jsonl'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
      return lines.map((l) => JSON.parse(l) as { name: string; type: string; reason: string; message: string }).filter((e) => e.name === name)
        .map(({ type, reason, message }) => ({ type, reason, message }));
    },
  };
}

const collects = (name: string, context: Record<string, unknown> = { [name]: true }) => processor('InformationCollector', name, () => ({ ok: true, context }));
const identifies = (name: string) => processor('Diagnoser', name, () => ({ ok: true, identified: true, reason: 'FaultFound', message: `${name} found it` }));
const notIdentified = (name: string) => processor('Diagnoser', name, () => ({ ok: true, identified: false, message: 'not this' }));
const recovers = (name: string) => processor('Recoverer', name, () => ({ ok: true, recovered: true, message: 'fixed' }));
const phases = (story: Array<{ message: string }>) => story.map((e) => e.message.replace(/:.*$/, ''));

test('the happy path: every phase in order, one Event per phase change, conditions and who did what', async (t) => {
  const collector = collects('facts');
  const diagnoser = identifies('finder');
  const recoverer = recovers('fixer');
  const h = await harness(t, [collector, diagnoser, recoverer]);
  const key = await h.add('happy');
  await h.pipeline.reconcile(key);
  const done = await h.get(key);
  assert.equal(done.status?.phase, 'Succeeded');
  assert.deepEqual(done.status?.diagnoser, { namespace: 'builtin', name: 'finder' });
  assert.deepEqual(done.status?.recoverer, { namespace: 'builtin', name: 'fixer' });
  assert.equal(done.status?.context?.facts, true);
  assert.deepEqual(done.status?.conditions?.map((c) => [c.type, c.status, c.reason]), [
    ['InformationCollected', 'True', 'Collected'], ['Identified', 'True', 'FaultFound'], ['Recovered', 'True', 'Recovered'],
  ]);
  assert.deepEqual(phases(await h.story('happy')), [
    '(new) → InformationCollecting', 'InformationCollecting → Diagnosing', 'Diagnosing → Recovering', 'Recovering → Succeeded',
  ]);
  // The collector and the diagnoser ran twice: the second time to confirm the diagnosis on fresh
  // evidence right before the recoverer acted.
  assert.deepEqual([collector.calls, diagnoser.calls, recoverer.calls], [2, 2, 1]);
  // Terminal: looking again does nothing.
  await h.pipeline.reconcile(key);
  assert.deepEqual([collector.calls, diagnoser.calls, recoverer.calls], [2, 2, 1]);
});

test('skipDiagnosis and skipRecovery skip their stages; an Abnormal for another node is not touched', async (t) => {
  const diagnoser = identifies('finder');
  const recoverer = recovers('fixer');
  const h = await harness(t, [collects('facts'), diagnoser, recoverer]);
  const cases: Array<[string, Partial<AbnormalSpec>, string[]]> = [
    ['skip-both', { skipDiagnosis: true, skipRecovery: true }, ['(new) → InformationCollecting', 'InformationCollecting → Succeeded']],
    ['skip-diagnosis', { skipDiagnosis: true }, ['(new) → InformationCollecting', 'InformationCollecting → Recovering', 'Recovering → Succeeded']],
    ['skip-recovery', { skipRecovery: true }, ['(new) → InformationCollecting', 'InformationCollecting → Diagnosing', 'Diagnosing → Succeeded']],
  ];
  for (const [name, spec, expected] of cases) {
    const key = await h.add(name, spec);
    await h.pipeline.reconcile(key);
    assert.equal((await h.get(key)).status?.phase, 'Succeeded', name);
    assert.deepEqual(phases(await h.story(name)), expected, name);
  }
  assert.deepEqual([diagnoser.calls, recoverer.calls], [1, 1]);
  const other = await h.add('elsewhere', { nodeName: 'node-b' });
  await h.pipeline.reconcile(other);
  assert.equal((await h.get(other)).status, undefined, 'another node\'s Abnormal is left alone');
});

test('collectors that fail are named, and diagnosis goes on; no diagnoser identifies: Failed with every reason', async (t) => {
  const h = await harness(t, [
    collects('works'),
    processor('InformationCollector', 'fails', () => ({ ok: false, reason: 'Timeout', message: 'too slow' })),
    processor('InformationCollector', 'throws', () => {
      throw new Error('a bug in it');
    }),
    notIdentified('first'),
    processor('Diagnoser', 'broken', () => ({ ok: false, reason: 'InvalidReply', message: 'not JSON' })),
  ]);
  const key = await h.add('unknown-fault');
  await h.pipeline.reconcile(key);
  const done = await h.get(key);
  assert.equal(done.status?.phase, 'Failed');
  const collected = done.status?.conditions?.find((c) => c.type === 'InformationCollected');
  assert.equal(collected?.reason, 'PartiallyCollected');
  assert.match(collected?.message ?? '', /builtin\/fails: Timeout: too slow; builtin\/throws: ProcessorError: a bug in it/);
  assert.equal(done.status?.reason, 'NotIdentified');
  assert.match(done.status?.message ?? '', /builtin\/broken: InvalidReply: not JSON; builtin\/first: not identified \(not this\)/);
  assert.equal(done.status?.identifiable, false);
  assert.deepEqual((await h.story('unknown-fault')).at(-1)?.type, 'Warning');
});

test('recoverers in order: one that does not recover is recorded, the next one recovers; none left: Failed', async (t) => {
  const h = await harness(t, [
    identifies('finder'),
    processor('Recoverer', 'a-tries', () => ({ ok: true, recovered: false, message: 'still there' })),
    recovers('b-fixes'),
  ]);
  const key = await h.add('two-recoverers');
  await h.pipeline.reconcile(key);
  const done = await h.get(key);
  assert.equal(done.status?.phase, 'Succeeded');
  const attempts = done.status?.context?.[RECOVERY_LOG] as Array<{ recoverer: string; result: string }>;
  assert.deepEqual(attempts.map((a) => [a.recoverer, a.result]), [['builtin/a-tries', 'NotRecovered'], ['builtin/b-fixes', 'Recovered']]);

  const h2 = await harness(t, [identifies('finder'), processor('Recoverer', 'fails', () => ({ ok: false, reason: 'Refused', message: 'not a shim' }))]);
  const key2 = await h2.add('no-recovery');
  await h2.pipeline.reconcile(key2);
  const failed = await h2.get(key2);
  assert.equal(failed.status?.phase, 'Failed');
  assert.equal(failed.status?.reason, 'NotRecovered');
  assert.match(failed.status?.message ?? '', /builtin\/fails: Refused: not a shim/);
});

test('write-ahead: stopped while a recoverer acts, the next agent finds the call on record and moves to Unknown without acting again', async (t) => {
  let started!: () => void;
  const acting = new Promise<void>((resolve) => (started = resolve));
  const hangs = processor('Recoverer', 'kills', (_a, signal) => {
    started();
    return new Promise<Outcome>((resolve) => signal.addEventListener('abort', () => resolve({ ok: true, recovered: true })));
  });
  const first = await harness(t, [identifies('finder'), hangs]);
  const key = await first.add('interrupted');
  const running = first.pipeline.reconcile(key);
  await acting;
  await first.pipeline.stop(true); // the agent goes down mid-call
  await running;
  const recorded = await first.get(key);
  assert.equal(recorded.status?.phase, 'Recovering');
  const attempt = (recorded.status?.context?.[RECOVERY_LOG] as Array<{ recoverer: string; result?: string }>)[0];
  assert.equal(attempt?.recoverer, 'builtin/kills');
  assert.equal(attempt?.result, undefined, 'the call is on record, its result never came');

  const again = recovers('kills');
  const second = await harness(t, [identifies('finder'), again], { dir: first.dir });
  await second.pipeline.reconcile(key);
  const after = await second.get(key);
  assert.equal(after.status?.phase, 'Unknown');
  assert.equal(after.status?.reason, 'RecoveryInterrupted');
  assert.match(after.status?.message ?? '', /stopped while builtin\/kills was acting .* will not act again/);
  assert.equal(again.calls, 0, 'nothing acts on a node whose state is not known');
});

test('a rail holds an Abnormal in Recovering, says why once, and lets it go when the rail allows', async (t) => {
  let now = 1_000_000;
  const stateDir = await mkdtemp(path.join(tmpdir(), 'nodemedic-pipeline-rails-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  const rails = new RecoveryRails({ stateDir, maxPerHour: 1, cooldownSeconds: 0, log, now: () => now });
  const recoverer = recovers('fixer');
  const h = await harness(t, [identifies('finder'), recoverer], { rails });
  const firstKey = await h.add('first');
  await h.pipeline.reconcile(firstKey);
  assert.equal((await h.get(firstKey)).status?.phase, 'Succeeded');

  const heldKey = await h.add('held');
  await h.pipeline.reconcile(heldKey);
  const held = await h.get(heldKey);
  assert.equal(held.status?.phase, 'Recovering');
  const condition = held.status?.conditions?.find((c) => c.type === 'Recovered');
  assert.deepEqual([condition?.status, condition?.reason], ['Unknown', 'RecoveryRateLimited']);
  assert.equal(recoverer.calls, 1, 'the held Abnormal\'s recoverer was not called');
  await h.pipeline.reconcile(heldKey); // looked at again while still held: no new write, no new Event
  assert.equal((await h.story('held')).filter((e) => e.reason === 'RecoveryRateLimited').length, 1);

  now += 3_600_000; // the first recovery leaves the hour
  await h.pipeline.reconcile(heldKey);
  assert.equal((await h.get(heldKey)).status?.phase, 'Succeeded');
  assert.equal(recoverer.calls, 2);
});

test('a person edits the Abnormal while a step runs: the conflict is resolved by writing the step\'s status onto their version', async (t) => {
  let h!: Harness;
  const file = () => path.join(h.dir, 'abnormals', 'edited.yaml');
  const editsMidStep = processor('InformationCollector', 'slow', async () => {
    // The person's edit lands after the step read the Abnormal and before it writes.
    const text = await readFile(file(), 'utf8');
    const object = parse(text) as Abnormal;
    await writeFile(file(), stringify({ ...object, spec: { ...object.spec, context: { note: 'added by a person' } } }));
    return { ok: true, context: { slow: 'done' } };
  });
  h = await harness(t, [editsMidStep], {});
  const key = await h.add('edited', { skipDiagnosis: true, skipRecovery: true });
  await h.pipeline.reconcile(key);
  const done = await h.get(key);
  assert.equal(done.status?.phase, 'Succeeded');
  assert.equal(done.status?.context?.slow, 'done', 'the step\'s status was written');
  assert.deepEqual(done.spec.context, { note: 'added by a person' }, 'and the person\'s edit was kept');
  assert.equal(editsMidStep.calls, 1, 'the collector was not run again');
});

test('dry run: a recoverer that is not built in is never called', async (t) => {
  const external = processor('Recoverer', 'external', () => ({ ok: true, recovered: true }));
  external.ref.namespace = 'ops';
  const h = await harness(t, [identifies('finder'), external], { dryRun: true });
  const key = await h.add('dry');
  await h.pipeline.reconcile(key);
  const done = await h.get(key);
  assert.equal(done.status?.phase, 'Failed');
  assert.match(done.status?.message ?? '', /ops\/external: dry run: not called/);
  assert.equal(external.calls, 0);
});

test('phases never move backwards: a stored terminal phase is left as it is', async (t) => {
  const collector = collects('facts');
  const h = await harness(t, [collector]);
  for (const phase of ['Succeeded', 'Failed', 'Unknown'] as Phase[]) {
    const key = await h.add(`ended-${phase.toLowerCase()}`, {}, { phase });
    await h.pipeline.reconcile(key);
    assert.equal((await h.get(key)).status?.phase, phase);
  }
  assert.equal(collector.calls, 0);
});

test('security: a forged Recovering status with targets acts on nothing: the diagnosis is confirmed afresh, the stored one is never used', async (t) => {
  // What the holder of the agent's token could write into any Abnormal's status on a2117e0.
  const forged = { phase: 'Recovering' as const, diagnoser: { namespace: 'builtin', name: 'finder' }, context: { diagnosis: { fault: 'Forged', targets: [{ pid: 4242, startTicks: 1 }] } } };
  let sawTargets: unknown;
  const recoverer = processor('Recoverer', 'kills', (abnormal) => {
    sawTargets = (abnormal.status?.context?.diagnosis as { targets?: unknown } | undefined)?.targets;
    return { ok: true, recovered: true };
  });
  const notAnyMore = processor('Diagnoser', 'finder', () => ({ ok: true, identified: false, message: 'no such fault here' }));
  const h = await harness(t, [notAnyMore, recoverer]);
  const key = await h.add('forged', {}, forged);
  await h.pipeline.reconcile(key);
  const done = await h.get(key);
  assert.equal(done.status?.phase, 'Failed');
  assert.equal(done.status?.reason, 'DiagnosisNotConfirmed');
  assert.match(done.status?.message ?? '', /builtin\/finder no longer identifies the fault: no such fault here/);
  assert.equal(recoverer.calls, 0, 'nothing acted');

  // Forged without a diagnoser on record, or naming one the Abnormal's diagnosis would not run: the same.
  const bare = await h.add('forged-bare', {}, { phase: 'Recovering', context: forged.context });
  await h.pipeline.reconcile(bare);
  assert.match((await h.get(bare)).status?.message ?? '', /no diagnosis is on record/);
  const foreign = await h.add('forged-foreign', { assignedDiagnosers: [{ namespace: 'builtin', name: 'finder' }] }, { ...forged, diagnoser: { namespace: 'ops', name: 'anything' } });
  await h.pipeline.reconcile(foreign);
  assert.match((await h.get(foreign)).status?.message ?? '', /ops\/anything, the diagnoser on record, is not one this Abnormal's diagnosis runs/);
  assert.equal(recoverer.calls, 0);

  // When the diagnoser does identify the fault again, the recoverer acts on what it found now.
  const confirms = processor('Diagnoser', 'finder', () => ({ ok: true, identified: true, context: { diagnosis: { fault: 'Real', targets: [{ pid: 77, startTicks: 7 }] } } }));
  const h2 = await harness(t, [confirms, recoverer]);
  const real = await h2.add('forged-but-real', {}, forged);
  await h2.pipeline.reconcile(real);
  assert.equal((await h2.get(real)).status?.phase, 'Succeeded');
  assert.deepEqual(sawTargets, [{ pid: 77, startTicks: 7 }], 'the targets came from the confirming run, not from the stored status');
});

test('a diagnosis not confirmed leaves no mark on the rails', async (t) => {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'nodemedic-pipeline-rails-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  const rails = new RecoveryRails({ stateDir, maxPerHour: 1, cooldownSeconds: 0, log });
  // Identifies every fault but one, which is gone by the time a recoverer would act (asked in Recovering).
  const flaky = processor('Diagnoser', 'finder', (a) => ({ ok: true, identified: !(a.metadata?.name === 'gone-before-acting' && a.status?.phase === 'Recovering') }));
  const recoverer = recovers('fixer');
  const h = await harness(t, [flaky, recoverer], { rails });
  const gone = await h.add('gone-before-acting');
  await h.pipeline.reconcile(gone);
  assert.equal((await h.get(gone)).status?.reason, 'DiagnosisNotConfirmed');
  assert.equal(recoverer.calls, 0);
  const next = await h.add('next-one');
  await h.pipeline.reconcile(next);
  assert.equal((await h.get(next)).status?.phase, 'Succeeded', 'the hourly limit of 1 was not spent on the recovery that never acted');
});
