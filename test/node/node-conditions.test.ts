// Node conditions and Node events on a real node (containerd and the kubelet, joined to the test
// apiserver), as node-problem-detector sets them and beyond: a permanent rule's match sets its
// condition beside the kubelet's own (`kubectl describe node` shows it, and a Warning event), and the
// Abnormal's recovery clears it (a Normal event). The diagnoser and the recoverer are scripts of the
// test's own; the recoverer answers only once the test has seen the condition set.
import assert from 'node:assert/strict';
import { appendFile, chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { RunningAgent } from '../../agent/agent.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { finished, startKubeAgent, waitFor } from '../helpers/agent.js';
import { ABNORMALS, GROUP, VERSION, customObjects, kubeConfig, kubectl, testNamespace } from '../helpers/kube.js';
import { ON_OWN_CLUSTER, skipUnlessOwnCluster, startSuiteNodeFor, type TestNode } from './node.js';

const skip = skipUnlessOwnCluster('joins a kubelet to the cluster');
const ns = await testNamespace('conditions');
const nodeName = `cond-${ns}`;
const core = kubeConfig().makeApiClient(CoreV1Api);
const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-conditions-'));
const logFile = path.join(dir, 'disk.log');
const gate = path.join(dir, 'recover-now');
let node: TestNode | undefined;
let agent: RunningAgent | undefined;

async function script(kind: string, name: string, body: string): Promise<string> {
  await mkdir(path.join(dir, kind), { recursive: true });
  const file = path.join(dir, kind, name);
  await writeFile(file, `#!/bin/sh\n# nodemedic: timeout=60s\ncat >/dev/null\n${body}\n`);
  await chmod(file, 0o755);
  return path.join(dir, kind);
}

before(async () => {
  if (!ON_OWN_CLUSTER) return;
  await writeFile(logFile, '');
  await writeFile(path.join(dir, 'rules.yaml'), stringify({
    kind: 'LogRules', plugin: 'file', logPath: logFile, source: 'disk-monitor',
    conditions: [{ type: 'DiskBadBlock', reason: 'DiskHasNoBadBlock', message: 'disk has no bad block' }],
    rules: [{ type: 'permanent', condition: 'DiskBadBlock', reason: 'DiskBadBlock', pattern: '\\d{3,} Currently unreadable \\(pending\\) sectors' }],
  }));
  const scripts = {
    collectors: path.join(dir, 'none'),
    diagnosers: await script('diagnosers', 'bad-block.sh', 'echo \'{"identifiable": true, "reason": "BadBlocks", "message": "the disk has unreadable sectors"}\''),
    recoverers: await script('recoverers', 'remap.sh', `while [ ! -e ${gate} ]; do sleep 0.1; done; echo '{"recoverable": true, "message": "sectors remapped"}'`),
    defaultTimeoutSeconds: 60, maxOutputBytes: 1024 * 1024,
  };
  node = await startSuiteNodeFor(ns, nodeName);
  agent = await startKubeAgent(nodeName, { namespace: ns, sources: { defaultRules: false, ruleFiles: [path.join(dir, 'rules.yaml')], kernelLogFallback: '', journalDirectory: '' }, scripts });
});
after(async () => {
  await agent?.stop();
  await node?.stop();
});

const condition = async (type: string) => (await core.readNode({ name: nodeName })).status?.conditions?.find((c) => c.type === type);
const nodeEvents = async () => (await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.kind=Node,involvedObject.name=${nodeName}` })).items
  .filter((e) => e.source?.component === 'nodemedic').map((e) => `${e.type} ${e.reason}`);

test('a permanent rule sets its condition on the real Node beside the kubelet\'s; the recovery clears it', { skip }, async (t) => {
  await waitFor('the default condition, set at start', async () => (await condition('DiskBadBlock'))?.status === 'False' || undefined, 60_000);
  assert.equal((await condition('Ready'))?.type, 'Ready', 'the kubelet\'s own conditions are there');
  await appendFile(logFile, 'Dec  1 02:00:00 node smartd[812]: Device: /dev/sda [SAT], 124 Currently unreadable (pending) sectors\n');

  const set = await waitFor('DiskBadBlock set', async () => ((await condition('DiskBadBlock'))?.status === 'True' ? condition('DiskBadBlock') : undefined), 60_000);
  const [abnormal] = ((await customObjects().listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS })) as { items: Abnormal[] }).items;
  assert.equal(set?.reason, 'DiskBadBlock');
  assert.equal(set?.message, `Dec  1 02:00:00 node smartd[812]: Device: /dev/sda [SAT], 124 Currently unreadable (pending) sectors (Abnormal ${ns}/${abnormal!.metadata!.name})`);
  const describedSet = await kubectl('describe', 'node', nodeName);
  assert.match(describedSet, /DiskBadBlock\s+True\s+.*DiskBadBlock\s+Dec  1 02:00:00 node smartd/);
  assert.match((await condition('Ready'))?.reason ?? '', /^Kubelet/, 'the kubelet\'s Ready is still the kubelet\'s');

  await writeFile(gate, '');
  const done = await finished(ns, abnormal!.metadata!.name!, 60_000);
  assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status));
  const cleared = await waitFor('DiskBadBlock cleared', async () => ((await condition('DiskBadBlock'))?.status === 'False' ? condition('DiskBadBlock') : undefined), 60_000);
  assert.deepEqual([cleared?.reason, cleared?.message], ['DiskHasNoBadBlock', 'disk has no bad block']);
  assert.ok(Date.parse(String(cleared?.lastTransitionTime)) >= Date.parse(String(set?.lastTransitionTime)));
  await waitFor('the Node\'s events', async () => ((await nodeEvents()).length >= 2 || undefined), 30_000);
  assert.deepEqual((await nodeEvents()).sort(), ['Normal DiskHasNoBadBlock', 'Warning DiskBadBlock']);

  const describedCleared = await kubectl('describe', 'node', nodeName);
  assert.match(describedCleared, /DiskBadBlock\s+False\s+.*DiskHasNoBadBlock\s+disk has no bad block/);
  const excerpt = (text: string, from: RegExp, lines: number) => {
    const all = text.split('\n');
    const at = all.findIndex((l) => from.test(l));
    return all.slice(at, at + lines).join('\n');
  };
  t.diagnostic(`kubectl describe node, condition set:\n${excerpt(describedSet, /^Conditions:/, 8)}`);
  t.diagnostic(`kubectl describe node, after the recovery:\n${excerpt(describedCleared, /^Conditions:/, 8)}\n${excerpt(describedCleared, /^Events:/, 10)}`);
  const describedAb = await kubectl('-n', ns, 'describe', 'ab', abnormal!.metadata!.name!);
  t.diagnostic(`kubectl describe ab:\n${excerpt(describedAb, /^Status:/, 18)}\n${excerpt(describedAb, /^Events:/, 10)}`);
});
