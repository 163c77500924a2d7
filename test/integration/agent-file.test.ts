// The agent on its embedded default, the file store, as the real `nodemedic agent` process: the quick
// start, HTTP processors registered as files in their default order, a SIGKILL mid-pipeline, and bad
// files. No cluster is involved. The first two run twice: as the README starts the agent (dist/agent/main.js),
// and as the image ships it (the one-file bundle, with the image's node flags and the DaemonSet's environment).
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { parse } from 'yaml';
import { isTerminal } from '../../agent/api/phase.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { REPO_ROOT } from '../cluster/cluster.js';
import { asShipped, spawnAgent, waitFor } from '../helpers/agent.js';
import { ProcessorServer, answer } from '../helpers/processor-server.js';

const server = await new ProcessorServer().start();
after(() => server.stop());

async function stateDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-state-'));
  await mkdir(path.join(dir, 'abnormals'));
  await mkdir(path.join(dir, 'processors'));
  return dir;
}
type Started = Parameters<typeof spawnAgent>[2];
const agentOn = (dir: string, started: Started = {}) => spawnAgent(['--store', 'file', '--state-dir', dir, '--node-name', 'demo'], path.join(dir, 'agent.log'), started);
const BOTH_WAYS: Array<[string, () => Started]> = [['as the README starts it', () => ({})], ['as the image ships it', asShipped]];
const read = async (dir: string, file: string) => parse(await readFile(path.join(dir, 'abnormals', file), 'utf8')) as Abnormal;
const finished = (dir: string, file: string) =>
  waitFor(`${file} to finish`, async () => {
    const a = await read(dir, file).catch(() => undefined);
    return a && isTerminal(a.status?.phase) ? a : undefined;
  });

for (const [how, started] of BOTH_WAYS) test(`the quick start, ${how}: a file dropped into abnormals/ reaches Succeeded through the built-ins`, async () => {
  const dir = await stateDir();
  const agent = agentOn(dir, started());
  try {
    await copyFile(path.join(REPO_ROOT, 'manifests/examples/quickstart.yaml'), path.join(dir, 'abnormals/quickstart.yaml'));
    const done = await finished(dir, 'quickstart.yaml');
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status));
    assert.deepEqual(done.status?.diagnoser, { namespace: 'builtin', name: 'disk-usage' });
    assert.equal(typeof (done.status?.context?.nodeFacts as { kernel?: unknown })?.kernel, 'string');
    assert.match(done.status?.message ?? '', /identified by builtin\/disk-usage: \/ is [\d.]+% full \(threshold 1%\)/);
    const text = await readFile(path.join(dir, 'abnormals/quickstart.yaml'), 'utf8');
    assert.match(text, /^# The quick start/, 'the comments in the file are kept');
    const events = (await readFile(path.join(dir, 'events.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l).reason);
    assert.deepEqual(events, ['Accepted', 'Collected', 'Identified']);
    assert.deepEqual((await readdir(path.join(dir, 'abnormals'))).filter((f) => f.startsWith('.')), [], 'no temporary files left');
  } finally {
    agent.kill('SIGTERM');
    assert.equal(await agent.exited, 0);
  }
});

for (const [how, started] of BOTH_WAYS) test(`HTTP processors registered as files run in the documented default order, ${how}`, async () => {
  const dir = await stateDir();
  const order: string[] = [];
  const diagnoser = (name: string, identifies: boolean) =>
    server.route(`/order/${name}`, (a) => (order.push(name), answer(a, { identifiable: identifies })));
  await writeFile(path.join(dir, 'processors/diagnosers.yaml'), [
    { ns: 'zeta', name: 'first-by-name', identifies: true },
    { ns: 'alpha', name: 'zz-last', identifies: false },
    { ns: 'alpha', name: 'aa-first', identifies: false },
  ].map(({ ns, name, identifies }) => `apiVersion: nodemedic.io/v1alpha1
kind: Diagnoser
metadata: {name: ${name}, namespace: ${ns}}
spec: {url: "${diagnoser(`${ns}-${name}`, identifies)}"}
`).join('---\n'));
  await writeFile(path.join(dir, 'processors/recoverer.json'), JSON.stringify({
    apiVersion: 'nodemedic.io/v1alpha1', kind: 'Recoverer', metadata: { name: 'fix' },
    spec: { url: server.route('/order/fix', (a) => answer(a, { recoverable: true })) },
  }));
  const agent = agentOn(dir, started());
  try {
    // No assigned processors: built-ins first (by name), then HTTP ones by namespace/name.
    await writeFile(path.join(dir, 'abnormals/ordered.json'), JSON.stringify({
      apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal',
      spec: { source: 'Custom', nodeName: 'demo', context: { thresholdPercent: 101 } },
    }));
    const done = await finished(dir, 'ordered.json');
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status));
    // Then the diagnoser that identified runs again right before each recoverer acts: the built-in
    // signal-process (which finds no target), then fix.
    assert.deepEqual(order, ['alpha-aa-first', 'alpha-zz-last', 'zeta-first-by-name', 'zeta-first-by-name', 'zeta-first-by-name']);
    assert.deepEqual(done.status?.diagnoser, { namespace: 'zeta', name: 'first-by-name' });
    assert.deepEqual(done.status?.recoverer, { namespace: 'default', name: 'fix' });
  } finally {
    agent.kill('SIGTERM');
    await agent.exited;
  }
});

test('SIGKILLed mid-diagnosis, the agent on the file store resumes and recovers once', async () => {
  const dir = await stateDir();
  let calls = 0;
  let called!: () => void;
  const firstCall = new Promise<void>((resolve) => (called = resolve));
  const url = server.route('/file-hang-once', (a) => (++calls === 1 ? (called(), new Promise(() => {})) : answer(a, { identifiable: true })));
  const fix = server.route('/file-fix', (a) => answer(a, { recoverable: true }));
  await writeFile(path.join(dir, 'processors/p.yaml'), `kind: Diagnoser
apiVersion: nodemedic.io/v1alpha1
metadata: {name: hang-once}
spec: {url: "${url}"}
---
kind: Recoverer
apiVersion: nodemedic.io/v1alpha1
metadata: {name: fix}
spec: {url: "${fix}"}
`);
  const first = agentOn(dir);
  await writeFile(path.join(dir, 'abnormals/restart.yaml'), `apiVersion: nodemedic.io/v1alpha1
kind: Abnormal
spec:
  source: Custom
  nodeName: demo
  assignedDiagnosers: [{namespace: default, name: hang-once}]
  assignedRecoverers: [{namespace: default, name: fix}]
`);
  await firstCall;
  first.kill('SIGKILL');
  await first.exited;
  assert.equal((await read(dir, 'restart.yaml')).status?.phase, 'Diagnosing');
  const second = agentOn(dir);
  try {
    const done = await finished(dir, 'restart.yaml');
    assert.equal(done.status?.phase, 'Succeeded');
    assert.equal(calls, 3, 'cut short, run again after the restart, and once more to confirm before fix acted');
    assert.equal(server.count('/file-fix'), 1);
  } finally {
    second.kill('SIGTERM');
    await second.exited;
  }
});

test('bad files get a clear error and the agent keeps going', async () => {
  const dir = await stateDir();
  const agent = agentOn(dir);
  try {
    await writeFile(path.join(dir, 'abnormals/invalid.yaml'), 'apiVersion: nodemedic.io/v1alpha1\nkind: Abnormal\nspec: {source: Gossip, nodeName: demo, skipDiagnosys: true}\n');
    await writeFile(path.join(dir, 'abnormals/garbage.yaml'), '{ this: is: not yaml');
    const invalid = await finished(dir, 'invalid.yaml');
    assert.equal(invalid.status?.phase, 'Failed');
    assert.equal(invalid.status?.reason, 'InvalidAbnormal');
    assert.match(invalid.status?.message ?? '', /spec\.skipDiagnosys: unknown field/);
    assert.match(invalid.status?.message ?? '', /spec\.source: must be one of/);
    const error = await waitFor('garbage.yaml.error', () => readFile(path.join(dir, 'abnormals/garbage.yaml.error'), 'utf8').catch(() => undefined));
    assert.match(error, /garbage\.yaml is not a valid YAML or JSON object/);
    // Still working:
    await copyFile(path.join(REPO_ROOT, 'manifests/examples/quickstart.yaml'), path.join(dir, 'abnormals/after.yaml'));
    assert.equal((await finished(dir, 'after.yaml')).status?.phase, 'Succeeded');
  } finally {
    agent.kill('SIGTERM');
    await agent.exited;
  }
});
