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
import { imageNodeFlags, shippedLine } from '../helpers/agent.js';
import { keptSection } from './doc-section.js';
import { benchRulesWith } from './rules.js';

const asked = process.argv.slice(2);
const wanted = (part: string) => asked.length === 0 || asked.includes(part);
const sections: string[] = [];
const section = (text: string) => {
  console.log(`${text}\n`);
  sections.push(text);
};

if (wanted('rules')) {
  const shipped = benchRulesWith(imageNodeFlags());
  const optimizing = benchRulesWith([]);
  section(['## Log rules (the default kernel, kubelet and containerd rule sets, one core)', '',
    `Each line through every rule set, in a node started as the image starts it (\`${imageNodeFlags().join(' ')}\`: no optimizing`,
    'compiler) and, for comparison, in a plain node. Only the lines that hold a literal some rule needs get this',
    'far: the agent passes over the others a chunk at a time ("the whole agent" below).', '',
    '| line | chars | ns per line, as shipped | lines per second, as shipped | ns per line, plain node |', '|---|---|---|---|---|',
    ...shipped.map((r, i) => `| ${r.case} | ${r.chars} | ${r.nsPerLine.toLocaleString('en')} | ${r.linesPerSecond.toLocaleString('en')} | ${optimizing[i]!.nsPerLine.toLocaleString('en')} |`)].join('\n'));
}
if (wanted('corpus')) {
  // These VMs' speed drifts within minutes (docs/design.md): five pairs, each the limit and the agent
  // side by side, and the median pair reported with every ratio beside it.
  const pairs = [];
  for (let i = 0; i < 5; i++) pairs.push(await benchCorpus(1_000_000));
  pairs.sort((a, b) => a.ratio - b.ratio);
  const c = pairs[2]!;
  section(['## The whole agent on a 1 M-line kernel log', '',
    'The `nodemedic agent` process on the file store, the built-in kernel rules on a file, the default',
    'built-in processors, every Abnormal it raises processed; against plain Node reading the same file',
    'with one combined prefilter of the rules\' literals (the limit). CPU seconds, the agent\'s with its',
    'children\'s.', '',
    '| | lines | CPU s | lines per CPU s |', '|---|---|---|---|',
    `| plain Node, prefilter only (${c.limitMatches} lines pass it) | ${c.lines.toLocaleString('en')} | ${c.limitCpuS.toFixed(2)} | ${Math.round(c.lines / c.limitCpuS).toLocaleString('en')} |`,
    `| the agent (${c.abnormals} of ${c.faults} faults raised and processed) | ${c.lines.toLocaleString('en')} | ${c.agentCpuS.toFixed(2)} | ${Math.round(c.lines / c.agentCpuS).toLocaleString('en')} |`,
    '', `Ratio: **${c.ratio.toFixed(2)}** of the limit: the median of five pairs of runs (${pairs.map((p) => p.ratio.toFixed(2)).join(', ')}).`].join('\n'));
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
  const runs = await benchMemory();
  const row = (label: string, cell: (m: (typeof runs)[number]) => string) => `| ${label} | ${runs.map(cell).join(' | ')} |`;
  const split = (r: { rssMiB: number; anonMiB: number; binaryMiB: number }) => `**${r.rssMiB}** (${r.anonMiB} anonymous, ${r.binaryMiB} of the node binary's pages)`;
  section(['## Memory: where it goes', '',
    `Resident MiB, each process started as the agent is shipped (\`${shippedLine()}\`). A dependency's figure is`,
    'what importing it alone adds to a bare `node`; they overlap (the node binary\'s pages above all), so they do not add up.',
    'Idle: 60 s after the agent started. The kube store is the agent as the DaemonSet runs it (the built-in kernel',
    'rules on /dev/kmsg, journald, stuck pods, events) against a real apiserver; "anonymous" is the heap and',
    'malloc, "the node binary\'s pages" the code and built-in data of `node` itself that the process touched.', '',
    `| | ${runs.map((m) => `Node ${m.version.replace(/^v/, '')}`).join(' | ')} |`, `|---|${runs.map(() => '---').join('|')}|`,
    row('bare `node`', (m) => String(m.bare)),
    ...runs[0]!.deps.map((d, i) => row(`+ ${d.name}${d.lazy ? ' (loaded only when used)' : ''}`, (m) => `+${m.deps[i]!.addsMiB}`)),
    row('all the agent loads at start, imported together', (m) => String(m.allAtStart)),
    row('the agent, file store, idle', (m) => split(m.fileIdle)),
    row('…its CPU and wakeups idle (over 20 s)', (m) => `${m.fileIdle.cpuPercent} % of a core, ${m.fileIdle.wakeupsPerSecond}/s`),
    row('the agent, kube store, idle', (m) => split(m.kubeIdle)),
    row('…its V8 heap (used of total)', (m) => `${m.kubeIdle.heapUsedMiB} of ${m.kubeIdle.heapTotalMiB}`),
    row('…the agent\'s own code and state (idle − all it loads at start)', (m) => String(Math.round((m.kubeIdle.rssMiB - m.allAtStart) * 10) / 10)),
    row('the agent, kube store, idle again after processing an Abnormal (a hung task on /dev/kmsg), probed every 10 s and scraped every 15 s for 60 s', (m) => split(m.kubeServing)),
    row('the agent, kube store, reading 50,000 lines/s for 10 s: at most', (m) => `**${m.kubeBusy.maxMiB}** (${m.kubeBusy.lines.toLocaleString('en')} lines, ${m.kubeBusy.matchesCounted} matches counted)`),
  ].join('\n'));
}

if (asked.length === 0) {
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  const doc = path.join(REPO_ROOT, 'docs/benchmarks.md');
  const fleet = await keptSection(doc, 'fleet'); // npm run fleet's figures, kept as they are
  await writeFile(doc, `# Benchmarks

Written by \`npm run bench\` (test/bench/). Last run: ${new Date().toISOString().slice(0, 10)}, commit ${commit}, ${machine}.
Speed and memory are measured here, never asserted in tests. The bad days (outages, kills, rotation,
a full disk) and fuzzing are in [stress.md](stress.md).

${sections.join('\n\n')}
${fleet ? `\n${fleet}\n` : ''}`);
}
