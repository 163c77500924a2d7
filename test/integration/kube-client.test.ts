// The agent's own Kubernetes client (agent/kube) against the real apiserver: the ways a kubeconfig
// hands out credentials, the errors an operator reads, and an informer that outlives its watches.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { KubeApiError, loadKubeClient } from '../../agent/kube/client.js';
import { Informer, watchErrorText } from '../../agent/kube/informer.js';
import { KubeConfigError } from '../../agent/kube/kubeconfig.js';
import { core, kubeConfig, kubeconfigFile, testNamespace } from '../helpers/kube.js';
import { waitFor } from '../helpers/wait.js';

const ns = await testNamespace('kube-client');
const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-kube-client-'));
const admin = kubeConfig('admin');
const cluster = admin.getCurrentCluster()!;
const token = admin.getCurrentUser()?.token;
const noToken = token ? false : 'the test kubeconfig has no bearer token to hand out through an exec plugin or a token file';
const ca = cluster.caData ?? (cluster.caFile ? Buffer.from(await readFile(cluster.caFile)).toString('base64') : undefined);

/** A kubeconfig for the test apiserver with `user` as its user entry. */
async function kubeconfigWith(name: string, user: Record<string, unknown>): Promise<string> {
  const file = path.join(dir, `${name}.kubeconfig`);
  await writeFile(file, stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'k', cluster: { server: cluster.server, ...(ca ? { 'certificate-authority-data': ca } : {}), ...(cluster.skipTLSVerify ? { 'insecure-skip-tls-verify': true } : {}) } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
  }));
  return file;
}

/** An exec plugin (a shell script, path relative to the kubeconfig) that counts its runs and prints a credential expiring at `expires`. */
async function execPlugin(name: string, expires: string): Promise<{ kubeconfig: string; runs: () => Promise<number> }> {
  const runs = path.join(dir, `${name}.runs`);
  const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token, expirationTimestamp: expires } });
  await writeFile(path.join(dir, `${name}.sh`), `#!/bin/sh\necho run >> '${runs}'\necho "$KUBERNETES_EXEC_INFO" > '${runs}.info'\ncat <<'EOF'\n${credential}\nEOF\n`);
  await chmod(path.join(dir, `${name}.sh`), 0o755);
  const kubeconfig = await kubeconfigWith(name, { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: `./${name}.sh`, interactiveMode: 'Never' } });
  return { kubeconfig, runs: async () => (await readFile(runs, 'utf8').catch(() => '')).split('\n').filter(Boolean).length };
}

test('an exec plugin gives the token: run once while its credential is valid, again once it has expired', { skip: noToken }, async () => {
  const lasting = await execPlugin('lasting', new Date(Date.now() + 3_600_000).toISOString());
  const client = loadKubeClient(lasting.kubeconfig);
  await client.list(`/api/v1/namespaces/${ns}/configmaps`);
  await client.list(`/api/v1/namespaces/${ns}/configmaps`);
  assert.equal(await lasting.runs(), 1);
  assert.deepEqual(JSON.parse(await readFile(path.join(dir, 'lasting.runs.info'), 'utf8')), { apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', spec: { interactive: false } });
  const expired = await execPlugin('expired', new Date(Date.now() - 1000).toISOString());
  const again = loadKubeClient(expired.kubeconfig);
  await again.list(`/api/v1/namespaces/${ns}/configmaps`);
  await again.list(`/api/v1/namespaces/${ns}/configmaps`);
  assert.equal(await expired.runs(), 2);
  client.close();
  again.close();
});

test('a token file is read again when the apiserver refuses the token it held (rotation needs no restart)', { skip: noToken }, async () => {
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, 'not-a-valid-token');
  const client = loadKubeClient(await kubeconfigWith('token-file', { tokenFile: 'token' })); // relative to the kubeconfig
  await assert.rejects(client.list(`/api/v1/namespaces/${ns}/configmaps`), (err: unknown) => err instanceof KubeApiError && err.status === 401);
  await writeFile(tokenFile, `${token}\n`);
  const list = await client.list(`/api/v1/namespaces/${ns}/configmaps`);
  assert.ok(Array.isArray(list.items));
  client.close();
});

test('errors an operator can act on: an API not served names the CRDs; a refusal is the apiserver\'s own message', async () => {
  const client = loadKubeClient(kubeconfigFile('unprivileged'));
  const adminClient = loadKubeClient(kubeconfigFile('admin'));
  const notServed = await adminClient.list('/apis/nothing.example.com/v1/things').catch((err: unknown) => err);
  assert.equal(watchErrorText(notServed), "HTTP 404: this apiserver does not serve it — are nodemedic's CRDs installed? (kubectl apply -f manifests/crds/)");
  const forbidden = await client.list('/api/v1/secrets').catch((err: unknown) => err);
  assert.match(watchErrorText(forbidden), /^HTTP 403: secrets is forbidden: User "[^"]+" cannot list resource "secrets" in API group "" at the cluster scope$/);
  assert.equal(await adminClient.get(`/api/v1/namespaces/${ns}/configmaps/absent`), undefined); // get: no such object is not an error
  assert.throws(() => loadKubeClient(path.join(dir, 'absent.kubeconfig')), KubeConfigError);
  client.close();
  adminClient.close();
});

test('a kubeconfig the agent cannot use is refused with what to use instead', async () => {
  const file = await kubeconfigWith('auth-provider', { 'auth-provider': { name: 'oidc', config: {} } });
  assert.throws(() => loadKubeClient(file), /"auth-provider" is not supported by nodemedic; use a token, a client certificate or an exec plugin/);
});

test('an informer sees adds, updates and deletes, and carries on across watches the server closes', async () => {
  const client = loadKubeClient(kubeconfigFile('admin'));
  const informer = new Informer<{ metadata?: { name?: string }; data?: Record<string, string> }>(client, `/api/v1/namespaces/${ns}/configmaps`, { labelSelector: 'informer=test' }, () => 1);
  const seen: string[] = [];
  for (const event of ['add', 'update', 'delete'] as const) informer.on(event, (o) => seen.push(`${event} ${o.metadata?.name} ${o.data?.v ?? ''}`.trim()));
  await core().createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'listed', labels: { informer: 'test' } }, data: { v: '1' } } });
  await informer.start();
  assert.deepEqual(seen, ['add listed 1']);
  // Each watch lasts a second: after two have closed, the third still brings every change.
  await waitFor('two watches to have been closed by the server', async () => informer.watches >= 3 || undefined);
  await core().replaceNamespacedConfigMap({ namespace: ns, name: 'listed', body: { metadata: { name: 'listed', labels: { informer: 'test' } }, data: { v: '2' } } });
  await core().createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'watched', labels: { informer: 'test' } }, data: { v: '1' } } });
  await core().deleteNamespacedConfigMap({ namespace: ns, name: 'listed' });
  await waitFor('the three changes', async () => seen.length >= 4 || undefined);
  assert.deepEqual(seen, ['add listed 1', 'update listed 2', 'add watched 1', 'delete listed 2']);
  assert.deepEqual(informer.list().map((o) => o.metadata?.name), ['watched']);
  await informer.stop();
  client.close();
});
