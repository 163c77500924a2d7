// The agent rides out an apiserver restart: its watches fail, are retried with backoff, come back
// (relisting when the new apiserver's watch cache answers 410 Gone), and Abnormals created afterwards
// are handled. This file starts a cluster of its own, so restarting it disturbs no other test.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { DEFAULTS } from '../../agent/config.js';
import { GROUP, VERSION } from '../../agent/api/crds.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { NODE_LABEL } from '../../agent/api/crds.js';
import { AGENT_NAMESPACE, REPO_ROOT, startCluster, type TestCluster } from '../cluster/cluster.js';
import { waitFor } from '../helpers/agent.js';
import { ProcessorServer, answer } from '../helpers/processor-server.js';

let cluster: TestCluster;
let agent: RunningAgent;
const server = await new ProcessorServer().start();
const node = 'restart-node';

const client = (identity: 'admin' | 'agent') => {
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfigs[identity]);
  return kc;
};
const create = (name: string) =>
  client('admin').makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace: AGENT_NAMESPACE, plural: 'abnormals',
    body: {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'Abnormal', metadata: { name, labels: { [NODE_LABEL]: node } },
      spec: { source: 'Custom', nodeName: node, assignedDiagnosers: [{ namespace: 'default', name: 'yes' }], skipRecovery: true },
    },
  });
const phaseOf = async (name: string) =>
  ((await client('admin').makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace: AGENT_NAMESPACE, plural: 'abnormals', name,
  })) as Abnormal).status?.phase;

before(async () => {
  cluster = await startCluster();
  const kubectl = (...args: string[]) =>
    promisify(execFile)(path.join(cluster.binDir, 'kubectl'), [`--kubeconfig=${cluster.kubeconfigs.admin}`, ...args], { cwd: REPO_ROOT });
  await kubectl('apply', '-f', 'manifests/crds/', '-f', 'manifests/rbac/agent.yaml');
  await kubectl('wait', '--for=condition=Established', 'crd/abnormals.nodemedic.io', 'crd/diagnosers.nodemedic.io');
  await client('admin').makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace: 'default', plural: 'diagnosers',
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Diagnoser', metadata: { name: 'yes' }, spec: { url: server.route('/yes', (a) => answer(a, { identifiable: true })) } },
  });
  agent = await startAgent({ ...DEFAULTS, nodeName: node, store: 'kube', listen: '127.0.0.1:0', logLevel: 'warn', sources: { ...DEFAULTS.sources, defaultRules: false }, processorNamespaces: ['default'], events: { ...DEFAULTS.events, enabled: false } }, pino({ level: 'warn' }), {
    kubeConfig: client('agent'),
  });
});

after(async () => {
  await agent?.stop();
  await cluster?.stop();
  await server.stop();
});

test('Abnormals created after an apiserver restart are handled', async () => {
  await create('before-restart');
  await waitFor('before-restart to succeed', async () => (await phaseOf('before-restart')) === 'Succeeded');
  await cluster.restartApiserver(3000);
  await create('after-restart');
  await waitFor('after-restart to succeed', async () => (await phaseOf('after-restart')) === 'Succeeded', 60_000);
  assert.equal(await phaseOf('after-restart'), 'Succeeded');
  assert.equal(agent.store.synced, true);
});
