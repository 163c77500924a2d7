// Trust model, the holder of the agent's token (docs/security.md): it may write any Abnormal's status,
// for every node — RBAC cannot scope by label. On a2117e0 the pipeline trusted a stored phase and
// status.context.diagnosis: a forged `phase: Recovering` with targets made an agent SIGKILL a process no
// diagnoser had looked at, and the allow-list compared only the executable's name, so a copy of
// /bin/sleep named containerd-shim-runc-v2 was killed. Now the diagnosis is confirmed afresh before any
// recoverer acts, and the signal recoverer kills only a proven shim. Real apiserver, the agent's own
// token, a real victim process.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { NODE_LABEL } from '../../agent/api/crds.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { finished, startKubeAgent } from '../helpers/agent.js';
import { ABNORMALS, GROUP, VERSION, abnormal, createAbnormal, customObjects, testNamespace } from '../helpers/kube.js';
import { isAlive, lookalikeShim } from '../helpers/lookalike.js';

const ns = await testNamespace('sec-provenance');
const node = `node-${ns}`;
const agent = await startKubeAgent(node, { namespace: ns, abnormalNamespaces: [ns], processorNamespaces: [ns] });
after(() => agent.stop());

// The victim: a copy of sleep under a shim's name, as the attack used.
const victim = await lookalikeShim();

test('security: a forged Recovering status naming a process does not make the agent signal it', async () => {
  const api = customObjects('agent'); // what a stolen agent token may do
  const name = 'forged';
  // Made for a node no agent runs on, so nothing works on it while the status is forged...
  const created = (await createAbnormal(abnormal(name, ns, {
    nodeName: 'no-such-node', assignedDiagnosers: [{ namespace: 'builtin', name: 'shim-reaper-deadlock' }], assignedRecoverers: [{ namespace: 'builtin', name: 'signal-process' }],
  }, { [NODE_LABEL]: 'no-such-node' }), 'agent')) as Abnormal;
  const forged = (await api.replaceNamespacedCustomObjectStatus({
    group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name,
    body: { ...created, status: {
      phase: 'Recovering', diagnoser: { namespace: 'builtin', name: 'shim-reaper-deadlock' }, identifiable: true,
      context: { diagnosis: { fault: 'ShimReaperDeadlock', targets: [{ pid: victim.pid, startTicks: victim.startTicks }] } },
    } },
  })) as Abnormal;
  // ...then handed to this node's agent, already "Recovering".
  await api.replaceNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name,
    body: { ...forged, metadata: { ...forged.metadata, labels: { [NODE_LABEL]: node } }, spec: { ...forged.spec, nodeName: node } },
  });
  const done = await finished(ns, name, 60_000);
  assert.equal(done.status?.phase, 'Failed');
  assert.equal(done.status?.reason, 'DiagnosisNotConfirmed');
  assert.match(done.status?.message ?? '', /builtin\/shim-reaper-deadlock no longer identifies the fault: no shim goroutine dump to read/);
  assert.equal(isAlive(victim.pid), true, 'the process named in the forged status was not signalled');
});
