// On a real node — containerd and the kubelet, joined to the test apiserver — a pod whose container
// shim is stopped stays Terminating after deletion, and the agent of that node reports it stuck: the
// entry point of the shim-deadlock case, end to end up to the Abnormal.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import type { RunningAgent } from '../../agent/agent.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { BUSYBOX_IMAGE, startNode, type TestNode } from '../node/node.js';
import { startKubeAgent, waitFor } from '../helpers/agent.js';
import { ABNORMALS, GROUP, VERSION, customObjects, kubeConfig, testNamespace } from '../helpers/kube.js';

// A kubelet joins the cluster it is given: only the suite's own test cluster, never a user's.
const ownCluster = Boolean(process.env.NODEMEDIC_TEST_AGENT_KUBECONFIG && process.env.NODEMEDIC_TEST_KUBE_BIN);
const ns = await testNamespace('node');
const nodeName = `node-${ns}`;
const core = kubeConfig().makeApiClient(CoreV1Api);
let node: TestNode | undefined;
let agent: RunningAgent | undefined;

before(async () => {
  if (!ownCluster) return;
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } });
  node = await startNode({ name: nodeName, kubeconfig: process.env.NODEMEDIC_TEST_KUBECONFIG!, kubeBinDir: process.env.NODEMEDIC_TEST_KUBE_BIN! });
  agent = await startKubeAgent(nodeName, { namespace: ns, processorNamespaces: [ns], stuckPods: { enabled: true, marginSeconds: 2, checkSeconds: 1 } });
});
after(async () => {
  await agent?.stop();
  await node?.stop();
});

/** The shim of this node's containerd that runs the pod's sandbox, found by its command line. */
function shimPids(): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes('containerd-shim-runc-v2') && l.includes(node!.containerdSocket)).map((l) => Number(l.trim().split(/\s+/)[0]));
}

test('a pod whose shim is stopped stays Terminating, and the agent reports it stuck', { skip: ownCluster ? false : 'joins a kubelet to the cluster: runs only on the suite\'s own test cluster' }, async (t) => {
  const before = new Set(shimPids());
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: 'web-0' },
      spec: {
        nodeName, hostNetwork: true, automountServiceAccountToken: false, terminationGracePeriodSeconds: 1,
        tolerations: [{ operator: 'Exists' }],
        containers: [{ name: 'main', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sleep', '3600'] }],
      },
    },
  });
  await waitFor('the pod to run', async () => (await core.readNamespacedPod({ namespace: ns, name: 'web-0' })).status?.phase === 'Running' || undefined, 60_000);
  const shims = shimPids().filter((pid) => !before.has(pid));
  assert.equal(shims.length, 1, 'one new shim: one per pod sandbox');
  process.kill(shims[0]!, 'SIGSTOP');

  const deleted = Date.now();
  await core.deleteNamespacedPod({ namespace: ns, name: 'web-0' });
  const [stuck] = await waitFor('the stuck pod\'s Abnormal', async () => {
    const list = (await customObjects().listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS })) as { items: Abnormal[] };
    return list.items.length > 0 ? list.items : undefined;
  }, 60_000);
  const pod = stuck!.spec.context!.pod as { name: string; namespace: string; containers: Array<{ containerID?: string }> };
  assert.equal(stuck!.spec.nodeName, nodeName);
  assert.deepEqual([pod.namespace, pod.name], [ns, 'web-0']);
  assert.match(pod.containers[0]?.containerID ?? '', /^containerd:\/\//);
  assert.ok(await core.readNamespacedPod({ namespace: ns, name: 'web-0' }).then(() => true, () => false), 'the pod is still there, Terminating');
  t.diagnostic(`reported ${((Date.now() - deleted) / 1000).toFixed(1)} s after the deletion (grace 1 s, margin 2 s)`);

  // What the recoverer of the shim-deadlock case will do: kill the shim, and the pod goes.
  process.kill(shims[0]!, 'SIGKILL');
  await waitFor('the pod to go', async () => core.readNamespacedPod({ namespace: ns, name: 'web-0' }).then(() => undefined, () => true), 60_000);
});
