// The flagship case for real, with no fixture anywhere: a real containerd-shim-runc-v2 deadlocked in its
// reaper, on a real node (containerd + runc + the kubelet joined to the test apiserver). The shim is
// Debian's containerd 1.6.20 with a test-only patch that restores containerd 1.2's Reap, the lock
// order PR 3529 fixed (test/node/deadlock-shim: built from Debian's source once per machine); this
// node's containerd runs it for every pod. The trigger is the one the bug met in the wild: many exec'd
// processes exiting at once while more execs start. Then the pod is deleted and the agent does the
// rest: stuck-pod Abnormal → container-shims maps the pod to its shim → goroutine-dump reads the
// shim's real dump from containerd's log → shim-reaper-deadlock identifies it from that dump → the
// signal recoverer kills the proven shim → the pod is gone. containerd logs to the journal, as on most
// nodes (journald:containerd.service): the dump, one line of hundreds of KiB, is cut there at journald's
// 48 KiB LineMax and put back together by the reader.
// NODEMEDIC_DEADLOCK_RUNS=5 repeats it, for the timings in docs/shim-case.md (with
// NODEMEDIC_TEST_FILE_TIMEOUT_S=1500: about 4 minutes a run).
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import type { RunningAgent } from '../../agent/agent.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { DEFAULTS } from '../../agent/config.js';
import { CriClient } from '../../agent/node/cri.js';
import { REPO_ROOT } from '../cluster/cluster.js';
import { finished, startKubeAgent, waitFor } from '../helpers/agent.js';
import { isAlive } from '../helpers/lookalike.js';
import { ABNORMALS, GROUP, VERSION, customObjects, kubeConfig, testNamespace } from '../helpers/kube.js';
import { ON_OWN_CLUSTER, runBusyboxPod, skipUnlessOwnCluster, startSuiteNodeFor, type TestNode } from './node.js';

const run = promisify(execFile);
const skip = skipUnlessOwnCluster('joins a kubelet to the cluster');
const RUNS = Number(process.env.NODEMEDIC_DEADLOCK_RUNS ?? 1);
/** Exec'd processes made to exit at once. */
const WAITERS = 150;
/** The stuck-pod margin: past a minute, so Go's dump marks the goroutines blocked since the hang. */
const MARGIN_SECONDS = 65;
const ns = await testNamespace('deadlock');
const nodeName = `deadlock-${ns}`;
const core = kubeConfig().makeApiClient(CoreV1Api);
let node: TestNode | undefined;
let agent: RunningAgent | undefined;
let cri: CriClient | undefined;

before(async () => {
  if (!ON_OWN_CLUSTER) return;
  const shimDir = (await run(path.join(REPO_ROOT, 'test/node/deadlock-shim/build.sh'), { maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
  // containerd logs to the journal too (journald's stdout transport, a fixture), and the agent reads the dump there.
  node = await startSuiteNodeFor(ns, nodeName, { shimDir, journal: true });
  cri = new CriClient(`unix://${node.containerdSocket}`);
  agent = await startKubeAgent(nodeName, {
    namespace: ns, processorNamespaces: [ns],
    stuckPods: { enabled: true, marginSeconds: MARGIN_SECONDS, checkSeconds: 1 },
    shims: { containerdLog: 'journald:containerd.service', dumpTimeoutSeconds: 10, unresponsiveSeconds: 3 },
    sources: { ...DEFAULTS.sources, defaultRules: false, journalDirectory: node.journal!.directory },
    probes: { ...DEFAULTS.probes, criEndpoint: `unix://${node.containerdSocket}` },
  });
});
after(async () => {
  await agent?.stop();
  await cri?.close();
  await node?.stop();
});

const waitingProcesses = (marker: string) => execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(marker)).length;

/** A busybox pod on the node: its uid, its shim, its container's id and the container's first process on the host. */
async function runPod(name: string) {
  const { uid, newShims: [shim] } = await runBusyboxPod(node!, ns, name);
  const [container] = await cri!.runningContainers({ namespace: ns, name });
  const tasks = (await run('ctr', ['--address', node!.containerdSocket, '-n', 'k8s.io', 'task', 'ls'])).stdout;
  const initPid = Number(tasks.split('\n').find((l) => l.startsWith(container!.id))!.trim().split(/\s+/)[1]);
  return { uid, shim: shim!, containerId: container!.id, initPid };
}

/**
 * The trigger: WAITERS exec'd processes blocked on a file, released at once (the file made from the
 * host, through the container's root) while execs keep starting. Resolves once the shim no longer
 * answers an exec; tried again, up to three times, if it got through.
 */
async function deadlock(pod: { containerId: string; initPid: number }, name: string): Promise<number> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    const marker = `/release-${name}-${attempt}`;
    const waiters = Array.from({ length: WAITERS }, () => cri!.execSync(pod.containerId, ['sh', '-c', `while [ ! -e ${marker} ]; do sleep 0.05; done`], 600).catch(() => undefined));
    void Promise.all(waiters);
    await waitFor(`${WAITERS} exec'd processes waiting`, async () => waitingProcesses(marker) >= WAITERS || undefined, 300_000); // 150 waiters polling load a busy 2-core machine: minutes, not seconds
    let busy = true;
    const starting = Array.from({ length: 8 }, async () => {
      while (busy) await cri!.execSync(pod.containerId, ['true'], 10).catch(() => undefined);
    });
    await writeFile(`/proc/${pod.initPid}/root${marker}`, '');
    await waitFor('the waiters to exit', async () => waitingProcesses(marker) === 0 || undefined, 60_000);
    busy = false;
    const answered = await cri!.execSync(pod.containerId, ['true'], 10).then(() => true, () => false);
    await Promise.all(starting); // each ends within its exec's 10 s timeout
    if (!answered) return attempt;
  }
  throw new Error('the shim did not deadlock in three attempts');
}

const eventsOf = async (name: string) => (await core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name}` })).items;

test('a shim truly deadlocked in its reaper: found stuck, proven from its own goroutine dump, killed, and the pod is gone', { skip, timeout: RUNS * 600_000 }, async (t) => {
  const timings: string[] = [];
  for (let n = 1; n <= RUNS; n++) {
    const name = `web-${n}`;
    const pod = await runPod(name);
    const attempts = await deadlock(pod, name);
    const deleted = Date.now();
    await core.deleteNamespacedPod({ namespace: ns, name, gracePeriodSeconds: 1 });

    const abnormal = await waitFor(`the stuck pod ${name}'s Abnormal`, async () =>
      ((await customObjects().listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS })) as { items: Abnormal[] })
        .items.find((a) => (a.spec.context?.pod as { uid?: string } | undefined)?.uid === pod.uid), 180_000);
    const done = await finished(ns, abnormal.metadata!.name!, 240_000);
    const status = done.status!;
    assert.equal(status.phase, 'Succeeded', JSON.stringify({ reason: status.reason, message: status.message, dump: (status.context?.goroutineDumps as Array<{ dump?: string }> | undefined)?.[0]?.dump?.slice(0, 3000) }));
    await waitFor(`pod ${name} gone`, async () => core.readNamespacedPod({ namespace: ns, name }).then(() => undefined, () => true), 120_000);
    const gone = Date.now();
    assert.deepEqual(status.diagnoser, { namespace: 'builtin', name: 'shim-reaper-deadlock' });
    assert.deepEqual(status.recoverer, { namespace: 'builtin', name: 'signal-process' });
    const identified = status.conditions!.find((c) => c.type === 'Identified')?.message ?? '';
    assert.match(identified, new RegExp(`shim pid ${pod.shim} is deadlocked in its reaper \\(github.com/containerd/containerd/sys/reaper\\)`));
    assert.match(status.message ?? '', new RegExp(`sent SIGKILL to pid ${pod.shim} \\(containerd-shim-runc-v2\\); they exited and pod ${ns}/${name} finished terminating`));
    assert.equal(isAlive(pod.shim), false);

    // The dump the diagnosis rests on: the shim's own, read from containerd's log — Reap blocked
    // sending while holding the lock since the hang, and a runc command's Wait starved of its exit.
    const dumps = status.context!.goroutineDumps as Array<{ pid: number; dump?: string }>;
    // Read from the journal, where journald's 48 KiB LineMax cut the dump's one line into pieces.
    assert.ok(node!.journal!.pieces > 0, 'containerd logged a line longer than LineMax');
    const dump = dumps.find((d) => d.pid === pod.shim)?.dump ?? '';
    const reap = /goroutine (\d+) \[chan send, (\d+) minutes\]:\ngithub.com\/containerd\/containerd\/sys\/reaper\.Reap\(\)\n\tgithub.com\/containerd\/containerd\/sys\/reaper\/reaper_unix\.go:\d+/.exec(dump);
    assert.ok(reap, `Reap blocked sending, for minutes, in the dump:\n${dump.slice(0, 2000)}`);
    // (a goroutine's lines are never blank: the match stays within one)
    const wait = /goroutine (\d+) \[(chan receive|semacquire|sync\.Mutex\.Lock), (\d+) minutes\]:\n(?:[^\n]+\n)*?github.com\/containerd\/containerd\/sys\/reaper\.\(\*Monitor\)\.Wait\(/.exec(dump);
    assert.ok(wait, 'a Monitor.Wait starved by it');
    assert.deepEqual(status.conditions!.map((c) => [c.type, c.status, c.reason]),
      [['InformationCollected', 'True', 'Collected'], ['Identified', 'True', 'ShimReaperDeadlock'], ['Recovered', 'True', 'PodTerminated']]);
    assert.deepEqual((await eventsOf(done.metadata!.name!)).map((e) => e.reason).sort(), ['Accepted', 'Collected', 'Identified', 'Recovered']);

    const at = (type: string) => Date.parse(String(status.conditions!.find((c) => c.type === type)?.lastTransitionTime));
    timings.push(`run ${n}: deadlocked at attempt ${attempts}; the journal took ${node!.journal!.pieces} pieces of lines longer than LineMax so far; deletion → pod gone ${((gone - deleted) / 1000).toFixed(1)} s ` +
      `(the stuck-pod margin ${MARGIN_SECONDS} s; Abnormal created → identified ${((at('Identified') - Date.parse(String(done.metadata!.creationTimestamp))) / 1000).toFixed(0)} s, → recovered ${((at('Recovered') - Date.parse(String(done.metadata!.creationTimestamp))) / 1000).toFixed(0)} s)`);
    // NODEMEDIC_DEADLOCK_DUMP=FILE keeps the dump (test/fixtures/shim-1.6-deadlock-dump.txt is one).
    if (n === 1 && process.env.NODEMEDIC_DEADLOCK_DUMP) await writeFile(process.env.NODEMEDIC_DEADLOCK_DUMP, dump);
    if (n === 1) {
      t.diagnostic(`the diagnosis: ${identified}`);
      t.diagnostic(`the recovery: ${status.message}`);
      t.diagnostic(`the dump's Reap goroutine:\n${dump.slice(reap.index, reap.index + 600)}`);
      t.diagnostic(`the starved Wait:\n${dump.slice(wait.index, dump.indexOf('\n\n', wait.index))}`);
      t.diagnostic(`the dump as kept: ${dump.length} characters, ending: ${dump.slice(-300)}`);
    }
  }
  t.diagnostic(timings.join('\n'));
});
