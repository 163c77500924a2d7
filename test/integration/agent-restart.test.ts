// The real `nodemedic agent` process, SIGKILLed mid-pipeline and started again: it resumes from the
// last status written, and never calls a recoverer a second time.
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { NODE_LABEL } from '../../agent/api/crds.js';
import { finished, ref, registerProcessor, spawnAgent } from '../helpers/agent.js';
import { abnormal, createAbnormal, getAbnormal, kubeConfig, testNamespace } from '../helpers/kube.js';
import { ProcessorServer, answer } from '../helpers/processor-server.js';

const ns = await testNamespace('restart');
const node = `node-${ns}`;
const server = await new ProcessorServer().start();
const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-restart-'));
const logFile = path.join(dir, 'agent.log');
after(() => server.stop());

// The agent's own identity, as a kubeconfig file for the process (impersonating when the suite runs
// against a user's cluster).
const kubeconfigFile = process.env.NODEMEDIC_TEST_AGENT_KUBECONFIG ?? path.join(dir, 'agent.kubeconfig');
if (!process.env.NODEMEDIC_TEST_AGENT_KUBECONFIG) await writeFile(kubeconfigFile, kubeConfig('agent').exportConfig());
const config = path.join(dir, 'config.yaml');
await writeFile(config, `abnormalNamespaces: ["${ns}"]\nprocessorNamespaces: ["${ns}"]\nevents: {enabled: false}\n`);
// Its own state directory: the recovery history kept there must not be shared with other runs.
const agent = () => spawnAgent(['--store', 'kube', '--state-dir', dir, '--node-name', node, '--kubeconfig', kubeconfigFile, '--config', config], logFile);

/** A route that hangs on its first call (telling the test it was called) and answers later calls. */
function hangOnce(path: string, reply: (a: Parameters<typeof answer>[0]) => unknown) {
  let called!: () => void;
  const firstCall = new Promise<void>((resolve) => (called = resolve));
  let calls = 0;
  const url = server.route(path, (a) => {
    if (++calls > 1) return reply(a);
    called();
    return new Promise(() => {}); // never answers: the agent dies meanwhile
  });
  return { url, firstCall };
}

test('killed while diagnosing, the agent resumes the diagnosis and recovers once', async () => {
  const diagnoser = hangOnce('/diagnose', (a) => answer(a, { identifiable: true }));
  await registerProcessor('diagnosers', ns, 'hang-once', { url: diagnoser.url });
  await registerProcessor('recoverers', ns, 'fix', { url: server.route('/fix', (a) => answer(a, { recoverable: true })) });

  const first = agent();
  await createAbnormal(abnormal('killed-diagnosing', ns, {
    nodeName: node, assignedDiagnosers: [ref(ns, 'hang-once')], assignedRecoverers: [ref(ns, 'fix')],
  }, { [NODE_LABEL]: node }));
  await diagnoser.firstCall;
  first.kill('SIGKILL');
  await first.exited;
  assert.equal((await getAbnormal(ns, 'killed-diagnosing')).status?.phase, 'Diagnosing', 'the last status written');

  const second = agent();
  try {
    const done = await finished(ns, 'killed-diagnosing');
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status));
    assert.equal(server.count('/diagnose'), 3, 'the diagnosis ran again, and once more to confirm before the recoverer acted');
    assert.equal(server.count('/fix'), 1, 'the recoverer ran once');
  } finally {
    second.kill('SIGTERM');
    assert.equal(await second.exited, 0, 'SIGTERM stops the agent cleanly');
  }
});

test('killed while a recoverer acts, the agent does not act again: Unknown, for a person to look at', async () => {
  const recoverer = hangOnce('/recover', (a) => answer(a, { recoverable: true }));
  await registerProcessor('recoverers', ns, 'hang-recoverer', { url: recoverer.url });
  await registerProcessor('diagnosers', ns, 'yes', { url: server.route('/yes', (a) => answer(a, { identifiable: true })) });

  const first = agent();
  await createAbnormal(abnormal('killed-recovering', ns, {
    nodeName: node, assignedDiagnosers: [ref(ns, 'yes')], assignedRecoverers: [ref(ns, 'hang-recoverer')],
  }, { [NODE_LABEL]: node }));
  await recoverer.firstCall;
  first.kill('SIGKILL');
  await first.exited;

  const second = agent();
  try {
    const done = await finished(ns, 'killed-recovering');
    assert.equal(done.status?.phase, 'Unknown');
    assert.equal(done.status?.reason, 'RecoveryInterrupted');
    assert.match(done.status?.message ?? '', new RegExp(`stopped while ${ns}/hang-recoverer was acting`));
    assert.equal(server.count('/recover'), 1, 'the recoverer was not called again');
  } finally {
    second.kill('SIGTERM');
    await second.exited;
  }
});
