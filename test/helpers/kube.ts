// What integration tests share: API clients for each identity, a namespace per test file, the CRDs,
// and a minimal valid Abnormal to start from.
//
// With the suite's own cluster (test/run.ts) every identity has its own token. Against a user's cluster
// (NODEMEDIC_TEST_KUBECONFIG alone) the agent and the unprivileged user are impersonated by the admin.
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApiException, CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { ALL_CRDS, API_VERSION, GROUP, VERSION } from '../../agent/api/crds.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { AGENT_USER, REPO_ROOT, UNPRIVILEGED_USER, kubeBinDir, type Identity } from '../cluster/cluster.js';

export { GROUP, VERSION };
export const ABNORMALS = 'abnormals';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run integration tests through \`npm test\` (test/run.ts)`);
  return value;
}

/** The identity's own kubeconfig file, where the suite's cluster gave it one. */
const ownKubeconfig = (identity: Identity) => ({
  admin: process.env.NODEMEDIC_TEST_KUBECONFIG,
  agent: process.env.NODEMEDIC_TEST_AGENT_KUBECONFIG,
  unprivileged: process.env.NODEMEDIC_TEST_UNPRIVILEGED_KUBECONFIG,
})[identity];

/** The identity impersonated by the admin where it has no kubeconfig of its own. */
const impersonated = (identity: Identity) => (identity === 'agent' ? AGENT_USER : UNPRIVILEGED_USER);

export function kubeConfig(identity: Identity = 'admin'): KubeConfig {
  const kc = new KubeConfig();
  const own = ownKubeconfig(identity);
  if (own) {
    kc.loadFromFile(own);
    return kc;
  }
  kc.loadFromFile(requireEnv('NODEMEDIC_TEST_KUBECONFIG'));
  const user = kc.getCurrentUser();
  if (!user) throw new Error('NODEMEDIC_TEST_KUBECONFIG has no current user');
  const impersonateUser = impersonated(identity);
  kc.users = kc.users.map((u) => (u.name === user.name ? { ...u, impersonateUser } : u));
  return kc;
}

/**
 * A kubeconfig file for `identity`, for an agent to read (config.kubeconfig): the suite's own for it,
 * or against a user's cluster a copy of the admin's that impersonates it (kubeconfig's `as`).
 */
export function kubeconfigFile(identity: Identity): string {
  const own = ownKubeconfig(identity);
  if (own) return own;
  const file = path.join(tmpdir(), `nodemedic-test-${identity}-${randomBytes(4).toString('hex')}.kubeconfig`);
  const config = JSON.parse(kubeConfig('admin').exportConfig()) as { users: Array<Record<string, unknown> & { user: Record<string, unknown> }> };
  for (const u of config.users) u.user.as = impersonated(identity);
  writeFileSync(file, JSON.stringify(config));
  after(() => rmSync(file, { force: true }));
  return file;
}

export const customObjects = (identity: Identity = 'admin') => kubeConfig(identity).makeApiClient(CustomObjectsApi);
export const core = (identity: Identity = 'admin') => kubeConfig(identity).makeApiClient(CoreV1Api);

/** The apiserver's own words from a failed call: its Status message, else the exception text. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    try {
      const status = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      if (status?.message) return String(status.message);
    } catch {
      // not JSON
    }
    return `HTTP ${err.code}: ${String(err.body)}`;
  }
  return err instanceof Error ? err.message : String(err);
}

export function apiCode(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

/** A fresh namespace for one test file, deleted when the file ends. */
export async function testNamespace(prefix: string): Promise<string> {
  const name = `nmt-${prefix}-${randomBytes(3).toString('hex')}`;
  const api = core();
  await api.createNamespace({ body: { metadata: { name } } });
  after(async () => {
    await api.deleteNamespace({ name }).catch(() => {});
  });
  return name;
}

// kubectl caches API discovery for 10 minutes and, in 1.20, does not refresh it to resolve a short name
// such as `ab`; a cache of this process's own starts after the CRDs exist.
const kubectlCache = path.join(tmpdir(), `nodemedic-kubectl-cache-${process.pid}`);
process.on('exit', () => rmSync(kubectlCache, { recursive: true, force: true }));

/** The kubectl (v1.20.2) that test/cluster/kube-bin.sh provides, as the admin. Resolves to stdout. */
export async function kubectl(...args: string[]): Promise<string> {
  const binDir = process.env.NODEMEDIC_TEST_KUBE_BIN ?? (process.env.NODEMEDIC_TEST_KUBE_BIN = await kubeBinDir());
  const { stdout } = await promisify(execFile)(path.join(binDir, 'kubectl'), [`--cache-dir=${kubectlCache}`, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, KUBECONFIG: requireEnv('NODEMEDIC_TEST_KUBECONFIG') },
  });
  return stdout;
}

/**
 * Apply the CRDs the way a user does, with kubectl, and wait until the apiserver serves them.
 * (Not through client-node's typed API: its serializer drops the x-kubernetes-* schema keys.)
 */
export async function applyCRDs(): Promise<void> {
  await kubectl('apply', '-f', 'manifests/crds/');
  await kubectl('wait', '--for=condition=Established', '--timeout=30s', ...ALL_CRDS.map(({ crd }) => `crd/${crd.metadata.name}`));
}

/**
 * The agent's ServiceAccount and roles, as a user installs them; then, for this suite only, the
 * Abnormals role bound cluster-wide: the suite's agents trust every namespace (abnormalNamespaces "*"),
 * as each test file works in a namespace of its own. A deployment binds it per trusted namespace.
 */
export async function applyAgentRBAC(): Promise<void> {
  await kubectl('apply', '-f', 'manifests/rbac/agent.yaml');
  const rbac = kubeConfig().makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: 'nodemedic-agent-abnormals-test-suite' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'nodemedic-agent-abnormals' },
      subjects: [{ kind: 'ServiceAccount', name: 'nodemedic', namespace: 'nodemedic-system' }],
    },
  }).catch((err) => {
    if (apiCode(err) !== 409) throw err; // already there (a suite run against a cluster used before)
  });
}

/** Let the agent do `verbs` on the named objects in `namespace`, as an admin granting one more would (a Role of its own). */
export async function grantAgent(namespace: string, rule: { apiGroups: string[]; resources: string[]; resourceNames: string[]; verbs: string[] }): Promise<void> {
  const rbac = kubeConfig().makeApiClient(RbacAuthorizationV1Api);
  const name = `nodemedic-test-${randomBytes(4).toString('hex')}`;
  await rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules: [rule] } });
  await rbac.createNamespacedRoleBinding({ namespace, body: {
    metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name: 'nodemedic', namespace: 'nodemedic-system' }],
  } });
}

/** A Lease of its own for a test (a lock or a budget), in the agent's namespace, which the agent may get and update by name. */
export async function agentLease(name: string): Promise<void> {
  await kubeConfig().makeApiClient(CoordinationV1Api).createNamespacedLease({ namespace: 'nodemedic-system', body: { metadata: { name }, spec: {} } });
  await grantAgent('nodemedic-system', { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [name], verbs: ['get', 'update'] });
}

/** A minimal valid Abnormal; `spec` fields given override the defaults. */
export function abnormal(name: string, namespace: string, spec: Partial<Abnormal['spec']> = {}, labels?: Record<string, string>): Abnormal {
  return {
    apiVersion: API_VERSION,
    kind: 'Abnormal',
    metadata: { name, namespace, ...(labels ? { labels } : {}) },
    spec: { source: 'Custom', nodeName: 'node-a', ...spec },
  };
}

export const createAbnormal = (body: Abnormal, identity: Identity = 'admin') =>
  customObjects(identity).createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: body.metadata!.namespace!,
    plural: ABNORMALS,
    body,
  }) as Promise<Abnormal>;

export const getAbnormal = (namespace: string, name: string, identity: Identity = 'admin') =>
  customObjects(identity).getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: ABNORMALS, name }) as Promise<Abnormal>;
