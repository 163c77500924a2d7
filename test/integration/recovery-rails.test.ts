// The recovery rails on the real apiserver. The cluster-wide budget, with the agent's own identity and
// RBAC: nodes take slots in one Lease by compare-and-swap; a full budget says no; a slot comes back
// when given, or when its holder's TTL runs out (a node that vanished mid-recovery). And the agent's
// pipeline honouring the cooldown and the rate limit, whatever the recoverer.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { DEFAULTS } from '../../agent/config.js';
import { loadKubeClient } from '../../agent/kube/client.js';
import { ClusterBudget } from '../../agent/pipeline/cluster-budget.js';
import { AGENT_NAMESPACE } from '../cluster/cluster.js';
import { finished, startKubeAgent, waitFor } from '../helpers/agent.js';
import { ABNORMALS, GROUP, VERSION, agentLease, customObjects, getAbnormal, kubeconfigFile, testNamespace } from '../helpers/kube.js';
import { needsRoot } from '../helpers/needs.js';

const name = `budget-${randomBytes(4).toString('hex')}`;
await agentLease(name);
const budgetFor = (nodeName: string, now?: () => number) =>
  new ClusterBudget({ client: loadKubeClient(kubeconfigFile('agent')), namespace: AGENT_NAMESPACE, name, nodeName, maxNodes: 2, ttlSeconds: 60, now });

test('at most maxNodes nodes hold a slot; a node holds one however many recoveries it runs', async () => {
  const [a, b, c] = ['node-a', 'node-b', 'node-c'].map((n) => budgetFor(n));
  // Six takes at once, two per node: exactly two nodes get in, whatever the interleaving.
  const results = await Promise.all([a!, b!, c!, a!, b!, c!].map((budget) => budget.take()));
  assert.equal(new Set(results.flatMap((ok, i) => (ok ? [i % 3] : []))).size, 2, `two nodes got slots: ${results}`);
  const losers = [a!, b!, c!].filter((_, i) => !results[i] && !results[i + 3]);
  assert.equal(losers.length, 1);
  const holders = [a!, b!, c!].filter((x) => !losers.includes(x));
  // One holder gives back one of its (possibly two) recoveries' slots: if it still runs another, it keeps the node's slot.
  for (const holder of holders) {
    const takes = [a!, b!, c!, a!, b!, c!].filter((x, i) => x === holder && results[i]).length;
    for (let i = 0; i < takes; i++) await holder.give();
  }
  assert.equal(await losers[0]!.take(), true, 'a slot freed by give() is taken');
  await losers[0]!.give();
});

test('a holder that vanished loses its slot when its TTL runs out', async () => {
  let now = Date.now();
  const gone1 = budgetFor('vanished-1', () => now);
  const gone2 = budgetFor('vanished-2', () => now);
  assert.equal(await gone1.take(), true);
  assert.equal(await gone2.take(), true);
  const waiting = budgetFor('waiting', () => now);
  assert.equal(await waiting.take(), false);
  now += 61_000;
  assert.equal(await waiting.take(), true);
  await waiting.give();
});

test('the pipeline: a fault back within the cooldown fails for a person; past the hourly limit an Abnormal waits', { skip: needsRoot('its recoverer is a script, which must be owned by root') }, async (t) => {
  const ns = await testNamespace('rails');
  const nodeName = `rails-${ns}`;
  const scripts = await mkdtemp(path.join(tmpdir(), 'nodemedic-rails-scripts-'));
  await writeFile(path.join(scripts, '10-ok.sh'), '#!/bin/sh\necho \'{"recoverable": true, "message": "done"}\'\n');
  await chmod(path.join(scripts, '10-ok.sh'), 0o755);
  const agent = await startKubeAgent(nodeName, {
    namespace: ns, processorNamespaces: [ns],
    scripts: { ...DEFAULTS.scripts, collectors: '', diagnosers: '', recoverers: scripts },
    recovery: { ...DEFAULTS.recovery, maxPerHour: 2, cooldownSeconds: 3600, maxNodesAtOnce: 1000, budgetNamespace: AGENT_NAMESPACE },
  });
  t.after(() => agent.stop());
  const create = (name: string, fingerprint: string) => customObjects().createNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS,
    body: {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'Abnormal', metadata: { name, labels: { 'nodemedic.io/fingerprint': fingerprint } },
      spec: { source: 'Custom', nodeName, skipDiagnosis: true, assignedInformationCollectors: [{ namespace: 'builtin', name: 'node-facts' }], assignedRecoverers: [{ namespace: 'script', name: '10-ok.sh' }] },
    },
  });
  await create('first', 'fp-1');
  assert.equal((await finished(ns, 'first')).status?.phase, 'Succeeded');
  await create('same-fault', 'fp-1');
  const cooled = await finished(ns, 'same-fault');
  assert.equal(cooled.status?.phase, 'Failed');
  assert.equal(cooled.status?.reason, 'RecoveryCooldown');
  assert.match(cooled.status?.message ?? '', new RegExp(`the same fault \\(fp-1\\) was recovered on this node \\d+ s ago \\(${ns}/first\\)`));
  await create('other-fault', 'fp-2');
  assert.equal((await finished(ns, 'other-fault')).status?.phase, 'Succeeded');
  await create('third-in-an-hour', 'fp-3');
  const held = await waitFor('the third recovery to be held back', async () => {
    const a: Abnormal = await getAbnormal(ns, 'third-in-an-hour');
    return a.status?.conditions?.find((c) => c.type === 'Recovered' && c.reason === 'RecoveryRateLimited') ? a : undefined;
  });
  assert.equal(held.status?.phase, 'Recovering', 'waiting, not failed');
  assert.match(held.status?.message ?? '', /2 recoveries on this node in the last hour \(at most 2\)/);
});
