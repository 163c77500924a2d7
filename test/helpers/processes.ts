// The process table, read from /proc, and killing whole process trees: a container outlives its shim
// (it is re-parented to init), so a tree is killed children first, its root last.
import { readdirSync, readFileSync } from 'node:fs';

export type ProcessEntry = { pid: number; ppid: number; cmdline: string };

export function processTable(): ProcessEntry[] {
  const table: ProcessEntry[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      table.push({ pid: Number(entry), ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]), cmdline });
    } catch {
      // exited meanwhile
    }
  }
  return table;
}

/** The processes below `roots`, deepest first, then the roots themselves. */
export function treesChildrenFirst(table: readonly ProcessEntry[], roots: readonly number[]): number[] {
  const below = (pid: number): number[] => table.filter((p) => p.ppid === pid).flatMap((p) => [...below(p.pid), p.pid]);
  return [...roots.flatMap(below), ...roots];
}

export function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/**
 * The processes in a cgroup named one of `names` (its last path segment, in any hierarchy): containerd
 * names each container's cgroup after the container's id.
 */
export function inCgroupsNamed(table: readonly ProcessEntry[], names: ReadonlySet<string>): number[] {
  return table.filter(({ pid }) => {
    try {
      return readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').some((line) => names.has(line.slice(line.lastIndexOf('/') + 1)));
    } catch {
      return false; // exited meanwhile
    }
  }).map((p) => p.pid);
}
