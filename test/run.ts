// The test run: `npm test` (everything), or `npm test -- LAYER` for one layer, or parts of file names
// to run only those files (`npm test -- integration kmsg`). A word that is also a tag — tests titled
// "WORD: …", such as `security` — runs exactly the tests so titled, in whatever file they are
// (`npm test -- security`: the attacks of docs/security.md).
//
// The layers are the folders under test/, each a kind of test by what it needs:
//   unit         nothing but Node: no root, no apiserver (processors as plain objects, the file store
//                in a temporary directory)
//   integration  a real kube-apiserver + etcd, started here once for the whole run; real files,
//                sockets, /dev/kmsg and the journal (tests that need root say so and skip without it)
//   node         a real node as well: containerd, runc and the kubelet joined to that apiserver (root)
// Test files are found by pattern (test/LAYER/**/*.test.ts), compiled to dist/ by `npm test`.
//
// Global setup lives here because Node 20's test runner has none: when a layer that needs the cluster
// is selected and no NODEMEDIC_TEST_KUBECONFIG is given, start the test cluster once, install the CRDs,
// hand the kubeconfigs to every test file through the environment, and stop the cluster at the end.
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { applyAgentRBAC, applyCRDs } from './helpers/kube.js';
import { killAll, processTable, treesChildrenFirst, type ProcessEntry } from './helpers/processes.js';
import { REPO_ROOT, startCluster, type TestCluster } from './cluster/cluster.js';

const LAYERS = ['unit', 'integration', 'node'] as const;
const NEEDS_CLUSTER = new Set<string>(['integration', 'node']);

/** The test files of a layer: test/LAYER/**\/*.test.ts, in name order. */
function testFiles(layer: string): string[] {
  const dir = path.join(REPO_ROOT, 'test', layer);
  return (readdirSync(dir, { recursive: true, encoding: 'utf8' }) as string[])
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => path.join('test', layer, f));
}

const args = process.argv.slice(2);
const requested = args.filter((a) => (LAYERS as readonly string[]).includes(a));
const only = args.filter((a) => !(LAYERS as readonly string[]).includes(a));
const layers = requested.length > 0 ? requested : [...LAYERS];
const compiled = (file: string) => path.join(REPO_ROOT, 'dist', file.replace(/\.ts$/, '.js'));
const all = layers.flatMap((layer) => testFiles(layer).map((file) => ({ layer, file, source: readFileSync(path.join(REPO_ROOT, file), 'utf8') })));
/** Words used as tags: some test's title starts with "WORD: ". */
const tags = only.filter((word) => all.some(({ source }) => source.includes(`test('${word}: `)));
const selected = all.filter(({ file, source }) =>
  only.length === 0 || only.some((o) => file.includes(o)) || tags.some((tag) => source.includes(`test('${tag}: `)));
const testNamePatterns = tags.length > 0 ? tags.map((tag) => new RegExp(`^${tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `)) : undefined;
const files = selected.map(({ file }) => compiled(file));
if (files.length === 0) {
  console.error(`no test file matches ${only.join(', ')}`);
  process.exit(2);
}
const layerOf = new Map(selected.map(({ layer, file }) => [compiled(file), layer]));

// Everything this run makes on disk goes under a directory of its own (TMPDIR, which the test files
// and what they start inherit): so what it leaves behind can be told from what another run, going on
// at the same time on the same machine, is still using.
const runDir = mkdtempSync(path.join(tmpdir(), 'nodemedic-run-'));
process.env.TMPDIR = runDir;

let cluster: TestCluster | undefined;
const counts = { passed: 0, failed: 0, skipped: 0 };
const byLayer = new Map<string, typeof counts>(layers.map((layer) => [layer, { passed: 0, failed: 0, skipped: 0 }]));
const count = (file: string | undefined, what: keyof typeof counts) => {
  counts[what]++;
  const layer = byLayer.get(layerOf.get(file ?? '') ?? '');
  if (layer) layer[what]++;
};
// Ctrl-C or a CI timeout: take the cluster down rather than leave etcd and the apiserver running.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the test cluster`);
    void (cluster?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}
try {
  if (selected.some(({ layer }) => NEEDS_CLUSTER.has(layer))) await globalSetup();
  await runFiles();
} catch (err) {
  console.error('the test run itself failed:', err);
  counts.failed++;
} finally {
  await cluster?.stop();
}
// Tests leave nothing behind: a process of theirs still alive now — a container of a test node, an
// agent, a shim — is a failure, and is ended here so it cannot disturb the next run.
// With each its whole tree, children first: a container a surviving shim serves names no test
// directory, and killed after its shim it would live on, re-parented to init.
const survivors = survivingTestProcesses();
if (survivors.length > 0) {
  const table = processTable();
  const trees = treesChildrenFirst(table, survivors.map((p) => p.pid)).filter((pid, i, all) => all.indexOf(pid) === i);
  const described = trees.map((pid) => `  pid ${pid}: ${table.find((p) => p.pid === pid)?.cmdline.replace(/\u0000/g, ' ').trim() ?? '(gone)'}`);
  console.error(`${trees.length} process(es) started by the tests outlived them (killed now):\n${described.join('\n')}`);
  counts.failed++;
  killAll(trees);
}
// Kept after a failure: the logs the failed tests point to (a test node's kubelet, an agent) are there.
if (counts.failed === 0) rmSync(runDir, { recursive: true, force: true, maxRetries: 3 });
else console.log(`kept for the failures (their logs): ${runDir}`);
for (const [layer, c] of byLayer) console.log(`${layer}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`);
console.log(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
process.exitCode = counts.failed > 0 || counts.passed === 0 ? 1 : 0;

async function globalSetup() {
  if (process.env.NODEMEDIC_TEST_KUBECONFIG) {
    console.log(`using the cluster of NODEMEDIC_TEST_KUBECONFIG=${process.env.NODEMEDIC_TEST_KUBECONFIG}`);
  } else {
    const started = Date.now();
    cluster = await startCluster();
    process.env.NODEMEDIC_TEST_KUBECONFIG = cluster.kubeconfigs.admin;
    process.env.NODEMEDIC_TEST_AGENT_KUBECONFIG = cluster.kubeconfigs.agent;
    process.env.NODEMEDIC_TEST_UNPRIVILEGED_KUBECONFIG = cluster.kubeconfigs.unprivileged;
    process.env.NODEMEDIC_TEST_KUBE_BIN = cluster.binDir;
    console.log(`test cluster: etcd + kube-apiserver at ${cluster.server}, ready in ${Date.now() - started} ms`);
  }
  await applyCRDs();
  await applyAgentRBAC();
}

async function runFiles() {
  // Each file has 10 minutes, unless NODEMEDIC_TEST_FILE_TIMEOUT_S says otherwise. The real shim deadlock
  // (node-shim-deadlock) takes 3.5–4.5 minutes a run on a busy 2-core machine, its 150 exec'd waiters
  // most of it, and once took more than 5 with the other node files beside it; NODEMEDIC_DEADLOCK_RUNS=5
  // needs NODEMEDIC_TEST_FILE_TIMEOUT_S=1500.
  const timeout = Number(process.env.NODEMEDIC_TEST_FILE_TIMEOUT_S ?? 600) * 1000;
  const stream = run({ files, concurrency: Math.max(2, availableParallelism()), timeout, ...(testNamePatterns ? { testNamePatterns } : {}) });
  // Count tests, not the suites (describe blocks) that group them, nor those a tag left out.
  stream.on('test:pass', (event) => {
    if (event.details.type === 'suite' || event.skip === 'test name does not match pattern') return;
    count(event.file, event.skip || event.todo ? 'skipped' : 'passed');
  });
  stream.on('test:fail', (event) => {
    if (event.details.type !== 'suite') count(event.file, 'failed');
  });
  await new Promise<void>((resolve, reject) => {
    stream.compose(new spec()).on('data', (chunk: string) => process.stdout.write(chunk)).on('end', resolve).on('error', reject);
  });
}

/**
 * Processes this run's tests started that are still alive: any whose command line, root or working
 * directory is under the run's directory — a test node's shims (their containerd socket is there) and
 * containers (their root filesystem is), an agent, a follower. The runner and its parents are not.
 */
function survivingTestProcesses(): ProcessEntry[] {
  const table = processTable();
  const ancestors = new Set<number>();
  for (let pid = process.pid; pid > 1 && !ancestors.has(pid); pid = table.find((p) => p.pid === pid)?.ppid ?? 1) ancestors.add(pid);
  const link = (pid: number, what: string) => {
    try {
      return readlinkSync(`/proc/${pid}/${what}`);
    } catch {
      return ''; // exited meanwhile, or not ours to read
    }
  };
  return table.filter(({ pid, cmdline }) => !ancestors.has(pid) && (cmdline.includes(runDir) || link(pid, 'root').startsWith(runDir) || link(pid, 'cwd').startsWith(runDir)));
}
