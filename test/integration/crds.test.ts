// The CRDs as a user meets them: applied with kubectl v1.20.2, read back with `kubectl get`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiextensionsV1Api } from '@kubernetes/client-node';
import { ALL_CRDS, GROUP } from '../../agent/api/crds.js';
import { ABNORMALS, VERSION, abnormal, createAbnormal, customObjects, kubeConfig, kubectl, testNamespace } from '../helpers/kube.js';

const ns = await testNamespace('crds');
/** `kubectl get` output as rows of columns. */
const table = (text: string) => text.trim().split('\n').map((line) => line.trim().split(/\s{2,}/));

test('kubectl apply -f manifests/crds/ is accepted and idempotent', async () => {
  const out = await kubectl('apply', '-f', 'manifests/crds/');
  for (const { crd } of ALL_CRDS) assert.match(out, new RegExp(`customresourcedefinition.apiextensions.k8s.io/${crd.metadata.name} (created|configured|unchanged)`));
  const again = await kubectl('apply', '-f', 'manifests/crds/');
  assert.equal(again.match(/unchanged/g)?.length, ALL_CRDS.length, again);
});

test('the CRDs are established with their names, short name and category', async () => {
  const api = kubeConfig().makeApiClient(ApiextensionsV1Api);
  const abnormals = await api.readCustomResourceDefinition({ name: `abnormals.${GROUP}` });
  assert.ok(abnormals.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'));
  assert.deepEqual(abnormals.status?.acceptedNames?.shortNames, ['ab']);
  for (const { crd } of ALL_CRDS) {
    const read = await api.readCustomResourceDefinition({ name: crd.metadata.name });
    assert.deepEqual(read.status?.acceptedNames?.categories, ['nodemedic'], crd.metadata.name);
    assert.equal(read.spec.scope, 'Namespaced');
  }
});

test('kubectl get ab shows Node, Source, Phase, Reason, Count, Age; -o wide adds Diagnoser and Recoverer', async () => {
  const created = await createAbnormal(abnormal('shown', ns, { nodeName: 'node-7', source: 'Log', log: { logEntry: 'x' }, occurrences: { count: 3 } }));
  await customObjects().replaceNamespacedCustomObjectStatus({
    group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: 'shown',
    body: { ...created, status: { phase: 'Recovering', reason: 'ShimDeadlocked', diagnoser: { namespace: 'nodemedic-system', name: 'shim-deadlock' } } },
  });
  const [header, row] = table(await kubectl('get', 'ab', '-n', ns));
  assert.deepEqual(header, ['NAME', 'NODE', 'SOURCE', 'PHASE', 'REASON', 'COUNT', 'AGE']);
  assert.deepEqual(row?.slice(0, 6), ['shown', 'node-7', 'Log', 'Recovering', 'ShimDeadlocked', '3']);
  const [wideHeader, wideRow] = table(await kubectl('get', 'ab', '-n', ns, '-o', 'wide'));
  assert.deepEqual(wideHeader, ['NAME', 'NODE', 'SOURCE', 'PHASE', 'REASON', 'COUNT', 'AGE', 'DIAGNOSER', 'RECOVERER']);
  assert.equal(wideRow?.[7], 'shim-deadlock');
  assert.equal(wideRow?.[8], undefined, 'no recoverer yet: the column is empty');
});

test('kubectl get nodemedic lists all four kinds', async () => {
  const processor = (kind: string, name: string) => ({ apiVersion: `${GROUP}/${VERSION}`, kind, metadata: { name, namespace: ns }, spec: { url: 'http://127.0.0.1:9/x' } });
  const api = customObjects();
  for (const [kind, plural] of [['InformationCollector', 'informationcollectors'], ['Diagnoser', 'diagnosers'], ['Recoverer', 'recoverers']] as const) {
    await api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural, body: processor(kind, `my-${kind.toLowerCase()}`) });
  }
  const out = await kubectl('get', 'nodemedic', '-n', ns);
  for (const name of ['abnormal.nodemedic.io/shown', 'informationcollector.nodemedic.io/my-informationcollector', 'diagnoser.nodemedic.io/my-diagnoser', 'recoverer.nodemedic.io/my-recoverer']) {
    assert.match(out, new RegExp(name.replace(/\./g, '\\.')), out);
  }
});
