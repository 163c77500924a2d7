// Splitting a log into lines with a limit (agent/lib/line-splitter.ts, what the file follower uses): a
// line that never ends costs bounded memory — handed on cut at the limit, the rest of it skipped.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineSplitter } from '../../agent/lib/line-splitter.js';

test('lines across chunks; a line longer than the limit is handed on cut, once, and the lines after it as they are', () => {
  const split = new LineSplitter(1024);
  assert.deepEqual(split.push('first li'), []);
  assert.deepEqual(split.push('ne\nsecond\nthi'), ['first line', 'second']);
  assert.equal(split.pending, 'thi');
  assert.deepEqual(split.push('rd\n'), ['third']);
  // 10 MiB with no newline, in pieces as a runaway writer writes them: one cut line, nothing held.
  const out: string[] = [];
  for (let i = 0; i < 40; i++) {
    out.push(...split.push('x'.repeat(256 * 1024)));
    assert.ok(split.pending.length <= 1024, 'nothing of the runaway line is held beyond the limit');
  }
  out.push(...split.push(' end of the long one\nthe next line\n'));
  assert.equal(out.length, 2);
  assert.match(out[0]!, /^x{1024} … \[cut by nodemedic: the line is longer than 1024 characters\]$/);
  assert.equal(out[1], 'the next line');
  assert.equal(split.cut, 1);
});
