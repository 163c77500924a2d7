// Who may do what: an unprivileged user may not touch Abnormals; the agent's service account may do
// exactly what manifests/rbac/agent.yaml grants it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { ABNORMALS, GROUP, VERSION, abnormal, apiCode, createAbnormal, customObjects, getAbnormal, kubeConfig, testNamespace } from '../helpers/kube.js';

const ns = await testNamespace('rbac');
const forbidden = (err: unknown) => apiCode(err) === 403;

test('the unprivileged user can neither create, read, list nor change Abnormals', async () => {
  await createAbnormal(abnormal('admins', ns));
  const api = customObjects('unprivileged');
  await assert.rejects(createAbnormal(abnormal('mine', ns), 'unprivileged'), forbidden);
  await assert.rejects(getAbnormal(ns, 'admins', 'unprivileged'), forbidden);
  await assert.rejects(api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS }), forbidden);
  await assert.rejects(api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: 'admins' }), forbidden);
});

describe('with manifests/rbac/agent.yaml (applied by the test run, as a user would)', () => {
  test('the agent lists, watches, labels, writes status and deletes (garbage collection), but cannot read Secrets', async () => {
    const created = await createAbnormal(abnormal('for-agent', ns, { nodeName: 'node-a' }));
    const agent = customObjects('agent');
    await agent.listClusterCustomObject({ group: GROUP, version: VERSION, plural: ABNORMALS, labelSelector: 'nodemedic.io/node=node-a' });
    const labelled = (await agent.replaceNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: 'for-agent',
      body: { ...created, metadata: { ...created.metadata, labels: { 'nodemedic.io/node': 'node-a' } } },
    })) as typeof created;
    await agent.replaceNamespacedCustomObjectStatus({
      group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: 'for-agent', body: { ...labelled, status: { phase: 'InformationCollecting' } },
    });
    const read = await getAbnormal(ns, 'for-agent');
    assert.equal(read.status?.phase, 'InformationCollecting');
    assert.equal(read.metadata?.labels?.['nodemedic.io/node'], 'node-a');
    await assert.rejects(kubeConfig('agent').makeApiClient(CoreV1Api).listNamespacedSecret({ namespace: ns }), forbidden);
    // Garbage collection: where its Abnormals role is bound (this suite binds it cluster-wide; a
    // deployment per trusted namespace, which security-rbac.test.ts checks in the manifest).
    await agent.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: 'for-agent' });
    await assert.rejects(getAbnormal(ns, 'for-agent'), (err) => apiCode(err) === 404);
  });
});
