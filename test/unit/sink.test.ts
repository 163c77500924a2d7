// Dedup and flood control (agent/sources/sink.ts) on the real file store in a temporary directory.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { FileStore } from '../../agent/store/file.js';
import { SymptomJournal } from '../../agent/sources/journal.js';
import { SymptomSink } from '../../agent/sources/sink.js';
import type { Symptom } from '../../agent/sources/source.js';

const log = pino({ level: 'silent' });
const stores: FileStore[] = [];
after(() => Promise.all(stores.map((s) => s.stop())));

async function setup(options: Partial<ConstructorParameters<typeof SymptomSink>[0]> = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-sink-'));
  await mkdir(path.join(dir, 'abnormals'));
  const store = new FileStore({ dir, log, rescanMs: 60_000 });
  stores.push(store);
  await store.start(() => {});
  const sink = new SymptomSink({ store, nodeName: 'node-a', log, flushSeconds: 60, cooldownSeconds: 600, createBurst: 10, createPerMinute: 30, maxTracked: 100, ...options });
  const files = async () => (await readdir(path.join(dir, 'abnormals'))).filter((f) => f.endsWith('.yaml'));
  return { store, sink, files };
}
const symptom = (reason: string, at = new Date()): Symptom => ({ source: 'Log', reason, detail: { log: { filePath: '/dev/kmsg', logEntry: `${reason} happened` } }, seenAt: at });

test('repeats of one symptom are one Abnormal whose count is every repeat', async () => {
  const { store, sink, files } = await setup();
  for (let i = 0; i < 1000; i++) sink.accept(symptom('TaskHung', new Date(Date.UTC(2026, 10, 23, 7, 0, i % 60))));
  await sink.flush();
  await sink.flush();
  assert.equal((await files()).length, 1);
  const [abnormal] = await store.findByFingerprint((await store.get(`default/${(await files())[0]!.replace('.yaml', '')}`))!.metadata!.labels!['nodemedic.io/fingerprint']!);
  assert.equal(abnormal!.spec.occurrences?.count, 1000);
  assert.equal(abnormal!.spec.log?.logEntry, 'TaskHung happened', 'the first occurrence is the one described');
  // All were seen before the first write: one create carries them all.
  assert.deepEqual({ created: sink.stats.created, updated: sink.stats.updated }, { created: 1, updated: 0 });
  sink.accept(symptom('TaskHung'));
  await sink.flush();
  assert.deepEqual({ created: sink.stats.created, updated: sink.stats.updated }, { created: 1, updated: 1 });
  assert.equal((await store.findByFingerprint(abnormal!.metadata!.labels!['nodemedic.io/fingerprint']!))[0]!.spec.occurrences?.count, 1001);
});

test('creation is rate limited; what waits is counted, not dropped, and waits for the next flush', async () => {
  const { sink, files } = await setup({ createBurst: 2, createPerMinute: 0.1 });
  for (const reason of ['A', 'B', 'C', 'D', 'E']) sink.accept(symptom(reason));
  await sink.flush();
  assert.equal((await files()).length, 2, 'a burst of 2, then one every 10 minutes');
  assert.equal(sink.stats.rateLimited, 3, 'the three others wait, counted');
  await sink.flush();
  assert.equal(sink.stats.rateLimited, 6, 'each flush looks at them once: no spinning in between');
  assert.equal((await files()).length, 2);
  assert.equal(sink.stats.accepted, 5);
});

test('a repeat within the cooldown after the Abnormal ended counts on it; after the cooldown it is a new one', async () => {
  const counting = await setup({ cooldownSeconds: 600 });
  counting.sink.accept(symptom('OOMKilling'));
  await counting.sink.flush();
  const [file] = await counting.files();
  const key = `default/${file!.replace('.yaml', '')}`;
  const created = (await counting.store.get(key))!;
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await counting.store.writeStatus(created, { phase: 'Failed', conditions: [{ type: 'Identified', status: 'False', lastTransitionTime: now }] });
  counting.sink.accept(symptom('OOMKilling'));
  await counting.sink.flush();
  assert.equal((await counting.files()).length, 1);
  assert.equal((await counting.store.get(key))!.spec.occurrences?.count, 2);

  const fresh = await setup({ cooldownSeconds: 0 });
  fresh.sink.accept(symptom('OOMKilling'));
  await fresh.sink.flush();
  const first = (await fresh.store.get(`default/${(await fresh.files())[0]!.replace('.yaml', '')}`))!;
  await fresh.store.writeStatus(first, { phase: 'Failed' });
  fresh.sink.accept(symptom('OOMKilling'));
  await fresh.sink.flush();
  assert.equal((await fresh.files()).length, 2);
});

test('a symptom that has ended (a resolved alert) records its end on its Abnormal and creates none', async () => {
  const { store, sink, files } = await setup();
  const alert = (endedAt?: string): Symptom => ({
    source: 'PrometheusAlert', nodeName: 'node-b', reason: 'DiskFull', subject: 'alert 1234',
    detail: { prometheusAlert: { labels: { alertname: 'DiskFull', node: 'node-b' }, annotations: {} } }, seenAt: new Date(), ...(endedAt ? { endedAt } : {}),
  });
  sink.accept(alert('2026-11-30T10:00:00Z')); // resolved, never seen firing: nothing to record it on
  await sink.flush();
  assert.deepEqual(await files(), []);
  sink.accept(alert());
  sink.accept(alert('2026-11-30T11:00:00Z')); // firing and resolved in one webhook: recorded once it exists
  await sink.flush();
  await sink.flush();
  const [file] = await files();
  assert.equal((await files()).length, 1);
  const abnormal = (await store.get(`default/${file!.replace('.yaml', '')}`))!;
  assert.equal(abnormal.spec.nodeName, 'node-b');
  assert.equal(abnormal.spec.prometheusAlert?.endsAt, '2026-11-30T11:00:00Z');
  assert.equal(sink.stats.ended, 1);
});

test('a poison symptom — its Abnormal would be refused — is dropped at once, spends no creation token and holds nothing back', async () => {
  const { sink, files } = await setup({ createBurst: 1, createPerMinute: 0.1 });
  const alert = (alertname: string, startsAt: string): Symptom => ({
    source: 'PrometheusAlert', reason: alertname, subject: alertname, detail: { prometheusAlert: { labels: { alertname }, annotations: {}, startsAt } }, seenAt: new Date(),
  });
  sink.accept(alert('Poison', 'yesterday'));
  sink.accept(alert('Fine', new Date().toISOString()));
  await sink.flush();
  assert.equal((await files()).length, 1, 'the one token of the burst went to the valid symptom');
  assert.deepEqual(sink.stats.rejectedBySource, { PrometheusAlert: 1 });
  assert.equal(sink.stats.rateLimited, 0);
  sink.accept(alert('Poison', 'yesterday')); // again: refused again, never retried in between
  await sink.flush();
  await sink.flush();
  assert.deepEqual(sink.stats.rejectedBySource, { PrometheusAlert: 2 });
  assert.equal(sink.stats.writeFailures, 0);
});

test('what could not be written survives a restart in the journal, and is written once by the next sink', async (t) => {
  const { store, files } = await setup();
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-journal-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const journalFile = path.join(dir, 'symptoms.jsonl');
  const journal = () => new SymptomJournal({ file: journalFile, maxBytes: 1024 * 1024, log });
  // The store is down: every write fails.
  const down = { ...store, findByFingerprint: () => Promise.reject(new Error('connection refused')), create: () => Promise.reject(new Error('connection refused')) } as unknown as FileStore;
  const first = new SymptomSink({ store: down, nodeName: 'node-a', log, flushSeconds: 60, cooldownSeconds: 600, createBurst: 10, createPerMinute: 30, maxTracked: 100, journal: journal() });
  await first.start();
  first.accept(symptom('TaskHung'));
  first.accept(symptom('TaskHung'));
  first.accept(symptom('OOMKilling'));
  await first.syncJournal(); // as a source does before it saves its position
  await first.stop(); // its last flush fails too
  assert.ok(first.stats.writeFailures > 0);
  assert.deepEqual(await files(), []);

  const second = new SymptomSink({ store, nodeName: 'node-a', log, flushSeconds: 60, cooldownSeconds: 600, createBurst: 10, createPerMinute: 30, maxTracked: 100, journal: journal() });
  await second.start();
  assert.equal(second.stats.replayed, 3);
  await second.flush();
  await second.stop();
  const written = await Promise.all((await files()).map(async (f) => (await store.get(`default/${f.replace('.yaml', '')}`))!));
  assert.deepEqual(written.map((a) => [a.spec.log?.logEntry, a.spec.occurrences?.count]).sort(), [['OOMKilling happened', 1], ['TaskHung happened', 2]]);
  assert.equal(await readFile(journalFile, 'utf8'), '', 'compacted: nothing left pending');
});

test('symptoms are counted by source and reason, at most 200 reasons by name: the rest as Other', async () => {
  const { sink } = await setup({ maxTracked: 1000 });
  // An Event's reason is whatever its writer chose: 250 distinct ones.
  for (let i = 0; i < 250; i++) sink.accept({ ...symptom(`Reason${i}`), source: 'KubernetesEvent' });
  sink.accept({ ...symptom('Reason0'), source: 'KubernetesEvent' });
  sink.accept({ ...symptom('Reason249'), source: 'KubernetesEvent' });
  const counts = sink.stats.byProblem;
  assert.equal(counts.size, 201);
  assert.equal(counts.get('KubernetesEvent\tReason0'), 2);
  assert.equal(counts.get('KubernetesEvent\tReason199'), 1);
  assert.equal(counts.get('KubernetesEvent\tReason200'), undefined);
  assert.equal(counts.get('KubernetesEvent\tOther'), 51);
});

test('one Abnormal per fault: an Event about a pod already found stuck joins its Abnormal, in spec.related; never the other way round', async () => {
  const { store, sink, files } = await setup();
  const subject = 'Pod default/web-0 8a1c';
  const stuck: Symptom = { source: 'Custom', reason: 'PodStuckTerminating', subject, detail: { context: { pod: { namespace: 'default', name: 'web-0', uid: '8a1c' } } }, seenAt: new Date() };
  const killFailed = (at: Date): Symptom => ({
    source: 'KubernetesEvent', reason: 'FailedKillPod', subject, seenAt: at,
    detail: { kubernetesEvent: { reason: 'FailedKillPod', type: 'Warning', message: 'error killing pod: failed to "KillPodSandbox" for "8a1c": rpc error: code = DeadlineExceeded' } },
  });
  sink.accept(stuck);
  await sink.flush();
  sink.accept(killFailed(new Date(Date.UTC(2026, 11, 1, 2, 0, 0))));
  sink.accept(killFailed(new Date(Date.UTC(2026, 11, 1, 2, 1, 0))));
  await sink.flush();
  assert.equal((await files()).length, 1, 'one Abnormal');
  const [abnormal] = await store.listOfNode();
  assert.equal(abnormal!.spec.source, 'Custom');
  assert.deepEqual(abnormal!.spec.related, [{
    source: 'KubernetesEvent', reason: 'FailedKillPod', count: 2, firstSeen: '2026-12-01T02:00:00Z', lastSeen: '2026-12-01T02:01:00Z',
    message: 'error killing pod: failed to "KillPodSandbox" for "8a1c": rpc error: code = DeadlineExceeded',
  }]);
  assert.equal(sink.stats.joined, 2);

  // An Event first: the stuck pod still gets an Abnormal of its own, which the diagnosers need.
  const other = await setup();
  other.sink.accept({ ...killFailed(new Date()), subject: 'Pod default/db-0 77' });
  await other.sink.flush();
  other.sink.accept({ ...stuck, subject: 'Pod default/db-0 77' });
  await other.sink.flush();
  assert.equal((await other.files()).length, 2);

  // A node is the subject of nearly everything: its Events about two faults stay two Abnormals.
  const node = await setup();
  for (const reason of ['NodeNotReady', 'KernelDeadlock']) node.sink.accept({ source: 'KubernetesEvent', reason, subject: 'Node default/node-a ', detail: { kubernetesEvent: { reason } }, seenAt: new Date() });
  await node.sink.flush();
  assert.equal((await node.files()).length, 2);
});
