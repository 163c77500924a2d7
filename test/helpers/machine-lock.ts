// A lock across every test run on this machine, for what the machine has only one of: the kernel log
// is one for all, so two runs writing floods and markers into it at once would count each other's
// lines. A lock is a directory (mkdir is atomic) holding the owner's pid; one whose owner is gone is
// taken over. Waiting polls the lock's state (waitFor), with a limit.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { after } from 'node:test';
import { waitFor } from './wait.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Hold the machine-wide lock `name` until the calling test file ends. */
export async function holdMachineLock(name: string, timeoutMs = 15 * 60 * 1000): Promise<void> {
  const dir = `/run/lock/nodemedic-test-${name}`;
  const owner = async () => Number(await readFile(`${dir}/pid`, 'utf8').catch(() => '0'));
  await waitFor(`the machine-wide lock ${name}`, async () => {
    try {
      await mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = await owner();
      if (pid > 0 && !alive(pid)) await rm(dir, { recursive: true, force: true }); // its run ended without letting go
      return false; // another run holds it
    }
    await writeFile(`${dir}/pid`, String(process.pid));
    return true;
  }, timeoutMs);
  after(() => rm(dir, { recursive: true, force: true }));
}
