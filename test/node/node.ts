// A real node for the tests: Debian's containerd (with runc) and the v1.20.2 kubelet, joined to the
// test apiserver. No image can be pulled here, so the images are built offline from Debian's
// busybox-static as OCI layout tarballs and imported into containerd. Facts this relies on are in
// ../shared/kube-bin/README.md: restrict_oom_score_adj (these machines forbid lowering oom_score_adj),
// the kubelet flags that work here, and hostNetwork pods (no CNI, so the node stays NotReady).
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, startDaemon, stopDaemon, type Daemon } from '../cluster/cluster.js';
import { JournalFixture } from '../helpers/journal-fixture.js';
import { inCgroupsNamed, killAll, processTable, treesChildrenFirst } from '../helpers/processes.js';
import { CoreV1Api } from '@kubernetes/client-node';
import { kubeConfig } from '../helpers/kube.js';
import { IS_ROOT } from '../helpers/needs.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);

export const BUSYBOX_IMAGE = 'docker.io/library/busybox:nodemedic';
export const PAUSE_IMAGE = 'docker.io/library/pause:nodemedic';

export type TestNode = {
  name: string;
  dir: string;
  /** containerd's socket, for ctr and crictl-like calls. */
  containerdSocket: string;
  /** containerd's log file (the shims' goroutine dumps land here). */
  containerdLog: string;
  /** With `journal`: the journal directory containerd also logs to, as containerd.service (a fixture of journald). */
  journal?: JournalFixture;
  stop(): Promise<void>;
};

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** A root filesystem tarball of busybox-static with a few applets. */
async function busyboxLayer(dir: string): Promise<string> {
  const root = path.join(dir, 'rootfs');
  await rm(root, { recursive: true, force: true });
  await mkdir(path.join(root, 'bin'), { recursive: true });
  await copyFile('/bin/busybox', path.join(root, 'bin/busybox'));
  for (const applet of ['sh', 'sleep', 'cat', 'echo', 'ls', 'true']) await symlink('busybox', path.join(root, 'bin', applet));
  const layerTar = path.join(dir, 'layer.tar');
  await run('tar', ['-C', root, '--owner=0', '--group=0', '-cf', layerTar, '.']);
  return layerTar;
}

/** An OCI layout tarball of one layer (a root filesystem tarball), running `cmd`, tagged `name`. */
export async function buildImage(dir: string, name: string, layerTar: string, config: { Cmd: string[]; Entrypoint?: string[]; Env?: string[]; WorkingDir?: string }): Promise<string> {
  const layer = await readFile(layerTar);
  const imageConfig = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux',
    config: { Env: ['PATH=/bin:/usr/bin'], ...config },
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(layer)}`] },
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(imageConfig)}`, size: imageConfig.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${sha256(layer)}`, size: layer.length }],
  }));
  const layout = path.join(dir, 'layout');
  await rm(layout, { recursive: true, force: true });
  await mkdir(path.join(layout, 'blobs/sha256'), { recursive: true });
  for (const blob of [layer, imageConfig, manifest]) await writeFile(path.join(layout, 'blobs/sha256', sha256(blob)), blob);
  await writeFile(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(path.join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha256(manifest)}`, size: manifest.length,
      annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name.split(':').pop() },
    }],
  }));
  const tarball = path.join(dir, `${name.replace(/[^a-z0-9]/g, '-')}.tar`);
  await run('tar', ['-C', layout, '-cf', tarball, '.']);
  return tarball;
}

/** Makes an image tarball known to the node's containerd, for pods with imagePullPolicy: Never. */
export async function importImage(node: Pick<TestNode, 'containerdSocket'>, tarball: string): Promise<void> {
  await run('ctr', ['--address', node.containerdSocket, '-n', 'k8s.io', 'images', 'import', tarball], { maxBuffer: 16 * 1024 * 1024 });
}

/** Until `check` says yes; a check that fails (the daemon not listening yet) is a no. */
const until = (what: string, check: () => Promise<boolean>, timeoutMs: number) =>
  waitFor(what, async () => (await check().catch(() => false)) || undefined, timeoutMs);

/**
 * Whether the suite runs on its own test cluster (test/run.ts started it). Only then may a kubelet join
 * it: never a user's cluster.
 */
export const ON_OWN_CLUSTER = Boolean(process.env.NODEMEDIC_TEST_AGENT_KUBECONFIG && process.env.NODEMEDIC_TEST_KUBE_BIN);

/** For a test's `skip`: false as root on the suite's own cluster, else why the test does not run. */
export const skipUnlessOwnCluster = (what: string) =>
  !IS_ROOT ? `${what}: needs root (a container runtime and a kubelet)` : ON_OWN_CLUSTER ? false : `${what}: runs only on the suite's own test cluster`;

/** A node joined to the suite's own test cluster (only where ON_OWN_CLUSTER). */
export const startSuiteNode = (name: string, extra: { shimDir?: string; journal?: boolean } = {}) =>
  startNode({ name, kubeconfig: process.env.NODEMEDIC_TEST_KUBECONFIG!, kubeBinDir: process.env.NODEMEDIC_TEST_KUBE_BIN!, ...extra });

/**
 * A node joined to the suite's own test cluster, ready for pods in `namespace`: the suite runs no
 * controller manager to make the namespace's default ServiceAccount, which admission asks of every pod.
 */
export async function startSuiteNodeFor(namespace: string, name: string, extra: { shimDir?: string; journal?: boolean } = {}): Promise<TestNode> {
  await kubeConfig().makeApiClient(CoreV1Api).createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'default' } } });
  return startSuiteNode(name, extra);
}

/** Waits until pod `namespace/name` runs (the kubelet started its containers). */
export const podRunning = (namespace: string, name: string) =>
  waitFor(`pod ${name} to run`, async () =>
    (await kubeConfig().makeApiClient(CoreV1Api).readNamespacedPod({ namespace, name })).status?.phase === 'Running' || undefined, 60_000);

/** The pids of the shims of this node's containerd, found by their command line. */
export function shimPids(node: Pick<TestNode, 'containerdSocket'>): number[] {
  return execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).split('\n')
    .filter((l) => l.includes('containerd-shim-runc-v2') && l.includes(node.containerdSocket)).map((l) => Number(l.trim().split(/\s+/)[0]));
}

/**
 * A busybox pod (`sleep 3600`, grace period 1 s) bound to `node`, once it runs: its uid, and the new
 * shims that appeared for it (one per pod sandbox).
 */
export async function runBusyboxPod(node: Pick<TestNode, 'name' | 'containerdSocket'>, namespace: string, name: string): Promise<{ uid: string; newShims: number[] }> {
  const before = new Set(shimPids(node));
  const pod = await kubeConfig().makeApiClient(CoreV1Api).createNamespacedPod({
    namespace,
    body: {
      metadata: { name },
      spec: {
        nodeName: node.name, hostNetwork: true, automountServiceAccountToken: false, terminationGracePeriodSeconds: 1,
        tolerations: [{ operator: 'Exists' }],
        containers: [{ name: 'main', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sleep', '3600'] }],
      },
    },
  });
  await podRunning(namespace, name);
  return { uid: pod.metadata!.uid!, newShims: shimPids(node).filter((pid) => !before.has(pid)) };
}

/** Every process of this node's shims (found by containerd's socket on their command line), children first, killed. */
async function killShimTrees(socket: string): Promise<void> {
  const table = processTable();
  const shims = table.filter((p) => p.cmdline.includes('containerd-shim') && p.cmdline.includes(`\0${socket}`)).map((p) => p.pid);
  killAll(treesChildrenFirst(table, shims));
}

/**
 * Every process of this node's containers, found by their cgroups: a container whose shim was killed
 * (the shim case's recovery does that) is re-parented to init, outside every shim's tree.
 */
async function killContainers(dir: string): Promise<void> {
  const cri = path.join(dir, 'containerd-root/io.containerd.grpc.v1.cri');
  const ids = (await Promise.all(['containers', 'sandboxes'].map((kind) => readdir(path.join(cri, kind)).catch(() => [])))).flat();
  if (ids.length > 0) killAll(inCgroupsNamed(processTable(), new Set(ids)));
}

/** containerd + kubelet as node `name`, registered with the apiserver the admin kubeconfig points to. */
export async function startNode(opts: { name: string; kubeconfig: string; kubeBinDir: string; shimDir?: string; journal?: boolean }): Promise<TestNode> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-node-'));
  const socket = path.join(dir, 'containerd.sock');
  const containerdLog = path.join(dir, 'containerd.log');
  await writeFile(path.join(dir, 'containerd.toml'), `version = 2
root = "${dir}/containerd-root"
state = "${dir}/containerd-state"
[grpc]
  address = "${socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${dir}/cni-bin"
    conf_dir = "${dir}/cni-conf"
`);
  const daemons: Daemon[] = [];
  let journal: JournalFixture | undefined;
  const stop = async () => {
    // The pods' containers first: a shim outlives containerd by design, and a container outlives its
    // shim (it is re-parented), so each shim's whole tree is killed, the containers before the shims;
    // then the containers whose shim is gone already.
    await killShimTrees(socket);
    for (const d of [...daemons].reverse()) await stopDaemon(d, 15_000);
    await journal?.stop();
    await killShimTrees(socket); // any that started while the kubelet was stopping
    await killContainers(dir);
    const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir));
    for (const mount of mounts.reverse()) await run('umount', ['-l', mount]).catch(() => {});
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  };
  try {
    // With shimDir, its containerd-shim-runc-v2 comes first on containerd's PATH: every pod of this node runs on it.
    const env = opts.shimDir ? { ...process.env, PATH: `${opts.shimDir}:${process.env.PATH}` } : undefined;
    const containerd = startDaemon('containerd', 'containerd', ['--config', path.join(dir, 'containerd.toml'), '--log-level', 'debug'], containerdLog, env);
    daemons.push(containerd);
    if (opts.journal) {
      // As on most nodes, containerd logging to the journal too: through journald's stdout transport (a fixture).
      await mkdir(path.join(dir, 'journal'));
      journal = new JournalFixture(path.join(dir, 'journal'), 'containerd.service', () => containerd.child.pid);
      for (const stream of [containerd.child.stdout!, containerd.child.stderr!]) stream.on('data', (chunk: Buffer) => journal!.write(chunk));
    }
    await until('containerd', async () => (await run('ctr', ['--address', socket, 'version'])).stdout.includes('Server'), 30_000);
    const imageDir = path.join(dir, 'image');
    const layer = await busyboxLayer(imageDir);
    for (const [image, cmd] of [[PAUSE_IMAGE, ['sleep', '2147483647']], [BUSYBOX_IMAGE, ['sh']]] as const) {
      await importImage({ containerdSocket: socket }, await buildImage(imageDir, image, layer, { Cmd: [...cmd], Env: ['PATH=/bin'] }));
    }
    daemons.push(startDaemon('kubelet', path.join(opts.kubeBinDir, 'kubelet'), [
      `--kubeconfig=${opts.kubeconfig}`, `--root-dir=${dir}/kubelet`, `--cert-dir=${dir}/kubelet-pki`,
      '--container-runtime=remote', `--container-runtime-endpoint=unix://${socket}`,
      '--fail-swap-on=false', '--cgroup-driver=cgroupfs', '--cgroups-per-qos=false', '--enforce-node-allocatable=',
      '--eviction-hard=', '--image-gc-high-threshold=100', '--image-gc-low-threshold=99',
      // Ports of its own, so that two test files can each run a node at once.
      `--hostname-override=${opts.name}`, '--read-only-port=0', `--port=${await freePort()}`, `--healthz-port=${await freePort()}`,
    ], path.join(dir, 'kubelet.log')));
    await until('the node to register', async () => {
      const { stdout } = await run(path.join(opts.kubeBinDir, 'kubectl'), [`--kubeconfig=${opts.kubeconfig}`, 'get', 'node', opts.name, '-o', 'name']);
      return stdout.trim() === `node/${opts.name}`;
    }, 60_000);
    return { name: opts.name, dir, containerdSocket: socket, containerdLog, ...(journal ? { journal } : {}), stop };
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; logs in ${dir}`);
  }
}
