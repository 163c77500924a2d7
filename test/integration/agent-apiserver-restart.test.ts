// The agent rides out an apiserver restart: its watches fail, are retried with backoff, come back
// (relisting when the new apiserver's watch cache answers 410 Gone), and Abnormals created afterwards
// are handled. This file starts a cluster of its own, so restarting it disturbs no other test.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import type { KubeStore } from '../../agent/store/kube.js';
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
  agent = await startAgent({ ...DEFAULTS, nodeName: node, store: 'kube', stateDir: await mkdtemp(path.join(tmpdir(), 'nodemedic-restart-')), listen: '127.0.0.1:0', logLevel: 'warn', sources: { ...DEFAULTS.sources, defaultRules: false }, processorNamespaces: ['default'], events: { ...DEFAULTS.events, enabled: false }, kubeconfig: cluster.kubeconfigs.agent }, pino({ level: 'warn' }));
});

after(async () => {
  await agent?.stop();
  await cluster?.stop();
  await server.stop();
});

test('Abnormals created after an apiserver restart are handled', async () => {
  await create('before-restart');
  await waitFor('before-restart to succeed', async () => (await phaseOf('before-restart')) === 'Succeeded');
  const failuresBefore = (agent.store as KubeStore).watchFailures;
  // Down until the agent's watches have seen it go: the restart then has something to recover from.
  await cluster.restartApiserver(async () => void (await waitFor('the agent\'s watches to fail', async () => (agent.store as KubeStore).watchFailures > failuresBefore || undefined)));
  await create('after-restart');
  await waitFor('after-restart to succeed', async () => (await phaseOf('after-restart')) === 'Succeeded', 60_000);
  assert.equal(await phaseOf('after-restart'), 'Succeeded');
  assert.equal(agent.store.synced, true);
});

test('symptoms seen while the apiserver is down survive an agent restart meanwhile: none is lost', async (t) => {
  // On a2117e0 the position was saved when a line was read but the symptom was only held in memory:
  // apiserver down, two matching lines, agent restarted, apiserver back — and the two never appeared.
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-journal-'));
  const logFile = path.join(dir, 'app.log');
  await writeFile(logFile, '');
  const rules = path.join(dir, 'rules.yaml');
  await writeFile(rules, `kind: LogRules\nplugin: file\nlogPath: ${logFile}\nsource: app\nrules:\n` +
    "  - {reason: AppCrashed, pattern: 'app crashed: .*', abnormal: {skipDiagnosis: true, skipRecovery: true}}\n" +
    "  - {reason: AppHung, pattern: 'app hung: .*', abnormal: {skipDiagnosis: true, skipRecovery: true}}\n");
  const journalNode = 'journal-node';
  const config = {
    ...DEFAULTS, nodeName: journalNode, store: 'kube' as const, stateDir: dir, listen: '127.0.0.1:0', logLevel: 'warn' as const,
    sources: { ...DEFAULTS.sources, defaultRules: false, ruleFiles: [rules], kernelLogFallback: '' },
    events: { ...DEFAULTS.events, enabled: false }, stuckPods: { ...DEFAULTS.stuckPods, enabled: false },
    kubeconfig: cluster.kubeconfigs.agent,
  };
  const first = await startAgent(config, pino({ level: 'silent' }));
  let second: Promise<RunningAgent> | undefined;
  await cluster.restartApiserver(async () => {
    await appendFile(logFile, 'app crashed: segfault in worker 3\napp hung: no progress for 300 s\n');
    await waitFor('the two lines to be read', async () => first.sink.stats.accepted >= 2 || undefined);
    await first.stop(); // it cannot write them: the apiserver is down
    second = startAgent(config, pino({ level: 'silent' })); // starts once the apiserver is back
  });
  const restarted = await second!;
  t.after(() => restarted.stop());
  const abnormals = await waitFor('both Abnormals', async () => {
    const list = (await client('admin').makeApiClient(CustomObjectsApi).listNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: AGENT_NAMESPACE, plural: 'abnormals', labelSelector: `${NODE_LABEL}=${journalNode}`,
    })) as { items: Abnormal[] };
    return list.items.length >= 2 ? list.items : undefined;
  }, 60_000);
  assert.deepEqual(abnormals.map((a) => (a.spec.context?.rule as { reason: string }).reason).sort(), ['AppCrashed', 'AppHung']);
  assert.ok(abnormals.every((a) => a.spec.occurrences?.count === 1), 'each once');
  assert.equal(restarted.sink.stats.replayed, 2, 'replayed from the journal');
});
