// `npm run bench`: the benchmarks, printed and written to docs/benchmarks.md with the machine, the Node
// version and the commit they ran on. `npm run bench -- rules corpus` runs only those parts (rules,
// corpus, latency, memory) and writes nothing.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../cluster/cluster.js';
import { benchCorpus } from './corpus.js';
import { benchKmsgLatency } from './kmsg-latency.js';
import { benchMemory } from './memory.js';
import { benchRules } from './rules.js';

const asked = process.argv.slice(2);
const wanted = (part: string) => asked.length === 0 || asked.includes(part);
const sections: string[] = [];
const section = (text: string) => {
  console.log(`${text}\n`);
  sections.push(text);
};

if (wanted('rules')) {
  section(['## Log rules (the default kernel, kubelet and containerd rule sets, one core)', '',
    '| line | chars | ns per line | lines per second |', '|---|---|---|---|',
    ...benchRules().map((r) => `| ${r.case} | ${r.chars} | ${r.nsPerLine.toLocaleString('en')} | ${r.linesPerSecond.toLocaleString('en')} |`)].join('\n'));
}
if (wanted('corpus')) {
  const c = await benchCorpus(1_000_000);
  section(['## The whole agent on a 1 M-line kernel log', '',
    'The `nodemedic agent` process on the file store, the built-in kernel rules on a file, the default',
    'built-in processors, every Abnormal it raises processed; against plain Node reading the same file',
    'with one combined prefilter of the rules\' literals (the limit). CPU seconds, the agent\'s with its',
    'children\'s.', '',
    '| | lines | CPU s | lines per CPU s |', '|---|---|---|---|',
    `| plain Node, prefilter only (${c.limitMatches} lines pass it) | ${c.lines.toLocaleString('en')} | ${c.limitCpuS.toFixed(2)} | ${Math.round(c.lines / c.limitCpuS).toLocaleString('en')} |`,
    `| the agent (${c.abnormals} of ${c.faults} faults raised and processed) | ${c.lines.toLocaleString('en')} | ${c.agentCpuS.toFixed(2)} | ${Math.round(c.lines / c.agentCpuS).toLocaleString('en')} |`,
    '', `Ratio: **${c.ratio.toFixed(2)}** of the limit.`].join('\n'));
}
if (wanted('latency')) {
  const { idle, busy, busyCores } = await benchKmsgLatency(200);
  section(['## /dev/kmsg line → Abnormal in the apiserver', '',
    'The real `nodemedic agent` process on the kube store, the default built-in processors on; each line',
    'a symptom of its own, its Abnormal seen by a watch.', '',
    '| machine | lines | p50 ms | p99 ms | max ms |', '|---|---|---|---|---|',
    `| otherwise idle | ${idle.lines} | ${idle.p50Ms} | ${idle.p99Ms} | ${idle.maxMs} |`,
    `| every core busy (${busyCores} busy-looping processes the bench starts) | ${busy.lines} | ${busy.p50Ms} | ${busy.p99Ms} | ${busy.maxMs} |`].join('\n'));
}
if (wanted('memory')) {
  const memory = await benchMemory();
  section(['## The agent idle and busy (file store, a rule file besides the built-in rules)', '',
    `Idle: ${memory.idleMiB} MiB resident; ${memory.idleCpuPercent} % of a core and ${memory.idleWakeupsPerSecond} wakeups a second (context switches of all its threads, over 20 s). ` +
    `Reading 10,000 lines/s for 10 s (${memory.linesWritten.toLocaleString('en')} lines, ${memory.matchesCounted} matches counted): at most ${memory.busyMaxMiB} MiB.`].join('\n'));
}

if (asked.length === 0) {
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  await writeFile(path.join(REPO_ROOT, 'docs/benchmarks.md'), `# Benchmarks

Written by \`npm run bench\` (test/bench/). Last run: ${new Date().toISOString().slice(0, 10)}, commit ${commit}, ${machine}.
Speed and memory are measured here, never asserted in tests. The bad days (outages, kills, rotation,
a full disk) and fuzzing are in [stress.md](stress.md).

${sections.join('\n\n')}
`);
}
