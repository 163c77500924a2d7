// Exec pod probes on a real node — containerd and the kubelet, joined to the test apiserver: the agent
// runs the command inside the pod's container through containerd's CRI (ExecSync, as the kubelet's own
// exec probes), in the container the probe names or the pod's first, with the exit code, the output
// and the timeout honoured; a pod with no running container on this node gets a clear reason. On the
// file store (no apiserver to say which container is first) a pod of two containers needs a name.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { pino } from 'pino';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import type { Abnormal, PodProbe } from '../../agent/api/types.generated.js';
import { NODE_LABEL } from '../../agent/api/crds.js';
import { isTerminal } from '../../agent/api/phase.js';
import { DEFAULTS } from '../../agent/config.js';
import { BUSYBOX_IMAGE, ON_OWN_CLUSTER, podRunning, skipUnlessOwnCluster, startSuiteNodeFor, type TestNode } from './node.js';
import { finished, startKubeAgent, waitFor } from '../helpers/agent.js';
import { abnormal, createAbnormal, kubeConfig, testNamespace } from '../helpers/kube.js';

const skip = skipUnlessOwnCluster('joins a kubelet to the cluster');
const ns = await testNamespace('podexec');
const nodeName = `node-${ns}`;
const core = kubeConfig().makeApiClient(CoreV1Api);
let node: TestNode | undefined;
let agent: RunningAgent | undefined;
let fileAgent: RunningAgent | undefined;

before(async () => {
  if (!ON_OWN_CLUSTER) return;
  node = await startSuiteNodeFor(ns, nodeName);
  const probes = { ...DEFAULTS.probes, allowExec: true, criEndpoint: `unix://${node.containerdSocket}` };
  agent = await startKubeAgent(nodeName, { namespace: ns, processorNamespaces: [ns], probes });
  fileAgent = await startAgent({
    ...DEFAULTS, store: 'file', stateDir: await mkdtemp(path.join(tmpdir(), 'nodemedic-podexec-')), nodeName, listen: '127.0.0.1:0',
    logLevel: 'warn', sources: { ...DEFAULTS.sources, defaultRules: false }, probes,
  }, pino({ level: 'warn' }));
  // Each container writes its own name where the probe can read it back: proof of which one ran it.
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: 'two' },
      spec: {
        nodeName, hostNetwork: true, automountServiceAccountToken: false, terminationGracePeriodSeconds: 1,
        tolerations: [{ operator: 'Exists' }],
        containers: ['main', 'side'].map((name) => ({
          name, image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sh', '-c', `echo ${name} > /who && exec sleep 3600`],
        })),
      },
    },
  });
  await podRunning(ns, 'two');
});
after(async () => {
  await agent?.stop();
  await fileAgent?.stop();
  await node?.stop();
});

/** Runs the probe (on pod "two" unless it names another) on the kube store's agent; the finished Abnormal. */
async function probe(name: string, podProbe: Omit<PodProbe, 'namespace' | 'name'> & { name?: string }): Promise<Abnormal> {
  await createAbnormal(abnormal(name, ns, {
    source: 'Probe', nodeName, skipDiagnosis: true, skipRecovery: true,
    assignedInformationCollectors: [{ namespace: 'builtin', name: 'probe' }],
    podProbe: { namespace: ns, name: 'two', ...podProbe },
  }, { [NODE_LABEL]: nodeName }));
  return finished(ns, name, 60_000);
}
const resultOf = (a: Abnormal) => {
  const p = a.status?.context?.probe as { healthy: boolean; detail: string } | undefined;
  return { healthy: p?.healthy, detail: p?.detail, output: a.status?.output };
};
const failureOf = (a: Abnormal) => a.status?.conditions?.find((c) => c.type === 'InformationCollected')?.message ?? '';

test('exec runs in the pod\'s first container, or the one named; the exit code decides and both outputs are kept', { skip }, async () => {
  const first = resultOf(await probe('exec-first', { exec: { command: ['cat', '/who'] } }));
  assert.equal(first.healthy, true);
  assert.match(first.detail ?? '', /^cat in container [0-9a-f]{12} exited with 0$/);
  assert.equal(first.output, 'main\n');
  assert.equal(resultOf(await probe('exec-named', { container: 'side', exec: { command: ['cat', '/who'] } })).output, 'side\n');
  const failing = resultOf(await probe('exec-exit-3', { container: 'side', exec: { command: ['sh', '-c', 'echo out; echo err >&2; exit 3'] } }));
  assert.equal(failing.healthy, false);
  assert.match(failing.detail ?? '', /^sh in container [0-9a-f]{12} exited with 3$/);
  assert.equal(failing.output, 'out\nerr\n');
});

test('exec: the runtime ends a command at the timeout; a command that cannot start is unhealthy', { skip }, async () => {
  const slow = resultOf(await probe('exec-slow', { timeoutSeconds: 1, exec: { command: ['sleep', '30'] } }));
  assert.equal(slow.healthy, false);
  assert.match(slow.detail ?? '', /^sleep in container [0-9a-f]{12} did not finish within 1 s$/);
  const missing = resultOf(await probe('exec-missing', { exec: { command: ['no-such-command'] } }));
  assert.equal(missing.healthy, false);
  assert.match(missing.detail ?? '', /could not run: .*"no-such-command": executable file not found/);
});

test('exec in a container the pod does not have, or a pod not on this node: ContainerNotFound', { skip }, async () => {
  assert.match(failureOf(await probe('exec-no-container', { container: 'nope', exec: { command: ['true'] } })),
    new RegExp(`builtin/probe: ContainerNotFound: no running container "nope" of pod ${ns}/two on this node`));
  assert.match(failureOf(await probe('exec-no-pod', { name: 'elsewhere', exec: { command: ['true'] } })),
    new RegExp(`builtin/probe: ContainerNotFound: no running container of pod ${ns}/elsewhere on this node`));
});

test('file store: with no apiserver to say which container is first, a pod of two needs the name', { skip }, async () => {
  const run = async (name: string, podProbe: Omit<PodProbe, 'namespace' | 'name'>) => {
    await fileAgent!.store.create({
      apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal', metadata: { name },
      spec: {
        source: 'Probe', nodeName, skipDiagnosis: true, skipRecovery: true,
        assignedInformationCollectors: [{ namespace: 'builtin', name: 'probe' }],
        podProbe: { namespace: ns, name: 'two', ...podProbe },
      },
    });
    return waitFor(`${name} to finish`, async () => {
      const a = await fileAgent!.store.get(`default/${name}`);
      return a && isTerminal(a.status?.phase) ? a : undefined;
    });
  };
  assert.match(failureOf(await run('unnamed', { exec: { command: ['true'] } })),
    new RegExp(`builtin/probe: ContainerAmbiguous: pod ${ns}/two runs (main, side|side, main); name one in podProbe.container`));
  assert.equal(resultOf(await run('named', { container: 'side', exec: { command: ['cat', '/who'] } })).output, 'side\n');
});
