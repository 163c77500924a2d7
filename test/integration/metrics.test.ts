// GET /metrics on the real `nodemedic agent` process (file store): a log line matched by a rule, its
// repeat, and a probe Abnormal, then the exposition scraped and checked — symptoms by source, the
// sink's writes, phases entered with their reasons, processor calls by outcome, process memory; then a
// permanent rule's problem, active until its Abnormal is recovered.
import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { isTerminal } from '../../agent/api/phase.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { spawnAgent, waitFor } from '../helpers/agent.js';

const tcp = createServer((socket) => socket.end());
const tcpPort = await new Promise<number>((resolve) => tcp.listen(0, '127.0.0.1', () => resolve((tcp.address() as { port: number }).port)));
after(() => tcp.close());

/** The sum of the samples named `name` whose labels include `labels` (none found: undefined). */
function sample(exposition: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of exposition.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

test('GET /metrics: symptoms, writes, phases, processor calls and the process, as they happened', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-metrics-'));
  const state = path.join(dir, 'state');
  const logFile = path.join(dir, 'app.log');
  await mkdir(path.join(state, 'abnormals'), { recursive: true });
  await writeFile(logFile, '');
  await writeFile(path.join(dir, 'rules.yaml'), `kind: LogRules
plugin: file
logPath: ${logFile}
source: app
rules:
  - reason: AppPanicked
    pattern: 'panic: .*'
    abnormal: {skipRecovery: true}
  # A line no rule above matches: its Abnormal is made only at the end of the test.
  - reason: AppDeadlocked
    type: permanent
    condition: AppDeadlock
    pattern: 'fatal error: all goroutines are asleep - deadlock!'
    abnormal: {skipRecovery: true}
`);
  await writeFile(path.join(dir, 'config.yaml'), `sources: {ruleFiles: ["${path.join(dir, 'rules.yaml')}"]}\nsymptoms: {flushSeconds: 0.5}\n`);
  const agentLog = path.join(dir, 'agent.log');
  const agent = spawnAgent(['--store', 'file', '--state-dir', state, '--node-name', 'demo', '--config', path.join(dir, 'config.yaml')], agentLog);
  try {
    const port = await waitFor('the agent to start', async () => /"listen":"127\.0\.0\.1:(\d+)".*"msg":"agent started"/.exec(await readFile(agentLog, 'utf8').catch(() => ''))?.[1]);
    const scrape = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      return res.text();
    };
    const before = await scrape();
    assert.equal(sample(before, 'nodemedic_symptom_writes_total', { op: 'create' }), 0, 'counters are there from the start, at 0');
    assert.equal(sample(before, 'nodemedic_abnormal_transitions_total'), undefined);

    // A symptom seen twice (one Abnormal, skipRecovery, which no diagnoser identifies) and a probe.
    await appendFile(logFile, 'panic: runtime error: index out of range [3] with length 3\n'.repeat(2));
    await writeFile(path.join(state, 'abnormals', 'probe.yaml'), stringify({
      apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal',
      spec: {
        source: 'Probe', nodeName: 'demo', skipDiagnosis: true, skipRecovery: true,
        assignedInformationCollectors: [{ namespace: 'builtin', name: 'probe' }], nodeProbe: { tcpSocket: { port: tcpPort } },
      },
    }));
    await waitFor('both Abnormals to finish', async () => {
      // The store's temporary files (".NAME.tmp") come and go while it writes: only Abnormals count.
      const files = (await readdir(path.join(state, 'abnormals'))).filter((f) => !f.startsWith('.'));
      const done = await Promise.all(files.map(async (f) => parse(await readFile(path.join(state, 'abnormals', f), 'utf8')) as Abnormal));
      return files.length === 2 && done.every((a) => isTerminal(a.status?.phase)) && done.some((a) => a.spec.occurrences?.count === 2);
    });

    const text = await scrape();
    assert.equal(sample(text, 'nodemedic_symptoms_total', { source: 'Log' }), 2);
    assert.equal(sample(text, 'nodemedic_problems_total', { source: 'Log', reason: 'AppPanicked' }), 2, 'per problem, by its rule\'s reason');
    assert.equal(sample(text, 'nodemedic_symptom_writes_total', { op: 'create' }), 1);
    assert.equal(sample(text, 'nodemedic_symptom_write_failures_total'), 0);
    assert.equal(sample(text, 'nodemedic_abnormal_transitions_total', { phase: 'InformationCollecting', reason: 'Accepted' }), 2);
    assert.equal(sample(text, 'nodemedic_abnormal_transitions_total', { phase: 'Succeeded', reason: 'Collected' }), 1, 'the probe');
    assert.equal(sample(text, 'nodemedic_abnormal_transitions_total', { phase: 'Failed', reason: 'NotIdentified' }), 1, 'the panic');
    // Every built-in collector is asked about each Abnormal (the probe collector probes only the probe).
    assert.equal(sample(text, 'nodemedic_processor_duration_seconds_count', { kind: 'InformationCollector', processor: 'builtin/probe', outcome: 'ok' }), 2);
    assert.ok((sample(text, 'nodemedic_processor_duration_seconds_count', { kind: 'Diagnoser', outcome: 'not_identified' }) ?? 0) >= 1);
    assert.equal(sample(text, 'nodemedic_processor_duration_seconds_count', { outcome: 'identified' }), undefined);
    // The last status write lands a moment before its worker is free again: wait for the gauge to say so.
    await waitFor('the workers to be free', async () => sample(await scrape(), 'nodemedic_pipeline_abnormals', { state: 'running' }) === 0 || undefined);
    assert.ok((sample(text, 'process_resident_memory_bytes') ?? 0) > 10 * 1024 * 1024);

    // A permanent rule's problem is active (1) until its Abnormal is recovered; a temporary one has no such series.
    assert.equal(sample(text, 'nodemedic_problem_active'), undefined);
    await appendFile(logFile, 'fatal error: all goroutines are asleep - deadlock!\n');
    const deadlocked = await waitFor('the deadlock\'s Abnormal to finish', async () => {
      for (const file of (await readdir(path.join(state, 'abnormals'))).filter((f) => !f.startsWith('.'))) {
        const a = parse(await readFile(path.join(state, 'abnormals', file), 'utf8')) as Abnormal;
        if (a.spec.context?.rule && (a.spec.context.rule as { reason?: string }).reason === 'AppDeadlocked' && isTerminal(a.status?.phase)) return { file, a };
      }
      return undefined;
    });
    const active = await scrape();
    assert.equal(sample(active, 'nodemedic_problem_active', { type: 'AppDeadlock', reason: 'AppDeadlocked' }), 1, `${deadlocked.a.status?.phase}: not recovered`);
    assert.equal(sample(active, 'nodemedic_problem_active', { reason: 'AppPanicked' }), undefined, 'a temporary rule');
    // Recovered (here by hand, as a person marking it so would): the problem is no longer active.
    await writeFile(path.join(state, 'abnormals', deadlocked.file), stringify({ ...deadlocked.a, status: { ...deadlocked.a.status, phase: 'Succeeded' } }));
    await waitFor('the problem to be inactive', async () => sample(await scrape(), 'nodemedic_problem_active', { type: 'AppDeadlock', reason: 'AppDeadlocked' }) === 0 || undefined);
  } finally {
    agent.kill('SIGTERM');
    assert.equal(await agent.exited, 0);
  }
});
