// Kubernetes events as symptoms, against the real apiserver: Warning events about a node, or about a pod
// bound to a node, become Abnormals for that node — made by the one agent holding the event-watcher
// lock, or joined to the Abnormal of the stuck pod they are about; when it stops, another agent takes
// over. (Another file with an event watcher of its own would see these events too: keep them here.)
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import type { RunningAgent } from '../../agent/agent.js';
import { DEFAULTS } from '../../agent/config.js';
import { NODE_LABEL } from '../../agent/api/crds.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import type { EventSource } from '../../agent/sources/events.js';
import { startKubeAgent, waitFor } from '../helpers/agent.js';
import { ABNORMALS, GROUP, VERSION, agentLease, customObjects, kubeConfig, testNamespace } from '../helpers/kube.js';

const ns = await testNamespace('events');
const [nodeA, nodeB] = [`a-${ns}`, `b-${ns}`];
const core = kubeConfig().makeApiClient(CoreV1Api);
const agents: RunningAgent[] = [];

const start = (node: string) =>
  startKubeAgent(node, {
    namespace: 'nodemedic-system', // where the lock lives: a Lease of this test's own, which the agent may update by name
    processorNamespaces: [ns],
    events: { ...DEFAULTS.events, enabled: true, excludeReasons: ['Ignored'], lockName: `lock-${ns}`, lockTTLSeconds: 3 },
    stuckPods: { enabled: true, marginSeconds: 1, checkSeconds: 0.5 }, // for one Abnormal per fault, below
  });

before(async () => {
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } });
  await agentLease(`lock-${ns}`);
  agents.push(await start(nodeA), await start(nodeB));
});
after(() => Promise.all(agents.map((a) => a.stop())));

const watcher = (agent: RunningAgent) => agent.sources.find((s) => s.name === 'kubernetes events') as EventSource;
const leader = () => waitFor('an agent to hold the lock', async () => agents.find((a) => watcher(a).isLeader));

let eventNumber = 0;
function warning(involvedObject: { kind: string; name: string; namespace?: string; uid?: string }, reason: string, type = 'Warning', component = 'kubelet') {
  const now = new Date();
  return core.createNamespacedEvent({
    namespace: involvedObject.namespace ?? ns,
    body: {
      metadata: { name: `${involvedObject.name}.${++eventNumber}` },
      involvedObject, reason, type, message: `${reason} happened to ${involvedObject.name}`,
      source: { component, host: nodeB }, firstTimestamp: now, lastTimestamp: now, count: 1,
    },
  });
}
const abnormalsFor = async (node: string) =>
  ((await customObjects().listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'nodemedic-system', plural: ABNORMALS, labelSelector: `${NODE_LABEL}=${node}` })) as { items: Abnormal[] })
    .items.filter((a) => a.spec.source === 'KubernetesEvent');

test('one agent watches; Warning events about a node and about a pod bound to a node become Abnormals for that node', async () => {
  const holder = await leader();
  assert.equal(agents.filter((a) => watcher(a).isLeader).length, 1, 'exactly one watcher');
  await waitFor('its watch to run', async () => watcher(holder).streaming || undefined); // events from now on reach it
  await warning({ kind: 'Node', name: nodeA, namespace: 'default' }, 'NodeNotReady');
  const pod = await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'web-0' }, spec: { nodeName: nodeB, automountServiceAccountToken: false, containers: [{ name: 'c', image: 'busybox' }] } } });
  await warning({ kind: 'Pod', name: 'web-0', namespace: ns, uid: pod.metadata!.uid! }, 'FailedKillPod');
  await warning({ kind: 'Pod', name: 'web-0', namespace: ns, uid: pod.metadata!.uid! }, 'Ignored');
  await warning({ kind: 'Node', name: nodeA, namespace: 'default' }, 'OOMKilling', 'Warning', 'nodemedic'); // an agent's own, about an Abnormal it has
  await warning({ kind: 'Node', name: nodeA, namespace: 'default' }, 'Starting', 'Normal');

  const [forA] = await waitFor('the node event\'s Abnormal', async () => ((await abnormalsFor(nodeA)).length === 1 ? abnormalsFor(nodeA) : undefined));
  assert.equal(forA!.spec.nodeName, nodeA);
  assert.equal(forA!.spec.kubernetesEvent?.reason, 'NodeNotReady');
  const [forB] = await waitFor('the pod event\'s Abnormal', async () => ((await abnormalsFor(nodeB)).length === 1 ? abnormalsFor(nodeB) : undefined));
  assert.equal((forB!.spec.kubernetesEvent?.involvedObject as { name: string }).name, 'web-0');
  assert.equal(forB!.spec.kubernetesEvent?.reason, 'FailedKillPod');
  await holder.sink.flush();
  assert.deepEqual((await abnormalsFor(nodeB)).map((a) => a.spec.kubernetesEvent?.reason), ['FailedKillPod'], 'the excluded reason made none');
  assert.deepEqual((await abnormalsFor(nodeA)).map((a) => a.spec.kubernetesEvent?.reason), ['NodeNotReady'], 'the Normal event and nodemedic\'s own made none');
});

// One Abnormal per fault: a pod of node B stuck terminating becomes an Abnormal (B's agent); the
// kubelet's FailedKillPod Warning about that pod, seen by whichever agent watches events, joins it
// (spec.related) instead of making a second Abnormal that no diagnoser could identify. No kubelet runs
// here: nothing confirms the deletion, and the Event is written as the kubelet writes it.
test('the kubelet\'s FailedKillPod for a pod already stuck terminating joins that pod\'s Abnormal', async () => {
  const holder = await leader();
  await waitFor('its watch to run', async () => watcher(holder).streaming || undefined);
  const pod = await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'db-0' }, spec: { nodeName: nodeB, automountServiceAccountToken: false, containers: [{ name: 'c', image: 'busybox' }] } } });
  await core.deleteNamespacedPod({ namespace: ns, name: 'db-0', gracePeriodSeconds: 1 });
  const ofPod = async () => ((await customObjects().listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'nodemedic-system', plural: ABNORMALS, labelSelector: `${NODE_LABEL}=${nodeB}` })) as { items: Abnormal[] })
    .items.filter((a) => (a.spec.context?.pod as { name?: string } | undefined)?.name === 'db-0' || (a.spec.kubernetesEvent?.involvedObject as { name?: string } | undefined)?.name === 'db-0');
  const [stuck] = await waitFor('the stuck pod\'s Abnormal', async () => ((await ofPod()).length > 0 ? ofPod() : undefined), 30_000);
  assert.equal(stuck!.spec.source, 'Custom');

  await warning({ kind: 'Pod', name: 'db-0', namespace: ns, uid: pod.metadata!.uid! }, 'FailedKillPod');
  const joined = await waitFor('the Event joined to it, or a second Abnormal', async () => {
    const list = await ofPod();
    return list.length > 1 ? list : list.find((a) => (a.spec.related ?? []).length > 0);
  }, 30_000);
  assert.ok(!Array.isArray(joined), `one Abnormal per fault, got ${JSON.stringify((joined as Abnormal[]).map?.((a) => a.spec.source))}`);
  const one = joined as Abnormal;
  assert.equal(one.metadata?.name, stuck!.metadata?.name);
  assert.deepEqual(one.spec.related?.map((r) => [r.source, r.reason, r.count, r.message]), [['KubernetesEvent', 'FailedKillPod', 1, 'FailedKillPod happened to db-0']]);
});

test('when the watching agent stops, another takes over', async () => {
  const first = await leader();
  await first.stop();
  agents.splice(agents.indexOf(first), 1);
  const second = await leader();
  assert.notEqual(second, first);
  await waitFor('its watch to run', async () => watcher(second).streaming || undefined);
  await warning({ kind: 'Node', name: nodeA, namespace: 'default' }, 'KernelDeadlock');
  await waitFor('the new watcher to make the Abnormal', async () => (await abnormalsFor(nodeA)).some((a) => a.spec.kubernetesEvent?.reason === 'KernelDeadlock') || undefined);
});
