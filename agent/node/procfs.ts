// Reading processes from /proc, for the built-in collectors, diagnosers and recoverers that look at
// container shims. Every function returns undefined for a process that is gone (or was never there):
// processes come and go while they are read, and that is not an error.
import { readFile, readdir, readlink, stat } from 'node:fs/promises';
import path from 'node:path';

export type ProcStat = {
  pid: number;
  /** The kernel's name for it (at most 15 characters). */
  comm: string;
  /** R running, S sleeping, D uninterruptible sleep, T stopped, t traced, Z zombie, … */
  state: string;
  ppid: number;
  threads: number;
  /**
   * When it started, in clock ticks since boot. With the pid it names one process for good: a pid
   * that was reused belongs to a process with another start time.
   */
  startTicks: number;
};

const PROC = '/proc';

export async function readStat(pid: number): Promise<ProcStat | undefined> {
  const text = await readFile(path.join(PROC, String(pid), 'stat'), 'utf8').catch(() => undefined);
  if (!text) return undefined;
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split at the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: fields[0] ?? '?',
    ppid: Number(fields[1]),
    threads: Number(fields[17]),
    startTicks: Number(fields[19]),
  };
}

/** The process's stat if `pid` is still the process that started at `startTicks`; undefined if it exited or the pid was reused. */
export async function sameProcess(pid: number, startTicks: number): Promise<ProcStat | undefined> {
  const stat = await readStat(pid);
  return stat?.startTicks === startTicks ? stat : undefined;
}

export async function readCmdline(pid: number): Promise<string[] | undefined> {
  const raw = await readFile(path.join(PROC, String(pid), 'cmdline')).catch(() => undefined);
  if (!raw || raw.length === 0) return undefined;
  return raw.toString('utf8').replace(/\0$/, '').split('\0');
}

/** The executable's path; for a deleted or replaced binary the kernel appends " (deleted)". */
export const readExe = (pid: number) => readlink(path.join(PROC, String(pid), 'exe')).catch(() => undefined);
export const readCwd = (pid: number) => readlink(path.join(PROC, String(pid), 'cwd')).catch(() => undefined);
export const readWchan = (pid: number) => readFile(path.join(PROC, String(pid), 'wchan'), 'utf8').catch(() => undefined);

/** The process's environment (NUL-separated KEY=value), or undefined. */
export async function readEnviron(pid: number): Promise<Record<string, string> | undefined> {
  const raw = await readFile(path.join(PROC, String(pid), 'environ'), 'utf8').catch(() => undefined);
  if (raw === undefined) return undefined;
  return Object.fromEntries(raw.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

/** The file the process runs (device and inode of /proc/PID/exe, which names it even if it was deleted or replaced). */
export const exeIdentity = (pid: number) => stat(path.join(PROC, String(pid), 'exe')).then((s) => ({ dev: s.dev, ino: s.ino }), () => undefined);

/** Every pid now in /proc. */
export async function listPids(): Promise<number[]> {
  return (await readdir(PROC)).filter((name) => /^\d+$/.test(name)).map(Number);
}

/** The last component of each cgroup path the process is in (containerd names a container's cgroup after its id). */
export async function readCgroupLeaves(pid: number): Promise<string[]> {
  const text = await readFile(path.join(PROC, String(pid), 'cgroup'), 'utf8').catch(() => '');
  const leaves = text.split('\n').map((line) => line.split(':').slice(2).join(':')).map((p) => path.basename(p)).filter(Boolean);
  return [...new Set(leaves)];
}

/** The pids whose parent is `pid`, from a table of all processes' stats. */
export const childrenOf = (pid: number, table: readonly ProcStat[]) => table.filter((p) => p.ppid === pid).map((p) => p.pid);

/** Every process's stat, read once (a snapshot for building trees). */
export async function readAllStats(): Promise<ProcStat[]> {
  const stats = await Promise.all((await listPids()).map(readStat));
  return stats.filter((s): s is ProcStat => s !== undefined);
}

/** States that mean a process is not answering: stopped, traced, or in uninterruptible sleep. */
export const UNRESPONSIVE_STATES = new Set(['T', 't', 'D']);
