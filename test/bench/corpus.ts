// The whole agent on a 1 M-line kernel log: the real `nodemedic agent` process on the file store, the
// built-in kernel rules reading a file, the default built-in processors, every Abnormal it raises
// processed — against the limit: plain Node, in this process, reading the same file and testing each
// line against one combined prefilter of the same rules' literals. Both in CPU seconds (the agent's
// with its children's), every count checked.
import { readFileSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { isTerminal } from '../../agent/api/phase.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { KERNEL_RULES } from '../../agent/sources/default-rules.js';
import { compileRuleSet } from '../../agent/sources/rules.js';
import { asShipped, spawnAgent, startedPort, waitFor } from '../helpers/agent.js';

export type CorpusResult = {
  lines: number; faults: number; limitCpuS: number; limitMatches: number; agentCpuS: number; abnormals: number; ratio: number;
};

/** Ordinary kernel lines of a busy container node, and the faults among them (one of each, far apart). */
const ORDINARY = [
  (i: number) => `audit: type=1400 audit(1764500000.${i % 1000}:${i}): apparmor="DENIED" operation="open" profile="cri-containerd.apparmor.d" name="/proc/${i}/stat" pid=${i} comm="node"`,
  (i: number) => `cni0: port ${i % 64}(veth${(i * 2654435761 >>> 0).toString(16).slice(0, 8)}) entered forwarding state`,
  (i: number) => `IPv6: ADDRCONF(NETDEV_CHANGE): veth${(i * 40503 >>> 0).toString(16)}: link becomes ready`,
  (i: number) => `eth0: renamed from tmp${i}`,
  (i: number) => `overlayfs: upper fs does not support RENAME_WHITEOUT (pid ${i})`,
  (i: number) => `nf_conntrack: default automatic helper assignment has been turned off for security reasons (${i})`,
];
const FAULTS = [
  'Out of memory: Killed process 4242 (java) total-vm:8388608kB, anon-rss:7340032kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:14680kB oom_score_adj:0',
  'EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0',
  'I/O error, dev sdb, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0',
  'XFS (sdc1): Corruption detected. Unmount and run xfs_repair',
  'rcu: INFO: rcu_sched detected stalls on CPUs/tasks:',
];

function corpus(lines: number): string {
  const every = Math.floor(lines / (FAULTS.length + 1));
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const fault = i > 0 && i % every === 0 ? FAULTS[i / every - 1] : undefined;
    out.push(`${fault ?? ORDINARY[i % ORDINARY.length]!(i)}\n`);
  }
  return out.join('');
}

const cpuSeconds = (pid: number) => {
  // utime, stime, and those of its children (node-facts' and others' processes, once reaped)
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
};

/** Plain Node's limit on this file: read, split into lines, one combined prefilter per line. */
async function limit(file: string): Promise<{ cpuS: number; lines: number; matches: number }> {
  const literals = compileRuleSet(KERNEL_RULES, 'kernel').rules.map((r) => r.literal).filter((l): l is string => Boolean(l));
  const prefilter = new RegExp(literals.map((l) => l.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'));
  const started = process.cpuUsage();
  let lines = 0;
  let matches = 0;
  let partial = '';
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: 64 * 1024 })) {
    const text = partial + (chunk as string);
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      if (prefilter.test(text.slice(start, nl))) matches++;
      lines++;
      start = nl + 1;
    }
    partial = text.slice(start);
  }
  const used = process.cpuUsage(started);
  return { cpuS: (used.user + used.system) / 1e6, lines, matches };
}

export async function benchCorpus(lineCount = 1_000_000): Promise<CorpusResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-corpus-'));
  try {
    const source = path.join(dir, 'corpus.log');
    await writeFile(source, corpus(lineCount));
    const limitRun = await limit(source);

    const log = path.join(dir, 'kern.log');
    await writeFile(log, '');
    const state = path.join(dir, 'state');
    await mkdir(path.join(state, 'abnormals'), { recursive: true });
    const rules = { kind: 'LogRules', plugin: 'file', logPath: log, source: 'kernel', rules: KERNEL_RULES.rules };
    await writeFile(path.join(dir, 'rules.yaml'), stringify(rules));
    await writeFile(path.join(dir, 'config.yaml'), `sources: {ruleFiles: ["${path.join(dir, 'rules.yaml')}"]}\n`);
    const agent = spawnAgent(['--store', 'file', '--state-dir', state, '--node-name', 'bench', '--config', path.join(dir, 'config.yaml')], path.join(dir, 'agent.log'), asShipped());
    try {
      await startedPort(path.join(dir, 'agent.log'));
      const before = cpuSeconds(agent.pid!);
      // In one write, so that the agent, like the limit, reads with the machine otherwise idle: with
      // the writer streaming beside it on the other core, the agent's same work cost a third more CPU.
      await appendFile(log, await readFile(source));
      const size = (await stat(log)).size;
      const positionFile = path.join(state, 'files', `${encodeURIComponent(log)}.json`);
      await waitFor('every line read', async () => (JSON.parse(await readFile(positionFile, 'utf8').catch(() => '{}')) as { position?: number }).position === size || undefined, 300_000);
      const abnormals = await waitFor(`${FAULTS.length} Abnormals processed`, async () => {
        const all: Abnormal[] = [];
        for (const file of await readdir(path.join(state, 'abnormals'))) {
          if (!file.startsWith('.')) all.push(parse(await readFile(path.join(state, 'abnormals', file), 'utf8')) as Abnormal);
        }
        return all.length >= FAULTS.length && all.every((a) => isTerminal(a.status?.phase)) ? all : undefined;
      }, 300_000);
      const agentCpuS = cpuSeconds(agent.pid!) - before;
      return {
        lines: limitRun.lines, faults: FAULTS.length, limitCpuS: limitRun.cpuS, limitMatches: limitRun.matches, agentCpuS, abnormals: abnormals.length,
        ratio: limitRun.cpuS / agentCpuS,
      };
    } finally {
      agent.kill('SIGTERM');
      await agent.exited;
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
