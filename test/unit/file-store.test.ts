// The file store under concurrent writers in one process: the pipeline writing status and a source
// raising the count on the same Abnormal at the same moment, and a person editing a file between the
// store's writes (real files in a temporary directory).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { parse } from 'yaml';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { atomicWrite } from '../../agent/lib/files.js';
import { FileStore } from '../../agent/store/file.js';
import { ConflictError } from '../../agent/store/store.js';

/** A started file store in a temporary directory, both gone after the test. */
async function startedStore(t: TestContext): Promise<{ dir: string; store: FileStore }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-filestore-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new FileStore({ dir, log: pino({ level: 'silent' }), settleMs: 0 });
  await store.start(() => {});
  t.after(() => store.stop());
  return { dir, store };
}

test('two writes from one version at once: one lands, the other is a conflict, nothing is silently lost', async (t) => {
  const { dir, store } = await startedStore(t);
  const created = await store.create({
    apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal',
    metadata: { name: 'race' }, spec: { source: 'Custom', nodeName: 'demo', occurrences: { count: 1 } },
  } as Abnormal);

  for (let round = 0; round < 20; round++) {
    const current = (await store.get('default/race'))!;
    const results = await Promise.allSettled([
      store.writeStatus(current, { phase: 'InformationCollecting', message: `round ${round}` }),
      store.writeSpec(current, { ...current.spec, occurrences: { count: round + 2 } }),
    ]);
    const landed = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(landed.length, 1, `round ${round}: exactly one write lands`);
    assert.ok(refused[0]!.reason instanceof ConflictError, `round ${round}: the other is a conflict, not ${refused[0]!.reason}`);
    // What the file holds is what the landed write says it wrote.
    const onDisk = parse(await readFile(path.join(dir, 'abnormals', 'race.yaml'), 'utf8')) as Abnormal;
    const written = (landed[0] as PromiseFulfilledResult<Abnormal>).value;
    assert.deepEqual(onDisk.spec, written.spec);
    assert.deepEqual(onDisk.status, written.status);
  }
  assert.ok(created);
  assert.deepEqual((await readdir(path.join(dir, 'abnormals'))).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left behind');
});

test('a status write after the store\'s own write of a file: a person\'s edit in between is kept, with its comment', async (t) => {
  const { dir, store } = await startedStore(t);
  const file = path.join(dir, 'abnormals', 'edited.yaml');
  await store.create({
    apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal',
    metadata: { name: 'edited' }, spec: { source: 'Custom', nodeName: 'demo' },
  } as Abnormal);
  await store.writeStatus((await store.get('default/edited'))!, { phase: 'InformationCollecting' });
  // The store keeps what it wrote; the person's edit makes the file another one.
  await atomicWrite(file, (await readFile(file, 'utf8')).replace('spec:\n', 'spec:\n  skipRecovery: true # held back by a person\n'));
  const edited = (await store.get('default/edited'))!;
  assert.equal(edited.spec.skipRecovery, true);
  await store.writeStatus(edited, { phase: 'Diagnosing' });
  const text = await readFile(file, 'utf8');
  assert.match(text, /skipRecovery: true # held back by a person/);
  assert.equal((parse(text) as Abnormal).status?.phase, 'Diagnosing');
});

test('the store\'s own writes are not parsed again: a status write starts from the document of its last write, a read from what it wrote', async (t) => {
  const { dir, store } = await startedStore(t);
  const file = path.join(dir, 'abnormals', 'cached.yaml');
  let abnormal = await store.create({
    apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal',
    metadata: { name: 'cached' }, spec: { source: 'Custom', nodeName: 'demo' },
  } as Abnormal);
  const parsedBefore = store.yamlParses;
  for (const phase of ['InformationCollecting', 'Diagnosing', 'Failed'] as const) {
    abnormal = await store.writeStatus((await store.get('default/cached'))!, { ...abnormal.status, phase });
  }
  assert.equal(store.yamlParses, parsedBefore, 'three reads and three status writes, no parse');
  assert.equal((parse(await readFile(file, 'utf8')) as Abnormal).status?.phase, 'Failed');
  assert.match(await readFile(file, 'utf8'), /^# Created by nodemedic from a symptom\./);
  // A person's edit makes it another file: read, it is parsed once, and the next write starts from that.
  await atomicWrite(file, (await readFile(file, 'utf8')).replace('spec:\n', 'spec:\n  skipRecovery: true\n'));
  await store.writeStatus((await store.get('default/cached'))!, { phase: 'Failed', message: 'edited' });
  assert.equal(store.yamlParses, parsedBefore + 2, 'the edited file parsed to be read, and again to be rewritten');
});

test('an Abnormal file too large to be one is not read — the agent says so beside it — and what a cut-short write left is cleared at start', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-filestore-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'abnormals'));
  // 34 MB of YAML blocked the event loop for minutes on a2117e0.
  await writeFile(path.join(dir, 'abnormals', 'huge.yaml'), `spec:\n  source: Custom\n  nodeName: demo\n  context:\n    blob: "${'x'.repeat(3 * 1024 * 1024)}"\n`);
  await writeFile(path.join(dir, 'abnormals', '.fine.yaml.4242.7.tmp'), 'half a write');
  const store = new FileStore({ dir, log: pino({ level: 'silent' }), settleMs: 0 });
  await store.start(() => {});
  t.after(() => store.stop());
  assert.equal(await store.get('default/huge'), undefined);
  assert.match(await readFile(path.join(dir, 'abnormals', 'huge.yaml.error'), 'utf8'), /huge\.yaml is \d+ bytes; an Abnormal file may have at most 2097152 \(it is not read\)/);
  assert.deepEqual((await readdir(path.join(dir, 'abnormals'))).filter((f) => f.endsWith('.tmp')), []);
});

test('a write that fails leaves no temporary file behind', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-atomic-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'taken'));
  await assert.rejects(atomicWrite(path.join(dir, 'taken'), 'text'), /EISDIR|directory/); // the rename cannot replace a directory
  assert.deepEqual(await readdir(dir), ['taken']);
});

test('finding by fingerprint reads the files indexed under it, and finds them again after a restart', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-filestore-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const log = pino({ level: 'silent' });
  const first = new FileStore({ dir, log, settleMs: 0 });
  await first.start(() => {});
  for (const fp of ['fp-a', 'fp-b', 'fp-a']) {
    await first.create({ apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal', metadata: { generateName: 'x-', labels: { 'nodemedic.io/fingerprint': fp } }, spec: { source: 'Custom', nodeName: 'demo' } } as Abnormal);
  }
  assert.equal((await first.findByFingerprint('fp-a')).length, 2);
  assert.equal((await first.findByFingerprint('fp-b')).length, 1);
  assert.equal((await first.findByFingerprint('fp-c')).length, 0);
  await first.stop();
  const second = new FileStore({ dir, log, settleMs: 0 });
  await second.start(() => {});
  t.after(() => second.stop());
  assert.equal((await second.findByFingerprint('fp-a')).length, 2, 'the index is rebuilt from the files at start');
});

test('garbage collection on the file store: every Abnormal listed; one deleted only if unchanged since it was read', async (t) => {
  const { dir, store } = await startedStore(t);
  const make = () => store.create({ apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal', metadata: { generateName: 'gc-' }, spec: { source: 'Custom', nodeName: 'demo' } } as Abnormal);
  const [first, second] = [await make(), await make()];
  assert.equal((await store.listOfNode()).length, 2);
  const changed = await store.writeStatus(first, { phase: 'Failed' });
  assert.equal(await store.remove(first), false, 'changed since it was read');
  assert.equal(await store.remove(changed), true);
  assert.equal(await store.remove(second), true);
  assert.deepEqual(await readdir(path.join(dir, 'abnormals')), []);
  assert.equal(await store.remove(second), true, 'gone already');
});
