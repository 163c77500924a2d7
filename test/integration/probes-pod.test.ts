// Pod probes on the kube store: httpGet / tcpSocket go to the pod's IP, read from the apiserver.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import type { RunningAgent } from '../../agent/agent.js';
import { NODE_LABEL } from '../../agent/api/crds.js';
import { finished, startKubeAgent } from '../helpers/agent.js';
import { abnormal, createAbnormal, kubeConfig, testNamespace } from '../helpers/kube.js';

const ns = await testNamespace('podprobe');
const node = `probe-${ns}`;
const core = kubeConfig().makeApiClient(CoreV1Api);
const server = createServer((socket) => socket.end());
const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
let agent: RunningAgent;

before(async () => {
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } });
  for (const [name, nodeName] of [['with-ip', node], ['without-ip', node], ['elsewhere', 'another-node']] as const) {
    await core.createNamespacedPod({ namespace: ns, body: { metadata: { name }, spec: { nodeName, automountServiceAccountToken: false, containers: [{ name: 'c', image: 'busybox' }] } } });
  }
  // What the kubelet would report once the pod runs: its IP (loopback here, where the test listens).
  for (const name of ['with-ip', 'elsewhere']) {
    const pod = await core.readNamespacedPod({ namespace: ns, name });
    await core.replaceNamespacedPodStatus({ namespace: ns, name, body: { ...pod, status: { ...pod.status, podIP: '127.0.0.1' } } });
  }
  agent = await startKubeAgent(node, { namespace: ns, processorNamespaces: [ns] });
});
after(async () => {
  await agent?.stop();
  server.close();
});

const probePod = (name: string, pod: string, host?: string) =>
  createAbnormal(abnormal(name, ns, {
    source: 'Probe', nodeName: node, skipDiagnosis: true, skipRecovery: true,
    assignedInformationCollectors: [{ namespace: 'builtin', name: 'probe' }],
    podProbe: { namespace: ns, name: pod, tcpSocket: { port, ...(host ? { host } : {}) } },
  }, { [NODE_LABEL]: node }));

test('a tcpSocket pod probe connects to the pod\'s IP', async () => {
  await probePod('probe-with-ip', 'with-ip');
  const done = await finished(ns, 'probe-with-ip');
  assert.deepEqual(done.status?.context?.probe && (({ healthy, detail }) => ({ healthy, detail }))(done.status.context.probe as { healthy: boolean; detail: string }),
    { healthy: true, detail: `connected to 127.0.0.1:${port}` });
});

test('a pod without an IP yet: the probe says so', async () => {
  await probePod('probe-without-ip', 'without-ip');
  const done = await finished(ns, 'probe-without-ip');
  assert.match(done.status?.conditions?.[0]?.message ?? '', new RegExp(`builtin/probe: PodIPUnknown: pod ${ns}/without-ip has no IP`));
});

test('security: a pod probe reaches only that pod, on this node: not another node\'s pod, not an address the pod does not have', async () => {
  await probePod('probe-elsewhere', 'elsewhere');
  const elsewhere = await finished(ns, 'probe-elsewhere');
  assert.match(elsewhere.status?.conditions?.[0]?.message ?? '', new RegExp(`builtin/probe: PodNotOnThisNode: pod ${ns}/elsewhere runs on another-node`));
  // 127.0.0.2 is loopback, so nothing leaves the machine even if this check were wrong.
  await probePod('probe-other-address', 'with-ip', '127.0.0.2');
  const other = await finished(ns, 'probe-other-address');
  assert.match(other.status?.conditions?.[0]?.message ?? '', /builtin\/probe: ProbeTargetRefused: 127\.0\.0\.2 is not an IP of the probed pod/);
});
