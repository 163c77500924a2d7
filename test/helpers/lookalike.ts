// A process that only looks like a container shim: a copy of /bin/sleep named containerd-shim-runc-v2,
// the attack the trust issue found (an allow-list of names let it be killed). Gone when the test ends.
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { readStat } from '../../agent/node/procfs.js';

export async function lookalikeShim(): Promise<{ pid: number; startTicks: number; path: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-lookalike-'));
  const copy = path.join(dir, 'containerd-shim-runc-v2');
  await copyFile('/bin/sleep', copy);
  const child = spawn(copy, ['3600'], { stdio: 'ignore' });
  after(async () => {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  const stat = await readStat(child.pid!);
  return { pid: child.pid!, startTicks: stat!.startTicks, path: copy };
}

/** Whether a process is alive (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
