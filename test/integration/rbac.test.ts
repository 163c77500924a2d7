// Who may do what: an unprivileged user may not touch Abnormals; the agent's service account may do
// exactly what manifests/rbac/agent.yaml grants it.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../cluster/cluster.js';
import { ABNORMALS, GROUP, VERSION, abnormal, apiCode, createAbnormal, customObjects, getAbnormal, kubeConfig, testNamespace } from '../helpers/kube.js';

const ns = await testNamespace('rbac');
const forbidden = (err: unknown) => apiCode(err) === 403;
const rbacObjects = async () =>
  parseAllDocuments(await readFile(path.join(REPO_ROOT, 'manifests/rbac/agent.yaml'), 'utf8')).map((d) => d.toJS() as KubernetesObject);
const bindings = () => rbacObjects().then((all) => all.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding'));

test('the unprivileged user can neither create, read, list nor change Abnormals', async () => {
  await createAbnormal(abnormal('admins', ns));
  const api = customObjects('unprivileged');
  await assert.rejects(createAbnormal(abnormal('mine', ns), 'unprivileged'), forbidden);
  await assert.rejects(getAbnormal(ns, 'admins', 'unprivileged'), forbidden);
  await assert.rejects(api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS }), forbidden);
  await assert.rejects(api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: 'admins' }), forbidden);
});

test('without its role the agent is denied too (its token is not an admin\'s)', async () => {
  await assert.rejects(
    customObjects('agent').listClusterCustomObject({ group: GROUP, version: VERSION, plural: ABNORMALS, labelSelector: 'nodemedic.io/node=node-a' }),
    forbidden,
  );
});

describe('with manifests/rbac/agent.yaml applied', () => {
  const objects = KubernetesObjectApi.makeApiClient(kubeConfig());
  before(async () => {
    for (const object of await bindings()) {
      await objects.delete(object).catch(() => {}); // left over from an earlier run against the same cluster
      await objects.create(object);
    }
  });
  after(async () => {
    for (const object of await bindings()) await objects.delete(object).catch(() => {});
  });

  test('the agent lists, watches, labels and writes status, but cannot delete or read Secrets', async () => {
    const created = await createAbnormal(abnormal('for-agent', ns, { nodeName: 'node-a' }));
    const agent = customObjects('agent');
    // A new binding takes effect within moments; wait for the first allowed call.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await agent.listClusterCustomObject({ group: GROUP, version: VERSION, plural: ABNORMALS, labelSelector: 'nodemedic.io/node=node-a' });
        break;
      } catch (err) {
        if (!forbidden(err) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
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
    await assert.rejects(agent.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: 'for-agent' }), forbidden);
    await assert.rejects(kubeConfig('agent').makeApiClient(CoreV1Api).listNamespacedSecret({ namespace: ns }), forbidden);
  });
});
