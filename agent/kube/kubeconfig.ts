// Where the apiserver is and who the agent is to it: the in-cluster service account, or a kubeconfig
// file read the way kubectl reads one. nodemedic reads kubeconfigs itself instead of through
// @kubernetes/client-node because that library's KubeConfig imports its whole generated API — about
// 60 MiB resident on every node (docs/benchmarks.md) for a dozen calls.
//
// What is read: the current context's cluster (server, certificate-authority[-data],
// insecure-skip-tls-verify, tls-server-name) and user (token, tokenFile, client-certificate[-data],
// client-key[-data], username/password, exec plugins, as/as-groups impersonation). Relative paths are
// relative to the kubeconfig file; several $KUBECONFIG files merge as in kubectl (the first to name an
// entry wins). What is not (auth-provider, proxy-url) is refused with a message that names it.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';

export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A kubeconfig's exec plugin (client.authentication.k8s.io). */
export type ExecPlugin = { command: string; args: string[]; env: Record<string, string>; apiVersion: string };

/** Everything needed to reach the apiserver as this identity. */
export type KubeConnection = {
  /** The apiserver's base URL, without a trailing slash. */
  server: string;
  /** PEM text of the CA the server's certificate must chain to; absent: the system's CAs. */
  ca?: string;
  insecureSkipTlsVerify?: boolean;
  tlsServerName?: string;
  /** PEM texts of a client certificate and key. */
  cert?: string;
  key?: string;
  token?: string;
  /** A file holding the token, read again as it changes (the in-cluster token is rotated by the kubelet). */
  tokenFile?: string;
  basicAuth?: { username: string; password: string };
  exec?: ExecPlugin;
  impersonate?: { user: string; groups: string[] };
  /** Where this came from, for error messages. */
  source: string;
};

export class KubeConfigError extends Error {
  override name = 'KubeConfigError';
}

type Named<T> = { name: string } & T;
type RawConfig = {
  'current-context'?: string;
  clusters?: Array<Named<{ cluster?: Record<string, unknown> }>>;
  users?: Array<Named<{ user?: Record<string, unknown> }>>;
  contexts?: Array<Named<{ context?: { cluster?: string; user?: string } }>>;
};

/** The connection from `file`; absent: in-cluster, else each file of $KUBECONFIG, else ~/.kube/config. */
export function loadKubeConnection(file?: string): KubeConnection {
  if (file) return fromKubeconfigFiles([file]);
  if (process.env.KUBERNETES_SERVICE_HOST && existsSync(path.join(IN_CLUSTER_DIR, 'token'))) return inCluster();
  const files = (process.env.KUBECONFIG ?? '').split(':').filter(Boolean);
  return fromKubeconfigFiles(files.length > 0 ? files : [path.join(homedir(), '.kube', 'config')]);
}

/** The pod's service account: its token (rotated, so read again as it changes) and the cluster's CA. */
export function inCluster(): KubeConnection {
  const host = process.env.KUBERNETES_SERVICE_HOST!;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(path.join(IN_CLUSTER_DIR, 'ca.crt'), 'utf8'),
    tokenFile: path.join(IN_CLUSTER_DIR, 'token'),
    source: 'the in-cluster service account',
  };
}

function fromKubeconfigFiles(files: string[]): KubeConnection {
  const existing = files.filter((f) => existsSync(f));
  if (existing.length === 0) throw new KubeConfigError(`no kubeconfig: ${files.join(', ')} does not exist (and the agent is not in a pod)`);
  const merged: Required<RawConfig> & { dirs: Map<object, string> } = { 'current-context': '', clusters: [], users: [], contexts: [], dirs: new Map() };
  for (const file of existing) {
    let raw: RawConfig;
    try {
      raw = (parse(readFileSync(file, 'utf8')) ?? {}) as RawConfig;
    } catch (err) {
      throw new KubeConfigError(`kubeconfig ${file}: not YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    merged['current-context'] ||= raw['current-context'] ?? '';
    // The first file to name an entry wins (kubectl's rule); each entry's paths are relative to its own file.
    for (const kind of ['clusters', 'users', 'contexts'] as const) {
      for (const entry of (Array.isArray(raw[kind]) ? raw[kind] : []) as Array<Named<object>>) {
        if ((merged[kind] as Array<Named<object>>).some((e) => e.name === entry.name)) continue;
        (merged[kind] as Array<Named<object>>).push(entry);
        merged.dirs.set(entry, path.dirname(path.resolve(file)));
      }
    }
  }
  const source = `kubeconfig ${existing.join(':')}`;
  const contextName = merged['current-context'];
  const context = merged.contexts.find((c) => c.name === contextName)?.context;
  if (!context) throw new KubeConfigError(`${source}: ${contextName ? `no context named "${contextName}"` : 'no current-context'}`);
  const clusterEntry = merged.clusters.find((c) => c.name === context.cluster);
  const cluster = clusterEntry?.cluster;
  if (!cluster || typeof cluster.server !== 'string') throw new KubeConfigError(`${source}: context "${contextName}" names no cluster with a server`);
  const userEntry = merged.users.find((u) => u.name === context.user);
  const user = userEntry?.user ?? {};
  const clusterDir = merged.dirs.get(clusterEntry!)!;
  const userDir = userEntry ? merged.dirs.get(userEntry)! : clusterDir;

  for (const unsupported of ['auth-provider', 'proxy-url'] as const) {
    const where = unsupported === 'proxy-url' ? cluster : user;
    if (where[unsupported] !== undefined) throw new KubeConfigError(`${source}: "${unsupported}" is not supported by nodemedic; use a token, a client certificate or an exec plugin`);
  }
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const pem = (data: unknown, file: unknown, dir: string, what: string) => {
    if (str(data)) return Buffer.from(data as string, 'base64').toString('utf8');
    if (!str(file)) return undefined;
    try {
      return readFileSync(path.resolve(dir, file as string), 'utf8');
    } catch (err) {
      throw new KubeConfigError(`${source}: cannot read the ${what} ${file as string}: ${(err as Error).message}`);
    }
  };
  const exec = user.exec as { command?: unknown; args?: unknown; env?: unknown; apiVersion?: unknown } | undefined;
  const username = str(user.username);
  return {
    server: (cluster.server as string).replace(/\/+$/, ''),
    ca: pem(cluster['certificate-authority-data'], cluster['certificate-authority'], clusterDir, 'certificate authority'),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    tlsServerName: str(cluster['tls-server-name']),
    cert: pem(user['client-certificate-data'], user['client-certificate'], userDir, 'client certificate'),
    key: pem(user['client-key-data'], user['client-key'], userDir, 'client key'),
    token: str(user.token),
    tokenFile: str(user.tokenFile) && path.resolve(userDir, user.tokenFile as string),
    basicAuth: username ? { username, password: str(user.password) ?? '' } : undefined,
    exec: exec && typeof exec.command === 'string'
      ? {
          // A bare command name is looked up on PATH; a path is relative to the kubeconfig (kubectl's rule).
          command: exec.command.includes('/') ? path.resolve(userDir, exec.command) : exec.command,
          args: Array.isArray(exec.args) ? exec.args.map(String) : [],
          env: Object.fromEntries((Array.isArray(exec.env) ? exec.env : []).map((e: { name?: unknown; value?: unknown }) => [String(e.name), String(e.value ?? '')])),
          apiVersion: str(exec.apiVersion) ?? 'client.authentication.k8s.io/v1',
        }
      : undefined,
    impersonate: str(user.as) ? { user: user.as as string, groups: Array.isArray(user['as-groups']) ? (user['as-groups'] as unknown[]).map(String) : [] } : undefined,
    source,
  };
}
