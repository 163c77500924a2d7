// Garbage collection of finished Abnormals on the real apiserver: this node's agent deletes its node's
// finished Abnormals once their phase's time to live has passed, and beyond its cap the oldest first;
// it never touches an unfinished one, another node's, or one changed since it read it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NODE_LABEL } from '../../agent/api/crds.js';
import type { RunningAgent } from '../../agent/agent.js';
import type { Abnormal, AbnormalStatus } from '../../agent/api/types.generated.js';
import { nodeLabelValue } from '../../agent/store/kube.js';
import { garbageOf } from '../../agent/pipeline/garbage.js';
import { startKubeAgent } from '../helpers/agent.js';
import { ABNORMALS, GROUP, VERSION, abnormal, apiCode, createAbnormal, customObjects, testNamespace } from '../helpers/kube.js';

const ns = await testNamespace('gc');
const node = `gc-${ns}`;
let agent: RunningAgent;

const HOUR = 3600_000;
/** A finished (or not) Abnormal of `nodeName` whose last phase change was `agoMs` ago. */
async function made(name: string, phase: AbnormalStatus['phase'], agoMs: number, nodeName = node): Promise<Abnormal> {
  const created = await createAbnormal(abnormal(name, ns, { nodeName }, { [NODE_LABEL]: nodeLabelValue(nodeName) }));
  const at = new Date(Date.now() - agoMs).toISOString().replace(/\.\d+Z$/, 'Z');
  const status: AbnormalStatus = {
    phase,
    conditions: [{ type: 'InformationCollected', status: 'True', reason: 'Collected', message: 'made by the test', lastTransitionTime: at }],
  };
  return (await customObjects().replaceNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name, body: { ...created, status } })) as Abnormal;
}
const exists = (name: string) =>
  customObjects().getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name }).then(() => true, (err) => {
    if (apiCode(err) === 404) return false;
    throw err;
  });

before(async () => {
  await made('succeeded-old', 'Succeeded', 2 * HOUR);
  await made('succeeded-new', 'Succeeded', 0);
  await made('failed-old', 'Failed', 2 * HOUR); // within Failed's longer time to live
  await made('unknown-older', 'Unknown', 30 * HOUR);
  await made('unfinished-old', 'Diagnosing', 30 * HOUR);
  await made('other-node-old', 'Succeeded', 30 * HOUR, `other-${ns}`);
  for (const [i, minutes] of [[1, 3], [2, 2], [3, 1]] as const) await made(`capped-${i}`, 'Failed', minutes * 60_000);
  // Made before the agent starts: it would accept a new one of its node (and so change it) at once.
  // Its first round of collection is then awaited below, not guessed at.
  agent = await startKubeAgent(node, {
    abnormalNamespaces: [ns],
    gc: { succeededTTLSeconds: 3600, failedTTLSeconds: 86_400, maxFinished: 1000, intervalSeconds: 86_400 },
  });
});
after(() => agent?.stop());

test('finished Abnormals of this node are deleted after their phase\'s time to live; the rest stay', async () => {
  await agent.gc.collect();
  assert.deepEqual(
    Object.fromEntries(await Promise.all(['succeeded-old', 'succeeded-new', 'failed-old', 'unknown-older', 'unfinished-old', 'other-node-old'].map(async (n) => [n, await exists(n)]))),
    { 'succeeded-old': false, 'succeeded-new': true, 'failed-old': true, 'unknown-older': false, 'unfinished-old': true, 'other-node-old': true },
  );
  assert.deepEqual(agent.gc.deleted, { Succeeded: 1, Unknown: 1 });
});

test('beyond the cap, the oldest finished go first; one changed since it was read stays', async () => {
  // Finished and kept so far: succeeded-new, failed-old and the three capped ones (unfinished-old is
  // being worked on by the agent meanwhile: left out). A cap of three takes the two oldest.
  const kept = new Set(['succeeded-new', 'failed-old', 'capped-1', 'capped-2', 'capped-3']);
  const read = (await agent.store.listOfNode()).filter((a) => kept.has(a.metadata!.name!));
  assert.equal(read.length, 5);
  const garbage = garbageOf(read, Date.now(), { succeededTTLSeconds: 3600, failedTTLSeconds: 86_400, maxFinished: 3 });
  assert.deepEqual(garbage.map((a) => a.metadata?.name), ['failed-old', 'capped-1']);
  // capped-1 is changed after it was read: the delete, conditional on what was read, leaves it.
  const current = (await customObjects().getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: 'capped-1' })) as Abnormal;
  await customObjects().replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: 'capped-1', body: { ...current, metadata: { ...current.metadata, annotations: { touched: 'yes' } } } });
  assert.deepEqual(await Promise.all(garbage.map((a) => agent.store.remove(a))), [true, false]);
  assert.equal(await exists('failed-old'), false, 'the oldest finished');
  assert.equal(await exists('capped-1'), true, 'changed since it was read: not deleted');
  assert.equal(await exists('capped-2'), true);
});
