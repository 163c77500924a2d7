// Log lines per second through the default rule sets on one core, for short, typical and long lines,
// and a worst case for backtracking: long lines full of the characters the patterns look for. Run in
// a node of its own, started with given flags: the image's (without V8's optimizing compilers) or none.
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { DEFAULT_RULE_SETS } from '../../agent/sources/default-rules.js';
import { LogMatcher, compileRuleSet } from '../../agent/sources/rules.js';

export type RulesResult = { case: string; chars: number; nsPerLine: number; linesPerSecond: number };

const CASES: Array<[string, string]> = [
  ['short kernel line (46 chars)', 'audit: type=1400 audit(1700000000.000:2): ok'.padEnd(46, '.')],
  ['matching line (OOM kill, 200 chars)', 'Memory cgroup out of memory: Killed process 3891 (stress) total-vm:266824kB, anon-rss:260928kB, file-rss:1344kB, shmem-rss:0kB, UID:0 pgtables:556kB oom_score_adj:1000'.padEnd(200, ' ')],
  ['typical kubelet line (225 chars)', `I1123 07:00:00.000000    1234 kubelet.go:2183] "SyncLoop (PLEG): event for pod" pod="default/web-0" event=&{ID:4f1c Type:ContainerStarted Data:${'a'.repeat(120)}}`.slice(0, 225)],
  ['long line (4 KiB)', `level=info msg="${'x'.repeat(4096 - 20)}"`],
  ['adversarial long line (4 KiB of "task :1 blocked ")', 'task :1 blocked '.repeat(256)],
];

export function benchRules(): RulesResult[] {
  const results: RulesResult[] = [];
  for (const [name, line] of CASES) {
    const matchers = DEFAULT_RULE_SETS.map((spec) => new LogMatcher(compileRuleSet(spec, spec.source)));
    const run = (n: number) => {
      for (let i = 0; i < n; i++) for (const m of matchers) m.push(line);
    };
    run(2000); // warm up the JIT
    let n = 1000;
    let elapsed = 0;
    while (elapsed < 500) {
      n *= 2;
      const start = performance.now();
      run(n);
      elapsed = performance.now() - start;
    }
    const nsPerLine = (elapsed * 1e6) / n;
    results.push({ case: name, chars: line.length, nsPerLine: Math.round(nsPerLine), linesPerSecond: Math.round(1e9 / nsPerLine) });
  }
  return results;
}

/** benchRules in a node started with `nodeFlags`. */
export function benchRulesWith(nodeFlags: string[]): RulesResult[] {
  const program = `import { benchRules } from ${JSON.stringify(import.meta.url)}; console.log(JSON.stringify(benchRules()));`;
  return JSON.parse(execFileSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', program], { encoding: 'utf8' })) as RulesResult[];
}
