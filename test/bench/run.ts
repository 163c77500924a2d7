// `npm run bench`: the benchmarks, with the machine they ran on. Figures go into the README.
import { cpus, totalmem } from 'node:os';
import { benchKmsgLatency } from './kmsg-latency.js';
import { benchMemory } from './memory.js';
import { benchRules } from './rules.js';

console.log(`machine: ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}\n`);

console.log('## Log rules (the default kernel, kubelet and containerd rule sets, one core)\n');
console.log('| line | chars | ns per line | lines per second |\n|---|---|---|---|');
for (const r of benchRules()) console.log(`| ${r.case} | ${r.chars} | ${r.nsPerLine.toLocaleString('en')} | ${r.linesPerSecond.toLocaleString('en')} |`);

console.log('\n## /dev/kmsg line → Abnormal in the apiserver\n');
const latency = await benchKmsgLatency(200);
console.log(`${latency.lines} lines: p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms, max ${latency.maxMs} ms`);

console.log('\n## Agent resident memory (file store)\n');
const memory = await benchMemory();
console.log(`idle: ${memory.idleMiB} MiB; reading 10,000 lines/s for 10 s (${memory.linesWritten.toLocaleString('en')} lines, ${memory.matchesCounted} matches counted): at most ${memory.busyMaxMiB} MiB`);
