// The flagship case on a real node — containerd and the kubelet, joined to the test apiserver: a pod
// whose container shim hangs (stopped with SIGSTOP) stays Terminating after deletion; the agent of that
// node finds it, collects the shim's details, diagnoses the unresponsive shim, kills it, and the pod
// is gone. Then the reaper-deadlock diagnoser on a real, healthy shim (no match); a fixture process
// impersonating a deadlocked shim, which is not even asked for its dump (its executable is not the
// runtime's shim binary); and a copy of sleep named like a shim, which the recoverer refuses.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { CoreV1Api, type CoreV1Event } from '@kubernetes/client-node';
import type { RunningAgent } from '../../agent/agent.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { DEFAULTS } from '../../agent/config.js';
import { CriClient } from '../../agent/node/cri.js';
import { signalProcess } from '../../recoverers/signal-process.js';
import { ON_OWN_CLUSTER, runBusyboxPod, skipUnlessOwnCluster, startSuiteNodeFor, type TestNode } from './node.js';
import { finished, startKubeAgent, waitFor } from '../helpers/agent.js';
import { isAlive, lookalikeShim } from '../helpers/lookalike.js';
import { ABNORMALS, GROUP, VERSION, customObjects, kubeConfig, testNamespace } from '../helpers/kube.js';
import { REPO_ROOT } from '../cluster/cluster.js';

const skip = skipUnlessOwnCluster('joins a kubelet to the cluster');
const ns = await testNamespace('node');
const nodeName = `node-${ns}`;
const core = kubeConfig().makeApiClient(CoreV1Api);
let node: TestNode | undefined;
let agent: RunningAgent | undefined;

before(async () => {
  if (!ON_OWN_CLUSTER) return;
  node = await startSuiteNodeFor(ns, nodeName);
  agent = await startKubeAgent(nodeName, {
    namespace: ns, processorNamespaces: [ns],
    stuckPods: { enabled: true, marginSeconds: 2, checkSeconds: 1 },
    shims: { containerdLog: node.containerdLog, dumpTimeoutSeconds: 3, unresponsiveSeconds: 3 },
    probes: { ...DEFAULTS.probes, criEndpoint: `unix://${node.containerdSocket}` }, // the runtime the recoverer asks
  });
});
after(async () => {
  await agent?.stop();
  await node?.stop();
});

/** A running busybox pod on the node, and the one new shim that serves it. */
async function runPod(name: string): Promise<{ uid: string; shim: number }> {
  const { uid, newShims } = await runBusyboxPod(node!, ns, name);
  assert.equal(newShims.length, 1, 'one new shim: one per pod sandbox');
  return { uid, shim: newShims[0]! };
}

const abnormals = async () =>
  ((await customObjects().listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS })) as { items: Abnormal[] }).items;

async function eventsOf(name: string): Promise<CoreV1Event[]> {
  return (await core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name}` })).items;
}

test('a pod whose shim hangs: found stuck, the shim proven unresponsive and killed, and the pod is gone', { skip }, async (t) => {
  const { uid, shim } = await runPod('web-0');
  process.kill(shim, 'SIGSTOP');
  const deleted = Date.now();
  await core.deleteNamespacedPod({ namespace: ns, name: 'web-0' });

  const [created] = await waitFor('the stuck pod\'s Abnormal', async () => ((await abnormals()).length > 0 ? abnormals() : undefined), 60_000);
  const done = await finished(ns, created!.metadata!.name!, 120_000);
  const gone = Date.now();
  const status = done.status!;
  assert.equal(status.phase, 'Succeeded', JSON.stringify({ reason: status.reason, message: status.message }));
  assert.equal(done.spec.nodeName, nodeName);
  assert.deepEqual((done.spec.context!.pod as { uid: string }).uid, uid);

  // Collected: the shim of that pod, its process details, no dump while stopped.
  const shims = status.context!.containerShims as Array<{ pid: number; pod?: { uid?: string; name?: string } }>;
  assert.deepEqual(shims.map((s) => [s.pid, s.pod?.uid, s.pod?.name]), [[shim, uid, 'web-0']]);
  const processes = status.context!.processes as Array<{ pid: number; state: string; children: unknown[] }>;
  assert.equal(processes[0]!.pid, shim);
  assert.equal(processes[0]!.state, 'T');
  assert.ok(processes[0]!.children.length >= 2, 'the shim\'s children: the pause process and the container');
  const [dump] = status.context!.goroutineDumps as Array<{ pid: number; dump?: string; noDumpWithinSeconds?: number; states: Array<{ state: string }> }>;
  assert.equal(dump!.pid, shim);
  assert.equal(dump!.dump, undefined);
  assert.equal(dump!.noDumpWithinSeconds, 3);
  assert.deepEqual(dump!.states.map((s) => s.state), ['T']);
  const facts = status.context!.nodeFacts as { runtime: { containerd?: string }; rootDisk?: { totalBytes: number } };
  assert.match(facts.runtime.containerd ?? '', /^containerd /);
  assert.ok((facts.rootDisk?.totalBytes ?? 0) > 0);
  assert.ok(Array.isArray((status.context!.kernelLog as { lines?: unknown[] }).lines), 'the kernel log around the symptom');

  // Diagnosed and recovered by the built-ins; the pod is gone and so is the shim.
  assert.deepEqual(status.diagnoser, { namespace: 'builtin', name: 'unresponsive-shim' });
  assert.deepEqual(status.recoverer, { namespace: 'builtin', name: 'signal-process' });
  assert.match(status.message ?? '', new RegExp(`recovered by builtin/signal-process: sent SIGKILL to pid ${shim} \\(containerd-shim-runc-v2\\); they exited and pod ${ns}/web-0 finished terminating`));
  assert.equal(await core.readNamespacedPod({ namespace: ns, name: 'web-0' }).then(() => 'still there', () => 'gone'), 'gone');
  assert.equal(isAlive(shim), false);

  // The timeline, readable in the conditions and the Events.
  assert.deepEqual(status.conditions!.map((c) => [c.type, c.status, c.reason]),
    [['InformationCollected', 'True', 'Collected'], ['Identified', 'True', 'ShimUnresponsive'], ['Recovered', 'True', 'PodTerminated']]);
  // (Events carry whole seconds, so their order within one second is not kept: compared as a set.)
  const events = await eventsOf(done.metadata!.name!);
  assert.deepEqual(events.map((e) => e.reason).sort(), ['Accepted', 'Collected', 'Identified', 'Recovered']);
  t.diagnostic(`pod deleted → pod gone: ${((gone - deleted) / 1000).toFixed(1)} s (grace 1 s, stuck margin 2 s, dump timeout 3 s, unresponsive threshold 3 s)`);
  t.diagnostic(`created ${((Date.parse(created!.metadata!.creationTimestamp as unknown as string) - deleted) / 1000).toFixed(0)} s after the deletion; ${status.message}`);
  t.diagnostic(`timeline: ${status.conditions!.map((c) => `${c.type} ${c.lastTransitionTime}`).join(', ')}`);
});

/** An Abnormal made by hand about `context` for the agent of `forNode`, once it has finished. */
async function handMade(name: string, context: Record<string, unknown>, skipRecovery: boolean, forNode = nodeName): Promise<Abnormal> {
  await customObjects().createNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Abnormal', metadata: { name }, spec: { source: 'Custom', nodeName: forNode, skipRecovery, context } },
  });
  return finished(ns, name, 60_000);
}

test('a real, healthy shim: its real goroutine dump is read, and neither shim diagnoser identifies it', { skip }, async () => {
  const { uid, shim } = await runPod('healthy-0');
  const done = await handMade('healthy-shim', { pod: { namespace: ns, name: 'healthy-0', uid } }, true);
  const [dump] = done.status!.context!.goroutineDumps as Array<{ pid: number; dump?: string }>;
  assert.equal(dump!.pid, shim);
  assert.match(dump!.dump ?? '', /^=== BEGIN goroutine stack dump ===\ngoroutine \d+ \[running\]:\ngithub.com\/containerd\/containerd\/runtime\/v2\/shim.dumpStacks/);
  assert.equal(done.status!.phase, 'Failed');
  assert.equal(done.status!.reason, 'NotIdentified');
  assert.match(done.status!.message ?? '', new RegExp(`builtin/shim-reaper-deadlock: not identified \\(the goroutine dump of shim pid ${shim} shows no reaper deadlock\\)`));
  assert.match(done.status!.message ?? '', new RegExp(`builtin/unresponsive-shim: not identified \\(shim pid ${shim} answered with a goroutine dump\\)`));
  assert.equal(isAlive(shim), true);
});

test('security: a fixture impersonating a deadlocked shim is not signalled for its dump: its executable is not the runtime\'s shim binary', { skip }, async () => {
  const fixture = spawn(process.execPath, [
    '-e', `import(${JSON.stringify(pathToFileURL(path.join(REPO_ROOT, 'dist/test/fixtures/deadlocked-shim.js')).href)})`,
    '--', '-namespace', 'k8s.io', '-id', randomBytes(32).toString('hex'), '-address', node!.containerdSocket,
  ], { argv0: 'containerd-shim-runc-v2', env: { ...process.env, NODEMEDIC_FIXTURE_LOG: node!.containerdLog }, stdio: 'ignore' });
  after(() => fixture.kill('SIGKILL'));
  const done = await handMade('deadlocked-shim', { pids: [fixture.pid] }, false);
  const status = done.status!;
  const [dump] = status.context!.goroutineDumps as Array<{ pid: number; dump?: string; error?: string }>;
  assert.equal(dump!.pid, fixture.pid);
  assert.equal(dump!.dump, undefined);
  assert.match(dump!.error ?? '', new RegExp(`not signalled: pid ${fixture.pid} runs .*node.*, which is not the container runtime's shim binary \\(/usr/bin/containerd-shim-runc-v2`));
  assert.equal(status.phase, 'Failed');
  assert.equal(status.reason, 'NotIdentified');
  assert.equal(isAlive(fixture.pid!), true, 'the fixture was not signalled');
});

test('security: a copy of sleep named like a shim is refused by the signal recoverer, whatever the diagnosis says', { skip }, async () => {
  const victim = await lookalikeShim();
  const runtime = new CriClient(`unix://${node!.containerdSocket}`);
  after(() => runtime.close());
  const recoverer = signalProcess({ runtime, confirmSeconds: 1 });
  // The recoverer on its own, given a diagnosis naming the look-alike (as a forged status would).
  const outcome = await recoverer.run({
    metadata: { namespace: ns, name: 'lookalike' }, spec: { source: 'Custom', nodeName },
    status: { phase: 'Recovering', context: { diagnosis: { fault: 'ShimReaperDeadlock', targets: [{ pid: victim.pid, startTicks: victim.startTicks }] } } },
  }, new AbortController().signal);
  assert.ok(!outcome.ok && outcome.reason === 'Refused', JSON.stringify(outcome));
  assert.match(outcome.message, new RegExp(`pid ${victim.pid} runs ${victim.path}, which is not the container runtime's shim binary`));
  assert.equal(isAlive(victim.pid), true);
});

test('dry run: the recoverer says what it would do and nothing is signalled', { skip }, async () => {
  const dryNode = `dry-${nodeName}`.slice(0, 63);
  const dry = await startKubeAgent(dryNode, {
    namespace: ns, processorNamespaces: [ns], recovery: { ...DEFAULTS.recovery, dryRun: true, maxNodesAtOnce: 1000, budgetNamespace: 'nodemedic-system' },
    probes: { ...DEFAULTS.probes, criEndpoint: `unix://${node!.containerdSocket}` },
    shims: { containerdLog: node!.containerdLog, dumpTimeoutSeconds: 1, unresponsiveSeconds: 1 },
  });
  after(() => dry.stop());
  const { uid, shim } = await runPod('dry-0');
  process.kill(shim, 'SIGSTOP');
  after(() => process.kill(shim, 'SIGKILL'));
  const done = await handMade('dry-run', { pod: { namespace: ns, name: 'dry-0', uid } }, false, dryNode);
  assert.equal(done.status!.phase, 'Failed');
  assert.match(done.status!.message ?? '', new RegExp(`builtin/signal-process: dry run: would send SIGKILL to pid ${shim} \\(containerd-shim-runc-v2\\)`));
  assert.equal(execFileSync('ps', ['-o', 'stat=', '-p', String(shim)], { encoding: 'utf8' }).trim()[0], 'T', 'the shim is still there, still stopped');
});
