// `npm run stress`: the suites that take minutes and are not part of `npm test` — the bad days a node
// has (stress scenarios: an apiserver outage with a restart, SIGKILLs, log rotation under load, a full
// state directory) and property-based fuzzing of every input from outside. Prints two tables; a whole
// run writes them to docs/stress.md with the machine, the Node version and the commit. Exits 1 when a
// scenario misses what it demands, on any crash, or on any line that cost over 10 ms of matching.
// `npm run stress -- fuzz rotation` runs only those parts (fuzz, rotation, full, outage, kills).
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../cluster/cluster.js';
import { shippedLine } from '../helpers/agent.js';
import { apiserverOutage } from './apiserver-outage.js';
import { fullStateDirectory } from './full-disk.js';
import { fuzz, type FuzzResult } from './fuzz.js';
import { rotation } from './rotation.js';
import { teardowns, type ScenarioResult } from './scenario.js';
import { sigkills } from './sigkills.js';

const scale = Number(process.env.NODEMEDIC_STRESS_SCALE ?? '1');
const SCENARIOS: Record<string, () => Promise<ScenarioResult>> = {
  outage: () => apiserverOutage(60, 50),
  kills: () => sigkills(20),
  rotation: () => rotation(120, 5000),
  full: () => fullStateDirectory(),
};
// Ctrl-C or a timeout: undo what the scenarios running now have set up (clusters, mounts) first.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping what the scenarios started`);
    void Promise.allSettled([...teardowns].map((teardown) => teardown())).finally(() => process.exit(130));
  });
}
const asked = process.argv.slice(2);
const wanted = (part: string) => asked.length === 0 || asked.includes(part);

const started = Date.now();
const scenarios: ScenarioResult[] = [];
for (const [name, run] of Object.entries(SCENARIOS)) {
  if (!wanted(name)) continue;
  console.log(`stress: ${name} …`);
  const result = await run().catch((err: Error): ScenarioResult => ({ scenario: name, figure: `did not finish: ${err.message}`, ok: false }));
  console.log(`  ${result.ok ? 'ok' : 'FAILED'}: ${result.figure}`);
  scenarios.push(result);
}
let fuzzed: FuzzResult[] = [];
if (wanted('fuzz')) {
  console.log('stress: fuzz …');
  fuzzed = await fuzz(scale);
}
const minutes = ((Date.now() - started) / 60_000).toFixed(1);

const scenarioTable = ['| scenario | measured | as demanded |', '|---|---|---|', ...scenarios.map((r) => `| ${r.scenario} | ${r.figure} | ${r.ok ? 'yes' : '**no**'} |`)].join('\n');
const fuzzTable = ['| target | cases | crashes | what happened |', '|---|---|---|---|', ...fuzzed.map((r) => `| ${r.target} | ${r.cases} | ${r.crashes} | ${r.note} |`)].join('\n');
if (scenarios.length > 0) console.log(`\n${scenarioTable}`);
if (fuzzed.length > 0) console.log(`\n${fuzzTable}`);

const commit = (() => {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'agent', 'collectors', 'diagnosers', 'recoverers'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    return dirty ? `${head} with uncommitted changes` : head;
  } catch {
    return 'unknown';
  }
})();
if (asked.length === 0) {
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  await writeFile(path.join(REPO_ROOT, 'docs/stress.md'), `# Stress

Written by \`npm run stress\` (test/stress/, about ${Math.ceil(Number(minutes))} minutes; not part of \`npm test\`).
Last run: ${new Date().toISOString().slice(0, 10)}, commit ${commit}, ${machine}.

## Bad days

Each scenario runs the real \`nodemedic agent\` process as it is shipped (the rotation one, the agent's
file follower in this process) against real parts: its own etcd + kube-apiserver, a tmpfs that fills up, a file rotated
under load. The worst event-loop delay is Node's \`monitorEventLoopDelay\` as the agent's /metrics
reports it (prom-client's \`nodejs_eventloop_lag_max_seconds\`, read every half second), less the
100 ms between its samples, which the monitor counts in. As shipped: \`${shippedLine()}\`.

${scenarioTable}

## Fuzzing

Property-based fuzzing with fast-check of every input that comes from outside the agent. A crash is
anything thrown but the typed refusal a bad input gets; rule evaluations are timed one by one.

${fuzzTable}
`);
}
const crashes = fuzzed.reduce((sum, r) => sum + r.crashes, 0);
const slow = fuzzed.reduce((sum, r) => sum + Number(/(\d+) over 10 ms/.exec(r.note)?.[1] ?? 0), 0);
const missed = scenarios.filter((r) => !r.ok).length;
console.log(`\n${minutes} min; scenarios missed: ${missed}; crashes: ${crashes}; lines over 10 ms of matching: ${slow}`);
process.exitCode = missed > 0 || crashes > 0 || slow > 0 ? 1 : 0;
