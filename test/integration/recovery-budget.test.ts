// The cluster-wide recovery budget on the real apiserver, with the agent's own identity and RBAC:
// nodes take slots in one ConfigMap by compare-and-swap; a full budget says no; a slot comes back when
// given, or when its holder's TTL runs out (a node that vanished mid-recovery).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { ClusterBudget } from '../../agent/pipeline/cluster-budget.js';
import { AGENT_NAMESPACE } from '../cluster/cluster.js';
import { kubeConfig } from '../helpers/kube.js';

const name = `budget-${randomBytes(4).toString('hex')}`;
const budgetFor = (nodeName: string, now?: () => number) =>
  new ClusterBudget({ kc: kubeConfig('agent'), namespace: AGENT_NAMESPACE, name, nodeName, maxNodes: 2, ttlSeconds: 60, now });

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
