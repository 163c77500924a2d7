import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitContext, fitStatus, fitText } from '../../agent/api/limits.js';
import { validateAbnormalStatus } from '../../agent/api/validate.js';

test('fitText keeps short text and cuts long text to the limit, with a note', () => {
  assert.equal(fitText('short', 10), 'short');
  const cut = fitText('x'.repeat(1000), 100);
  assert.equal(cut.length, 100);
  assert.match(cut, /kept 100 of 1000 characters\]$/);
});

test('fitContext cuts the largest entries until the whole fits, keeping the rest', () => {
  const log = [{ recoverer: 'ns/fix', startedAt: '2026-11-23T07:00:00Z' }];
  const context = { small: { a: 1 }, big: 'y'.repeat(600_000), medium: 'z'.repeat(100_000), 'nodemedic.io/recovery': log };
  const fitted = fitContext(context, 300_000);
  assert.ok(Buffer.byteLength(JSON.stringify(fitted)) <= 300_000);
  assert.deepEqual(fitted.small, { a: 1 });
  assert.deepEqual(fitted['nodemedic.io/recovery'], log, 'the agent\'s own records are never cut');
  assert.equal(fitted.medium, context.medium);
  assert.match((fitted.big as { truncated: string }).truncated, /nodemedic kept \d+ of 600002 bytes/);
  assert.equal(context.big.length, 600_000, 'input not mutated');
});

test('fitStatus makes any status the API accepts', () => {
  const status = fitStatus({
    phase: 'Diagnosing', message: 'm'.repeat(100_000), reason: 'r'.repeat(5000), output: 'o'.repeat(1_000_000),
    context: { dump: 'd'.repeat(2_000_000) },
    conditions: [{ type: 'Identified', status: 'False', message: 'c'.repeat(50_000) }],
  });
  assert.doesNotThrow(() => validateAbnormalStatus(status));
  assert.ok(Buffer.byteLength(JSON.stringify(status)) < 1024 * 1024, 'well under etcd\'s 1.5 MiB');
});
