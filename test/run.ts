// The test run: `npm test` (everything) or `npm test -- unit` / `-- integration`.
//
// Global setup lives here because Node 20's test runner has none: when an integration suite is
// selected and no NODEMEDIC_TEST_KUBECONFIG is given, start the test cluster once, install the CRDs,
// hand the kubeconfigs to every test file through the environment, and stop the cluster at the end.
// Test files are listed explicitly (Node 20 does not discover them) and run one process each.
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { applyAgentRBAC, applyCRDs } from './helpers/kube.js';
import { REPO_ROOT, startCluster, type TestCluster } from './cluster/cluster.js';

const SUITES: Record<string, string[]> = {
  unit: [
    'test/unit/api-generated.test.ts',
    'test/unit/phase.test.ts',
    'test/unit/validate.test.ts',
    'test/unit/cli.test.ts',
    'test/unit/contract.test.ts',
    'test/unit/queue.test.ts',
    'test/unit/limits.test.ts',
    'test/unit/config.test.ts',
    'test/unit/rules.test.ts',
    'test/unit/log-source.test.ts',
    'test/unit/sink.test.ts',
    'test/unit/file-store.test.ts',
    'test/unit/shims.test.ts',
    'test/unit/rails.test.ts',
  ],
  integration: [
    'test/integration/crds.test.ts',
    'test/integration/abnormal-api.test.ts',
    'test/integration/rbac.test.ts',
    'test/integration/agent-kube.test.ts',
    'test/integration/agent-restart.test.ts',
    'test/integration/agent-apiserver-restart.test.ts',
    'test/integration/agent-file.test.ts',
    'test/integration/sources-kmsg.test.ts',
    'test/integration/sources-file.test.ts',
    'test/integration/sources-journald.test.ts',
    'test/integration/sources-alerts.test.ts',
    'test/integration/sources-stuck-pods.test.ts',
    'test/integration/probes.test.ts',
    'test/integration/probes-pod.test.ts',
    'test/integration/sources-events.test.ts',
    'test/integration/scripts.test.ts',
    'test/integration/recovery-rails.test.ts',
    'test/integration/node-stuck-pod.test.ts',
    'test/integration/probes-pod-exec.test.ts',
    'test/integration/metrics.test.ts',
    'test/integration/deploy-daemonset.test.ts',
  ],
};

// Arguments: suite names (unit, integration), and/or parts of file names to run only those files,
// e.g. `npm test -- integration kmsg`.
const args = process.argv.slice(2);
const requested = args.filter((a) => SUITES[a]);
const only = args.filter((a) => !SUITES[a]);
const suites = requested.length > 0 ? requested : Object.keys(SUITES);
const compiled = (file: string) => path.join(REPO_ROOT, 'dist', file.replace(/\.ts$/, '.js'));
const files = suites.flatMap((s) => SUITES[s]!).filter((f) => only.length === 0 || only.some((o) => f.includes(o))).map(compiled);
if (files.length === 0) {
  console.error(`no test file matches ${only.join(', ')}`);
  process.exit(2);
}

let cluster: TestCluster | undefined;
const counts = { passed: 0, failed: 0, skipped: 0 };
// Ctrl-C or a CI timeout: take the cluster down rather than leave etcd and the apiserver running.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the test cluster`);
    void (cluster?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}
try {
  if (suites.includes('integration')) await globalSetup();
  await runFiles();
} catch (err) {
  console.error('the test run itself failed:', err);
  counts.failed++;
} finally {
  await cluster?.stop();
}
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
  const stream = run({ files, concurrency: Math.max(2, availableParallelism()), timeout: 5 * 60 * 1000 });
  // Count tests, not the suites (describe blocks) that group them.
  stream.on('test:pass', (event) => {
    if (event.details.type === 'suite') return;
    if (event.skip || event.todo) counts.skipped++;
    else counts.passed++;
  });
  stream.on('test:fail', (event) => {
    if (event.details.type !== 'suite') counts.failed++;
  });
  await new Promise<void>((resolve, reject) => {
    stream.compose(new spec()).on('data', (chunk: string) => process.stdout.write(chunk)).on('end', resolve).on('error', reject);
  });
}
