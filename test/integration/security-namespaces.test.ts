// Trust model, a user who may create Abnormals in namespace X (docs/security.md). On a2117e0 the kube
// store worked on Abnormals from every namespace: a user allowed to create Abnormals only in their own
// namespace had the agent probe a URL of their choosing (the SSRF output came back in status.output).
// Now only the trusted namespaces count (abnormalNamespaces; by default the agent's own): an Abnormal
// elsewhere is never watched, claimed or worked on. Real apiserver, real RBAC, the agent in-process.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, test } from 'node:test';
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { UNPRIVILEGED_USER } from '../cluster/cluster.js';
import { finished, registerProcessor, startKubeAgent } from '../helpers/agent.js';
import { abnormal, createAbnormal, getAbnormal, kubeConfig, testNamespace } from '../helpers/kube.js';

const trusted = await testNamespace('sec-trusted');
const users = await testNamespace('sec-user');
const node = `node-${trusted}`;

// The user may create and read Abnormals in their own namespace, and nowhere else.
const rbac = kubeConfig('admin').makeApiClient(RbacAuthorizationV1Api);
await rbac.createNamespacedRole({ namespace: users, body: { metadata: { name: 'abnormal-author' }, rules: [{ apiGroups: ['nodemedic.io'], resources: ['abnormals'], verbs: ['create', 'get', 'list'] }] } });
await rbac.createNamespacedRoleBinding({
  namespace: users,
  body: { metadata: { name: 'abnormal-author' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'abnormal-author' }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: UNPRIVILEGED_USER }] },
});

/** Stands in for what the user wants the node to fetch for them (a cloud's metadata service). */
let fetched = 0;
const target = createServer((_req, res) => {
  fetched++;
  res.end('{"token":"stolen"}');
});
await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
after(() => new Promise<void>((resolve) => target.close(() => resolve())));
const port = (target.address() as { port: number }).port;

const agent = await startKubeAgent(node, { namespace: trusted, abnormalNamespaces: [trusted], processorNamespaces: [trusted] });
after(() => agent.stop());

const probing = { source: 'Probe' as const, nodeName: node, nodeProbe: { httpGet: { host: '127.0.0.1', port, path: '/' } },
  assignedInformationCollectors: [{ namespace: 'builtin', name: 'probe' }], skipDiagnosis: true, skipRecovery: true };

test('security: an Abnormal in a namespace the agent does not trust is never claimed or worked on', async () => {
  await createAbnormal(abnormal('from-a-user', users, probing), 'unprivileged');
  // The same Abnormal in the trusted namespace, created after it: once it has finished, the agent has
  // been up, watching and working all along.
  const sentinel = await (async () => {
    await createAbnormal(abnormal('from-the-operator', trusted, probing));
    return finished(trusted, 'from-the-operator');
  })();
  assert.equal(sentinel.status?.phase, 'Succeeded');
  assert.equal(fetched, 1, 'the trusted Abnormal\'s probe ran, once');
  const untouched = await getAbnormal(users, 'from-a-user', 'unprivileged');
  assert.equal(untouched.metadata?.labels?.['nodemedic.io/node'], undefined, 'not claimed');
  assert.equal(untouched.status, undefined, 'not worked on: no status, no output');
});

test('security: a processor registered in a namespace the agent does not trust is never called', async () => {
  let called = 0;
  const foreign = createServer((_req, res) => {
    called++;
    res.writeHead(500).end();
  });
  await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
  after(() => new Promise<void>((resolve) => foreign.close(() => resolve())));
  const url = `http://127.0.0.1:${(foreign.address() as { port: number }).port}/`;
  await registerProcessor('diagnosers', users, 'helpful', { url }); // by whoever may register processors there
  await createAbnormal(abnormal('names-a-foreign-diagnoser', trusted, { nodeName: node, skipRecovery: true, assignedDiagnosers: [{ namespace: users, name: 'helpful' }] }));
  const done = await finished(trusted, 'names-a-foreign-diagnoser');
  assert.equal(done.status?.phase, 'Failed');
  assert.match(done.status?.message ?? '', new RegExp(`${users}/helpful: not registered`));
  assert.equal(called, 0, 'the Abnormal went nowhere near it');
});
