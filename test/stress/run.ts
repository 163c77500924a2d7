// `npm run stress`: the suites that take minutes and are not part of `npm test`. Today: property-based
// fuzzing of every input from outside (fuzz.ts). Prints a table and writes it to docs/stress.md, with
// the machine and the Node version; exits 1 on any crash or any rule evaluation over 10 ms.
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../cluster/cluster.js';
import { fuzz } from './fuzz.js';

const scale = Number(process.env.NODEMEDIC_STRESS_SCALE ?? '1');
const started = Date.now();
const results = await fuzz(scale);
const seconds = ((Date.now() - started) / 1000).toFixed(0);
const rows = results.map((r) => `| ${r.target} | ${r.cases} | ${r.crashes} | ${r.note} |`);
const table = ['| target | cases | crashes | what happened |', '|---|---|---|---|', ...rows].join('\n');
console.log(table);
const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
await writeFile(path.join(REPO_ROOT, 'docs/stress.md'), `# Stress: fuzzing

Written by \`npm run stress\` (test/stress/): property-based fuzzing with fast-check of every input that
comes from outside the agent. A crash is anything thrown but the typed refusal a bad input gets; rule
evaluations are timed one by one.

Last run: ${new Date().toISOString().slice(0, 10)}, ${machine}, ${seconds} s.

${table}
`);
const crashes = results.reduce((sum, r) => sum + r.crashes, 0);
const slow = /(\d+) over 10 ms/.exec(results[0]?.note ?? '')?.[1];
console.log(`${crashes} crash(es); rule evaluations over 10 ms: ${slow ?? 0}`);
process.exitCode = crashes > 0 || Number(slow ?? 0) > 0 ? 1 : 0;
