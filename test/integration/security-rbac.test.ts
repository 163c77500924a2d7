// Trust model, the holder of the agent's token and whoever may edit the agent's ConfigMap
// (docs/security.md). On a2117e0 the agent's ServiceAccount — whose token is on every node — could
// update any ConfigMap in nodemedic-system, its own configuration included (one rooted node could switch
// on allowExec and processorNamespaces: ["*"] for every agent), read every Secret there, and create
// Events in every namespace. The manifest as shipped, read as data, and the token's rights, tried for
// real against the apiserver.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { CoordinationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { AGENT_NAMESPACE, REPO_ROOT } from '../cluster/cluster.js';
import { apiCode, kubeConfig } from '../helpers/kube.js';

type Rule = { apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] };
type RbacObject = { kind: string; metadata: { name: string; namespace?: string }; rules?: Rule[]; roleRef?: { kind: string; name: string } };
const manifest = parseAllDocuments(await readFile(path.join(REPO_ROOT, 'manifests/rbac/agent.yaml'), 'utf8')).map((d) => d.toJS() as RbacObject);
const roleNamed = (kind: string, name: string) => manifest.find((o) => o.kind === kind && o.metadata.name === name)!;
/** Every rule the agent is given: the roles its bindings in the manifest name. */
const bindings = manifest.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding');
const agentRules = bindings.flatMap((b) => (roleNamed(b.roleRef!.kind, b.roleRef!.name).rules ?? []).map((rule) => ({ binding: b, rule })));
const forbidden = (err: unknown) => apiCode(err) === 403;

test('security: the shipped RBAC: no ConfigMap, Secrets and Leases by name only, nothing deleted but Abnormals where they are trusted, cluster-wide read-only but Nodes\' status', () => {
  assert.ok(agentRules.length > 0);
  for (const { binding, rule } of agentRules) {
    const what = `${binding.kind} ${binding.metadata.name}: ${rule.resources.join(',')}`;
    assert.ok(!rule.resources.includes('configmaps'), `${what}: no ConfigMap at all`);
    assert.ok(!rule.verbs.includes('*'), `${what}: no wildcard`);
    // Garbage collection deletes its node's finished Abnormals: in the namespaces bound per trust only.
    if (rule.verbs.includes('delete')) assert.deepEqual([binding.kind, rule.resources], ['RoleBinding', ['abnormals']], `${what}: deletes nothing else`);
    if (rule.resources.includes('secrets') || rule.resources.includes('leases')) assert.ok((rule.resourceNames ?? []).length > 0, `${what}: by name only`);
    // Cluster-wide, read-only, but for a Node's status (the conditions NPD would set): patch, and nothing else.
    const writes = rule.verbs.filter((v) => !['get', 'list', 'watch'].includes(v));
    if (binding.kind === 'ClusterRoleBinding') assert.deepEqual(writes.length > 0 ? [rule.resources, writes] : [], rule.resources.includes('nodes/status') ? [['nodes/status'], ['patch']] : [], `${what}: cluster-wide, read-only`);
  }
  const eventWriters = agentRules.filter(({ rule }) => rule.resources.includes('events') && rule.verbs.includes('create'));
  assert.deepEqual(eventWriters.map(({ binding }) => `${binding.kind} ${binding.metadata.namespace}`).sort(), ['RoleBinding default', 'RoleBinding nodemedic-system'], 'Events only where Abnormals live, and about Nodes where Node events live');
  assert.ok(roleNamed('ClusterRole', 'nodemedic-abnormal-author'), 'a role for people who create Abnormals by hand');
});

test('security: the agent\'s token cannot change the agent\'s configuration, read Secrets it is not given, or take other Leases', async () => {
  const admin = kubeConfig().makeApiClient(CoreV1Api);
  const agent = kubeConfig('agent').makeApiClient(CoreV1Api);
  const name = `nodemedic-config-${randomBytes(3).toString('hex')}`;
  const config = await admin.createNamespacedConfigMap({ namespace: AGENT_NAMESPACE, body: { metadata: { name }, data: { 'config.yaml': 'probes: {allowExec: false}\n' } } });
  await assert.rejects(agent.replaceNamespacedConfigMap({ namespace: AGENT_NAMESPACE, name, body: { ...config, data: { 'config.yaml': 'probes: {allowExec: true}\n' } } }), forbidden);
  await assert.rejects(agent.readNamespacedConfigMap({ namespace: AGENT_NAMESPACE, name }), forbidden);
  await assert.rejects(agent.createNamespacedConfigMap({ namespace: AGENT_NAMESPACE, body: { metadata: { name: `${name}-new` } } }), forbidden);

  const secret = `other-${randomBytes(3).toString('hex')}`;
  await admin.createNamespacedSecret({ namespace: AGENT_NAMESPACE, body: { metadata: { name: secret }, stringData: { token: 'x' } } });
  await assert.rejects(agent.readNamespacedSecret({ namespace: AGENT_NAMESPACE, name: secret }), forbidden);
  await assert.rejects(agent.listNamespacedSecret({ namespace: AGENT_NAMESPACE }), forbidden);
  await admin.createNamespacedSecret({ namespace: AGENT_NAMESPACE, body: { metadata: { name: 'nodemedic-alert-token' }, stringData: { token: 'x' } } }).catch(() => {});
  assert.equal((await agent.readNamespacedSecret({ namespace: AGENT_NAMESPACE, name: 'nodemedic-alert-token' })).metadata?.name, 'nodemedic-alert-token', 'the one it is given');

  const leases = kubeConfig('agent').makeApiClient(CoordinationV1Api);
  const lock = await leases.readNamespacedLease({ namespace: AGENT_NAMESPACE, name: 'nodemedic-event-watcher' });
  await leases.replaceNamespacedLease({ namespace: AGENT_NAMESPACE, name: 'nodemedic-event-watcher', body: lock }); // its own: allowed
  await assert.rejects(leases.createNamespacedLease({ namespace: AGENT_NAMESPACE, body: { metadata: { name: `${name}-lease` }, spec: {} } }), forbidden);
  await assert.rejects(leases.readNamespacedLease({ namespace: 'kube-system', name: 'kube-controller-manager' }), forbidden);
});
