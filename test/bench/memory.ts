// The agent's resident memory (the real `nodemedic agent` process, file store): idle — with the CPU it
// uses and how often it wakes up — and while it reads 10,000 log lines per second through a rule file
// for 10 s.
import { readFileSync, readdirSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { spawnAgent, waitFor } from '../helpers/agent.js';

export type MemoryResult = {
  idleMiB: number; busyMaxMiB: number; linesWritten: number; matchesCounted: number;
  /** Idle, over IDLE_SECONDS: CPU used (percent of one core) and wakeups (context switches of all its threads) per second. */
  idleCpuPercent: number; idleWakeupsPerSecond: number;
};

const IDLE_SECONDS = 20;

/** CPU seconds used so far, and context switches of all threads (each one a wakeup). */
function cpuAndSwitches(pid: number): { cpuS: number; switches: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let switches = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
    for (const m of status.matchAll(/_ctxt_switches:\s+(\d+)/g)) switches += Number(m[1]);
  }
  return { cpuS: (Number(fields[11]) + Number(fields[12])) / 100, switches }; // USER_HZ is 100 on Linux
}

const rssMiB = (pid: number) => {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return Math.round((kb / 1024) * 10) / 10;
};

export async function benchMemory(): Promise<MemoryResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-mem-'));
  const state = path.join(dir, 'state');
  await mkdir(path.join(state, 'abnormals'), { recursive: true });
  const log = path.join(dir, 'app.log');
  await writeFile(log, '');
  // The default kernel rules, read from a file, plus one that matches 1 line in 100.
  await writeFile(path.join(dir, 'rules.yaml'), `kind: LogRules\nplugin: file\nlogPath: ${log}\nsource: bench\nrules:\n  - {reason: Boom, pattern: 'boom \\d+'}\n`);
  await writeFile(path.join(dir, 'config.yaml'), `sources: {ruleFiles: ["${path.join(dir, 'rules.yaml')}"]}\n`);
  const agent = spawnAgent(['--store', 'file', '--state-dir', state, '--node-name', 'bench', '--config', path.join(dir, 'config.yaml')], path.join(dir, 'agent.log'));
  try {
    await waitFor('the agent to start', async () => (await readFile(path.join(dir, 'agent.log'), 'utf8').catch(() => '')).includes('agent started') || undefined);
    await new Promise((r) => setTimeout(r, 5000)); // the definition of idle here: 5 s after its start, nothing written
    const idleMiB = rssMiB(agent.pid!);
    const before = cpuAndSwitches(agent.pid!);
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000)); // the idle period measured
    const after = cpuAndSwitches(agent.pid!);
    const idleCpuPercent = Math.round(((after.cpuS - before.cpuS) / IDLE_SECONDS) * 1000) / 10;
    const idleWakeupsPerSecond = Math.round((after.switches - before.switches) / IDLE_SECONDS);
    let busyMaxMiB = idleMiB;
    let written = 0;
    const line = (i: number) => (i % 100 === 0 ? `boom ${i}\n` : `I1123 07:00:00.000000 1234 app.go:42] request ${i} served in 3ms from 10.0.0.1 user-agent=curl/8.0\n`);
    for (let tick = 0; tick < 100; tick++) {
      const started = Date.now();
      await appendFile(log, Array.from({ length: 1000 }, (_, i) => line(written + i)).join(''));
      written += 1000;
      if (tick % 5 === 0) busyMaxMiB = Math.max(busyMaxMiB, rssMiB(agent.pid!));
      await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - started))));
    }
    busyMaxMiB = Math.max(busyMaxMiB, rssMiB(agent.pid!));
    // Proof that the lines were read: the 1 in 100 that match are counted on their Abnormal.
    const matchesCounted = await waitFor('the matches to be counted', async () => {
      for (const file of (await readdir(path.join(state, 'abnormals'))).filter((f) => !f.startsWith('.'))) {
        const count = (parse(await readFile(path.join(state, 'abnormals', file), 'utf8')) as Abnormal).spec.occurrences?.count ?? 0;
        if (file.startsWith('bench-boom-') && count >= written / 100) return count;
      }
      return undefined;
    }, 30_000);
    return { idleMiB, busyMaxMiB, linesWritten: written, matchesCounted, idleCpuPercent, idleWakeupsPerSecond };
  } finally {
    agent.kill('SIGTERM');
    await agent.exited;
  }
}
