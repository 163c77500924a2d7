// What a processor's reply may and may not change (agent/processors/contract.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { interpretReply, renderReply } from '../../agent/processors/contract.js';

const sent: Abnormal = {
  apiVersion: 'nodemedic.io/v1alpha1',
  kind: 'Abnormal',
  metadata: { name: 'a', namespace: 'ns', resourceVersion: '7' },
  spec: { source: 'Custom', nodeName: 'n' },
  status: { phase: 'Diagnosing', reason: 'Collected', context: { facts: 1, 'nodemedic.io/recovery': [] } },
};
const withStatus = (status: object) => ({ ...sent, status: { ...sent.status, ...status } });

test('a diagnoser reply that identifies: the claim, and only what changed', () => {
  assert.deepEqual(interpretReply('Diagnoser', sent, withStatus({ identifiable: true, message: 'found it', context: { ...sent.status!.context, dump: 'x' } })), {
    ok: true, identified: true, message: 'found it', context: { dump: 'x' },
  });
  assert.deepEqual(interpretReply('Diagnoser', sent, {}), { ok: true, identified: false }, 'an empty object is a valid "not identified"');
});

test('replies that rewrite what is not theirs fail, saying what they touched', () => {
  const cases: Array<[unknown, string, RegExp]> = [
    [{ ...sent, spec: { ...sent.spec, nodeName: 'other' } }, 'ReplyRewritesSpec', /spec/],
    [{ ...sent, metadata: { ...sent.metadata, labels: { a: 'b' } } }, 'ReplyRewritesMetadata', /metadata/],
    [{ ...sent, kind: 'Pod' }, 'ReplyRewritesMetadata', /kind/],
    [withStatus({ phase: 'Succeeded' }), 'ReplyRewritesPhase', /status\.phase/],
    [withStatus({ conditions: [] }), 'ReplyRewritesStatus', /status\.conditions/],
    [withStatus({ diagnoser: { namespace: 'x', name: 'y' } }), 'ReplyRewritesStatus', /status\.diagnoser/],
    [withStatus({ recoverable: true }), 'ReplyRewritesStatus', /may not set status\.recoverable/],
    [withStatus({ context: { 'nodemedic.io/recovery': [{ recoverer: 'forged' }] } }), 'ReplyRewritesStatus', /nodemedic\.io\/recovery/],
    [withStatus({ output: 42 }), 'InvalidReply', /status\.output: must be a string/],
    [[1, 2], 'InvalidReply', /an array/],
    ['text', 'InvalidReply', /got string/],
    [null, 'InvalidReply', /got object/],
  ];
  for (const [reply, reason, message] of cases) {
    const outcome = interpretReply('Diagnoser', sent, reply);
    assert.equal(outcome.ok, false, JSON.stringify(reply).slice(0, 80));
    if (!outcome.ok) {
      assert.equal(outcome.reason, reason);
      assert.match(outcome.message, message);
    }
  }
});

test('an output too long for the API is cut with a note, not refused', () => {
  const outcome = interpretReply('InformationCollector', sent, withStatus({ output: 'y'.repeat(300_000) }));
  assert.ok(outcome.ok);
  assert.ok(outcome.ok && outcome.output!.length <= 256 * 1024);
  assert.match(outcome.ok ? outcome.output! : '', /truncated by nodemedic: kept 262144 of 300000 characters/);
});

test('renderReply is what interpretReply reads back', () => {
  const outcome = { ok: true as const, recovered: true, message: 'killed pid 42', context: { killed: 42 } };
  const reply = renderReply('Recoverer', withStatus({ phase: 'Recovering' }), outcome);
  assert.deepEqual(interpretReply('Recoverer', withStatus({ phase: 'Recovering' }), reply), outcome);
});

test('a reply whose status is not an object is refused with a reason, not thrown on (found by fuzzing)', () => {
  const sent = { apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal', metadata: { name: 'a', namespace: 'default' }, spec: { source: 'Custom' as const, nodeName: 'n' } };
  for (const status of [true, 'identified', 7, null, ['x']]) {
    const outcome = interpretReply('Diagnoser', sent, { status });
    assert.ok(!outcome.ok && outcome.reason === 'InvalidReply', JSON.stringify(outcome));
  }
});
