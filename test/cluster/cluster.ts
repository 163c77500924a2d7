// The test cluster: a real etcd (Debian's etcd-server) and a real kube-apiserver v1.20.2 on loopback,
// with RBAC and token authentication for three identities — an admin, the agent's service account and
// an unprivileged user. Started once per test run (test/run.ts) or by hand (`npm run cluster`).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { stringify } from 'yaml';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The agent's identity: the user name the apiserver gives the ServiceAccount nodemedic/nodemedic-system. */
export const AGENT_NAMESPACE = 'nodemedic-system';
export const AGENT_USER = `system:serviceaccount:${AGENT_NAMESPACE}:nodemedic`;
export const UNPRIVILEGED_USER = 'nodemedic-test-unprivileged';
export type Identity = 'admin' | 'agent' | 'unprivileged';

export type TestCluster = {
  server: string;
  dir: string;
  /** Path of a kubeconfig file per identity. */
  kubeconfigs: Record<Identity, string>;
  /** Directory with kube-apiserver, kubelet, kubectl, ... */
  binDir: string;
  /** Stop kube-apiserver (it has exited when `whileDown` is called), run `whileDown`, start it again on the same port and wait for it. */
  restartApiserver(whileDown?: () => Promise<void>): Promise<void>;
  stop(): Promise<void>;
};

/** Runs test/cluster/kube-bin.sh, which finds, unpacks or builds the binaries and prints their directory. */
export async function kubeBinDir(): Promise<string> {
  const { stdout } = await run(path.join(REPO_ROOT, 'test/cluster/kube-bin.sh'), {
    maxBuffer: 16 * 1024 * 1024,
    timeout: 30 * 60 * 1000, // a build from source takes minutes
  });
  return stdout.trim();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function openssl(cwd: string, ...args: string[]) {
  await run('openssl', args, { cwd });
}

/** A CA, a serving certificate for 127.0.0.1 / localhost, and the service-account signing key. */
export async function makeCertificates(dir: string) {
  await openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-subj', '/CN=nodemedic-test-ca',
    '-keyout', 'ca.key', '-out', 'ca.crt');
  await writeFile(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=kube-apiserver', '-keyout', 'apiserver.key',
    '-out', 'apiserver.csr');
  await openssl(dir, 'x509', '-req', '-in', 'apiserver.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', '30', '-extfile', 'san.ext', '-out', 'apiserver.crt');
  await openssl(dir, 'genrsa', '-out', 'sa.key', '2048');
  await openssl(dir, 'rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub');
}

function kubeconfig(server: string, caPem: string, user: string, token: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'nodemedic-test', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: user, context: { cluster: 'nodemedic-test', user } }],
    'current-context': user,
  });
}

export type Daemon = { name: string; child: ChildProcess; exited: Promise<void> };

/** A long-running program, its stdout and stderr appended to `logFile`. */
export function startDaemon(name: string, binary: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): Daemon {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { name, child, exited };
}

/** SIGTERM, and SIGKILL if it has not exited after `graceMs`. */
export async function stopDaemon(daemon: Daemon, graceMs = 10_000) {
  if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
  daemon.child.kill('SIGTERM');
  const killer = setTimeout(() => daemon.child.kill('SIGKILL'), graceMs);
  await daemon.exited;
  clearTimeout(killer);
}

/**
 * kube-scheduler and kube-controller-manager with only the controllers a DaemonSet needs (its own, and
 * service-account tokens for its pods) — started by the one test that deploys the DaemonSet, not for
 * the whole suite: pod garbage collection would delete the pods other tests bind to made-up nodes.
 */
export async function startControllers(opts: { clusterDir: string; kubeconfig: string; binDir: string; logDir: string }): Promise<{ stop(): Promise<void> }> {
  const { clusterDir, kubeconfig, binDir, logDir } = opts;
  const common = [`--kubeconfig=${kubeconfig}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`,
    '--leader-elect=false', '--bind-address=127.0.0.1', '--port=0'];
  const daemons = [
    startDaemon('kube-controller-manager', path.join(binDir, 'kube-controller-manager'), [...common, `--secure-port=${await freePort()}`,
      '--controllers=daemonset,serviceaccount-token', `--service-account-private-key-file=${clusterDir}/sa.key`, `--root-ca-file=${clusterDir}/ca.crt`,
    ], path.join(logDir, 'kube-controller-manager.log')),
    startDaemon('kube-scheduler', path.join(binDir, 'kube-scheduler'), [...common, `--secure-port=${await freePort()}`], path.join(logDir, 'kube-scheduler.log')),
  ];
  return { stop: async () => void (await Promise.all(daemons.map((d) => stopDaemon(d)))) };
}

async function waitUntilReady(server: string, caPem: string, token: string, daemons: Daemon[], logDir: string) {
  const dispatcher = new Agent({ connect: { ca: caPem } });
  try {
    await waitFor(`kube-apiserver to be ready (its log: ${logDir}/kube-apiserver.log)`, async () => {
      const dead = daemons.find((d) => d.child.exitCode !== null);
      if (dead) {
        const log = await readFile(path.join(logDir, `${dead.name}.log`), 'utf8').catch(() => '');
        throw new Error(`${dead.name} exited with ${dead.child.exitCode} while starting:\n${log.slice(-3000)}`);
      }
      try {
        const res = await request(`${server}/readyz`, { dispatcher, headers: { authorization: `Bearer ${token}` } });
        return res.statusCode === 200 && (await res.body.text()).trim() === 'ok';
      } catch {
        return false; // not listening yet
      }
    }, 60_000);
  } finally {
    await dispatcher.close();
  }
}

export async function startCluster(opts: { dir?: string; keep?: boolean } = {}): Promise<TestCluster> {
  const binDir = await kubeBinDir();
  const dir = opts.dir ?? (await mkdtemp(path.join(tmpdir(), 'nodemedic-cluster-')));
  await mkdir(dir, { recursive: true });
  await makeCertificates(dir);
  const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const server = `https://127.0.0.1:${apiPort}`;

  const tokens: Record<Identity, string> = {
    admin: randomBytes(24).toString('hex'),
    agent: randomBytes(24).toString('hex'),
    unprivileged: randomBytes(24).toString('hex'),
  };
  // token,user,uid,"groups"
  await writeFile(
    path.join(dir, 'tokens.csv'),
    [
      `${tokens.admin},admin,uid-admin,"system:masters"`,
      `${tokens.agent},${AGENT_USER},uid-agent,"system:serviceaccounts,system:serviceaccounts:${AGENT_NAMESPACE}"`,
      `${tokens.unprivileged},${UNPRIVILEGED_USER},uid-unprivileged`,
    ].join('\n') + '\n',
  );

  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
  const daemons: Daemon[] = [];
  const stopDaemons = async () => {
    for (const d of [...daemons].reverse()) await stopDaemon(d);
    process.off('exit', killAll);
  };
  const stop = async () => {
    await stopDaemons();
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
  };
  // If the test runner dies, do not leave an apiserver and etcd behind.
  const killAll = () => daemons.forEach((d) => d.child.kill('SIGKILL'));
  process.on('exit', killAll);

  try {
    daemons.push(
      startDaemon('etcd', 'etcd', [
        '--name=default', `--data-dir=${dir}/etcd`,
        `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`, `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=default=${peerUrl}`,
      ], path.join(dir, 'etcd.log')),
    );
    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${apiPort}`,
      `--tls-cert-file=${dir}/apiserver.crt`, `--tls-private-key-file=${dir}/apiserver.key`,
      `--client-ca-file=${dir}/ca.crt`,
      `--token-auth-file=${dir}/tokens.csv`,
      '--authorization-mode=Node,RBAC',
      `--service-account-key-file=${dir}/sa.pub`, `--service-account-signing-key-file=${dir}/sa.key`,
      '--service-account-issuer=https://kubernetes.default.svc',
      '--service-cluster-ip-range=10.254.0.0/24',
      '--allow-privileged=true',
      '--enable-priority-and-fairness=false',
    ];
    const startApiserver = () => startDaemon('kube-apiserver', path.join(binDir, 'kube-apiserver'), apiserverArgs, path.join(dir, 'kube-apiserver.log'));
    daemons.push(startApiserver());
    const caPem = await readFile(path.join(dir, 'ca.crt'), 'utf8');
    await waitUntilReady(server, caPem, tokens.admin, daemons, dir);
    const restartApiserver = async (whileDown: () => Promise<void> = async () => {}) => {
      const index = daemons.findIndex((d) => d.name === 'kube-apiserver');
      await stopDaemon(daemons[index]!);
      await whileDown();
      daemons[index] = startApiserver();
      await waitUntilReady(server, caPem, tokens.admin, daemons, dir);
    };

    const kubeconfigs = {} as Record<Identity, string>;
    for (const identity of Object.keys(tokens) as Identity[]) {
      kubeconfigs[identity] = path.join(dir, `${identity}.kubeconfig`);
      await writeFile(kubeconfigs[identity], kubeconfig(server, caPem, identity, tokens[identity]));
    }
    return { server, dir, kubeconfigs, binDir, restartApiserver, stop };
  } catch (err) {
    await stopDaemons(); // keep the directory: its logs say why
    throw err;
  }
}
