// Stuck pods against the real apiserver: a pod bound to this node and deleted stays Terminating (no
// kubelet here confirms the deletion, as a kubelet whose container shim hangs would not), and once it
// is past its deadline by the margin, the agent makes an Abnormal naming it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import type { RunningAgent } from '../../agent/agent.js';
import { NODE_LABEL } from '../../agent/api/crds.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import type { StuckPodSource } from '../../agent/sources/stuck-pods.js';
import { startKubeAgent, waitFor } from '../helpers/agent.js';
import { ABNORMALS, GROUP, VERSION, customObjects, kubeConfig, testNamespace } from '../helpers/kube.js';

const ns = await testNamespace('stuck');
const node = `stuck-${ns}`;
const core = kubeConfig().makeApiClient(CoreV1Api);
let agent: RunningAgent;

before(async () => {
  // No controller-manager runs here to create the namespace's default ServiceAccount; pods need it.
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } });
  agent = await startKubeAgent(node, { namespace: ns, processorNamespaces: [ns], stuckPods: { enabled: true, marginSeconds: 2, checkSeconds: 0.5 } });
});
after(() => agent?.stop());

const createPod = (name: string, nodeName: string) =>
  core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name },
      spec: { nodeName, automountServiceAccountToken: false, containers: [{ name: 'main', image: 'busybox', command: ['sleep', '3600'] }] },
    },
  });
const stuckAbnormals = async () =>
  ((await customObjects().listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS })) as { items: Abnormal[] }).items
    .filter((a) => (a.spec.context?.pod as { name?: string } | undefined)?.name);

test('a pod of this node stuck terminating past the margin becomes one Abnormal naming it', async () => {
  await createPod('web-0', node);
  await createPod('elsewhere-0', 'some-other-node');
  await createPod('healthy-0', node);
  for (const name of ['web-0', 'elsewhere-0']) await core.deleteNamespacedPod({ namespace: ns, name, gracePeriodSeconds: 1 });

  const [abnormal] = await waitFor('an Abnormal for the stuck pod', async () => {
    const items = await stuckAbnormals();
    return items.length > 0 ? items : undefined;
  }, 30_000);
  const reported = abnormal!.spec.context!.pod as { namespace: string; name: string; uid: string; overdueSeconds: number; deletionGracePeriodSeconds: number };
  assert.equal(abnormal!.spec.source, 'Custom');
  assert.equal(abnormal!.spec.nodeName, node);
  assert.equal(abnormal!.metadata?.labels?.[NODE_LABEL], node);
  assert.deepEqual([reported.namespace, reported.name, reported.deletionGracePeriodSeconds], [ns, 'web-0', 1]);
  assert.ok(reported.overdueSeconds >= 2, `reported ${reported.overdueSeconds} s past the deadline, the margin is 2 s`);

  // Several more checks later: still one, and none for the other node's pod or the healthy one.
  const source = agent.sources.find((s) => s.name === 'stuck pods') as StuckPodSource;
  const checked = source.checks;
  await waitFor('three more checks', async () => source.checks >= checked + 3 || undefined);
  await agent.sink.flush();
  const all = await stuckAbnormals();
  assert.deepEqual(all.map((a) => (a.spec.context!.pod as { name: string }).name), ['web-0']);
  assert.equal(all[0]!.spec.occurrences?.count, 1);
});
