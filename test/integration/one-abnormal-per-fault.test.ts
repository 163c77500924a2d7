// One Abnormal per fault, against the real apiserver: a pod of this node stuck terminating becomes an
// Abnormal; the kubelet's FailedKillPod Warning about that pod, seen by the same agent's event watch,
// joins it (spec.related) instead of making a second Abnormal that no diagnoser could identify. No
// kubelet runs here: the pod stays Terminating because nothing confirms its deletion, and the Event is
// written as the kubelet writes it (a fixture of the kubelet's report).
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

const ns = await testNamespace('onefault');
const node = `onefault-${ns}`;
const core = kubeConfig().makeApiClient(CoreV1Api);
let agent: RunningAgent;

before(async () => {
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } });
  await agentLease(`lock-${ns}`);
  agent = await startKubeAgent(node, {
    namespace: 'nodemedic-system', // where the event watcher's lock lives
    processorNamespaces: [ns],
    events: { ...DEFAULTS.events, enabled: true, lockName: `lock-${ns}`, lockTTLSeconds: 3 },
    stuckPods: { enabled: true, marginSeconds: 1, checkSeconds: 0.5 },
    symptoms: { ...DEFAULTS.symptoms, flushSeconds: 0.5 },
  });
});
after(() => agent?.stop());

const ofNode = async () =>
  ((await customObjects().listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'nodemedic-system', plural: ABNORMALS, labelSelector: `${NODE_LABEL}=${node}` })) as { items: Abnormal[] }).items;

test('the kubelet\'s FailedKillPod for a pod already stuck terminating joins that pod\'s Abnormal', async () => {
  const watcher = agent.sources.find((s) => s.name === 'kubernetes events') as EventSource;
  await waitFor('the event watch to run', async () => (watcher.isLeader && watcher.streaming) || undefined);
  const pod = await core.createNamespacedPod({
    namespace: ns,
    body: { metadata: { name: 'web-0' }, spec: { nodeName: node, automountServiceAccountToken: false, containers: [{ name: 'main', image: 'busybox' }] } },
  });
  await core.deleteNamespacedPod({ namespace: ns, name: 'web-0', gracePeriodSeconds: 1 });
  const [stuck] = await waitFor('the stuck pod\'s Abnormal', async () => ((await ofNode()).length > 0 ? ofNode() : undefined), 30_000);
  assert.equal(stuck!.spec.source, 'Custom');

  const now = new Date();
  const message = 'error killing pod: failed to "KillPodSandbox" for "web-0" with KillPodSandboxError: "rpc error: code = DeadlineExceeded desc = context deadline exceeded"';
  await core.createNamespacedEvent({
    namespace: ns,
    body: {
      metadata: { name: `web-0.${Date.now().toString(16)}` },
      involvedObject: { kind: 'Pod', namespace: ns, name: 'web-0', uid: pod.metadata!.uid!, apiVersion: 'v1' },
      reason: 'FailedKillPod', type: 'Warning', message,
      source: { component: 'kubelet', host: node }, firstTimestamp: now, lastTimestamp: now, count: 1,
    },
  });
  const joined = await waitFor('the Event joined to it', async () => {
    const list = await ofNode();
    return list.find((a) => (a.spec.related ?? []).length > 0) ?? (list.length > 1 ? list : undefined);
  }, 30_000);
  assert.ok(!Array.isArray(joined), `one Abnormal per fault, got ${JSON.stringify((joined as Abnormal[]).map?.((a) => a.spec.source))}`);
  const one = joined as Abnormal;
  assert.equal(one.metadata?.name, stuck!.metadata?.name);
  assert.deepEqual(one.spec.related?.map((r) => [r.source, r.reason, r.count, r.message]), [['KubernetesEvent', 'FailedKillPod', 1, message]]);
  await agent.sink.flush();
  assert.equal((await ofNode()).length, 1);
});
