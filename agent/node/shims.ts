// Container shims, found in /proc and mapped to their containers and pods:
//   - containerd's shim v2 (`containerd-shim-runc-v2 -namespace k8s.io -id ID -address SOCKET`): one
//     per pod sandbox; the pod's containers are its children. Its working directory is the sandbox's
//     bundle, whose config.json carries the CRI's annotations naming the pod.
//   - the v1 shim (`containerd-shim -namespace moby -workdir …/ID …`, Docker's
//     `docker-containerd-shim`, older ones `docker-containerd-shim ID BUNDLE RUNTIME`): one per
//     container; the pod is read from the cgroup path of its child (kubepods/…/pod<uid>/…).
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { childrenOf, exeIdentity, readAllStats, readCgroupLeaves, readCmdline, readCwd, readEnviron, readExe, readStat, type ProcStat } from './procfs.js';

/** The executables that are container shims; the signal recoverer acts on nothing else by default. */
export const SHIM_EXECUTABLES = ['containerd-shim-runc-v2', 'containerd-shim-runc-v1', 'containerd-shim', 'docker-containerd-shim'];

export type ShimCommand = { executable: string; namespace?: string; id?: string; address?: string };

export type PodRef = { uid?: string; namespace?: string; name?: string };

export type Shim = ShimCommand & {
  pid: number;
  startTicks: number;
  state: string;
  /** The bundle directory (the shim's working directory). */
  bundle?: string;
  pod?: PodRef;
  /** Container ids served by this shim (the sandbox's own id included). */
  containers: string[];
  children: number[];
};

/** The shim a command line starts, or undefined if it is not a shim's. */
export function parseShimCommand(args: readonly string[]): ShimCommand | undefined {
  const executable = path.basename(args[0] ?? '');
  if (!SHIM_EXECUTABLES.includes(executable)) return undefined;
  const flag = (name: string) => {
    const at = args.findIndex((a) => a === `-${name}` || a === `--${name}`);
    if (at >= 0) return args[at + 1];
    return args.find((a) => a.startsWith(`-${name}=`) || a.startsWith(`--${name}=`))?.split('=').slice(1).join('=');
  };
  // The oldest docker-containerd-shim took positional arguments: ID BUNDLE RUNTIME.
  if (args[1] !== undefined && !args[1].startsWith('-')) return { executable, id: args[1] };
  const workdir = flag('workdir');
  return { executable, namespace: flag('namespace'), id: flag('id') ?? (workdir ? path.basename(workdir) : undefined), address: flag('address') };
}

/** A container id as the pod status gives it ("containerd://abc…", "docker://abc…") or bare. */
export const bareContainerId = (id: string) => id.replace(/^[a-z]+:\/\//, '');

/** A cgroup leaf named after a container: "ID", "cri-containerd-ID.scope", "docker-ID.scope". */
const containerIdOfLeaf = (leaf: string) => leaf.replace(/^(cri-containerd|docker|crio)-/, '').replace(/\.scope$/, '');

const POD_IN_CGROUP = /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/;

async function podOfBundle(bundle: string | undefined): Promise<PodRef | undefined> {
  if (!bundle) return undefined;
  const config = await readFile(path.join(bundle, 'config.json'), 'utf8').then((t) => JSON.parse(t) as { annotations?: Record<string, string> }, () => undefined);
  const a = config?.annotations ?? {};
  const uid = a['io.kubernetes.cri.sandbox-uid'] ?? a['io.kubernetes.cri.sandbox-log-directory']?.split('_').pop();
  if (!uid) return undefined;
  return { uid, namespace: a['io.kubernetes.cri.sandbox-namespace'], name: a['io.kubernetes.cri.sandbox-name'] };
}

async function podOfCgroups(pids: readonly number[]): Promise<PodRef | undefined> {
  for (const pid of pids) {
    const text = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
    const match = POD_IN_CGROUP.exec(text);
    if (match) return { uid: match[1]!.replace(/_/g, '-') };
  }
  return undefined;
}

/** Every container shim running on this node, with what it serves. */
export async function findShims(table?: readonly ProcStat[]): Promise<Shim[]> {
  const stats = table ?? (await readAllStats());
  const shims: Shim[] = [];
  for (const stat of stats) {
    const args = await readCmdline(stat.pid);
    const command = args && parseShimCommand(args);
    if (!command) continue;
    const children = childrenOf(stat.pid, stats);
    const bundle = await readCwd(stat.pid);
    const containers = new Set(command.id ? [command.id] : []);
    for (const child of children) for (const leaf of await readCgroupLeaves(child)) if (/^[0-9a-f]{64}$/.test(containerIdOfLeaf(leaf))) containers.add(containerIdOfLeaf(leaf));
    shims.push({
      ...command, pid: stat.pid, startTicks: stat.startTicks, state: stat.state, bundle,
      pod: (await podOfBundle(bundle)) ?? (await podOfCgroups(children)),
      containers: [...containers], children,
    });
  }
  return shims;
}

/** The shims serving a pod: by its uid, or by any of its containers' ids. */
export function shimsOfPod(shims: readonly Shim[], pod: { uid?: string; containerIDs?: readonly string[] }): Shim[] {
  const ids = new Set((pod.containerIDs ?? []).map(bareContainerId));
  return shims.filter((s) => (pod.uid !== undefined && s.pod?.uid === pod.uid) || s.containers.some((c) => ids.has(c)));
}

/** The executable's file name, as the allow-list names it ("/usr/bin/x (deleted)" → "x"). */
export async function executableName(pid: number): Promise<string | undefined> {
  const exe = await readExe(pid);
  return exe ? path.basename(exe.replace(/ \(deleted\)$/, '')) : undefined;
}

/** What an Abnormal asks about (agent/processors/evidence.ts reads it from the Abnormal): a pod, containers, or processes. */
export type Subject = { pod?: PodRef & { containerIDs: string[] }; pids: number[] };

/** The shims of a subject: its pod's or containers' shims, and named pids that are shims. */
export async function shimsOfSubject(subject: Subject): Promise<Shim[]> {
  if (!subject.pod && subject.pids.length === 0) return [];
  const all = await findShims();
  const ofPod = subject.pod ? shimsOfPod(all, subject.pod) : [];
  const named = all.filter((s) => subject.pids.includes(s.pid) && !ofPod.includes(s));
  return [...ofPod, ...named];
}

/** The container runtimes that start shims, by the kernel's name for them. */
const RUNTIMES = new Set(['containerd', 'docker-containerd', 'dockerd']);
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export type Binary = { path: string; dev: number; ino: number };

/**
 * The shim executables the node's container runtime would start: each of SHIM_EXECUTABLES found beside
 * the runtime's own executable or on its PATH, seen through /proc/PID/root (so from inside the agent's
 * container too). A name says nothing about a process; these files' device and inode do.
 */
export async function runtimeShimBinaries(table?: readonly ProcStat[]): Promise<Binary[]> {
  const found = new Map<string, Binary>();
  for (const runtime of (table ?? (await readAllStats())).filter((p) => RUNTIMES.has(p.comm))) {
    const root = `/proc/${runtime.pid}/root`;
    const exe = (await readExe(runtime.pid))?.replace(/ \(deleted\)$/, '');
    const dirs = [...(exe ? [path.dirname(exe)] : []), ...((await readEnviron(runtime.pid))?.PATH ?? DEFAULT_PATH).split(':').filter((d) => d.startsWith('/'))];
    for (const dir of dirs) {
      for (const name of SHIM_EXECUTABLES) {
        const at = path.join(dir, name);
        const s = await stat(path.join(root, at)).catch(() => undefined);
        const key = `${s?.dev}:${s?.ino}`;
        if (s?.isFile() && !found.has(key)) found.set(key, { path: at, dev: s.dev, ino: s.ino }); // the first name it is found by
      }
    }
  }
  return [...found.values()];
}

/**
 * Whether `pid` (started at `startTicks`) is a shim of the node's container runtime: the same process
 * that was named (pids are reused), running one of the runtime's own shim binaries (device and inode),
 * with a shim's command line. Resolves to the shim, or to why it is not one.
 */
export async function provenShim(pid: number, startTicks: number, binaries?: readonly Binary[]): Promise<{ shim: ShimCommand & { binary: string } } | { refused: string }> {
  const now = await exeIdentity(pid);
  const stats = await readStat(pid);
  if (!now || !stats || stats.startTicks !== startTicks) return { refused: `pid ${pid} is not the process that was named (it exited, or the pid was reused)` };
  const known = binaries ?? (await runtimeShimBinaries());
  if (known.length === 0) return { refused: 'no container runtime (containerd) runs on this node to say which binaries are its shims' };
  const binary = known.find((b) => b.dev === now.dev && b.ino === now.ino);
  if (!binary) return { refused: `pid ${pid} runs ${(await readExe(pid)) ?? 'an unknown file'}, which is not the container runtime's shim binary (${known.map((b) => b.path).join(', ')})` };
  const command = parseShimCommand((await readCmdline(pid)) ?? []);
  if (!command) return { refused: `pid ${pid} runs the shim binary without a shim's command line` };
  return { shim: { ...command, binary: binary.path } };
}
