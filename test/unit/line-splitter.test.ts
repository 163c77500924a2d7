// Splitting a log into lines with a limit (agent/lib/line-splitter.ts, what the file follower uses): a
// line that never ends costs bounded memory — handed on cut at the limit, the rest of it skipped.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
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

test('with a sieve: exactly the lines it finds something in, in order, however the text is cut into chunks', () => {
  const sieve = /Oops: |EXT4-fs error|blocked for more than/g;
  fc.assert(fc.property(
    fc.array(fc.constantFrom<string>('ordinary line', 'Oops: 0002 [#1]', 'x EXT4-fs error (device sda1)', '', 'task blocked for more than 120 s', 'Oops'), { maxLength: 40 }),
    fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 10 }),
    (lines, cuts) => {
      const text = lines.map((l) => `${l}\n`).join('');
      const split = new LineSplitter(1024);
      split.sieve = sieve;
      const got: string[] = [];
      for (let at = 0, i = 0; at < text.length; i++) {
        const size = cuts[i % cuts.length]!;
        split.pushEach(text.slice(at, at + size), (line) => got.push(line));
        at += size;
      }
      // A line begun in one chunk and ended in the next is handed on unsieved (its rules still judge it):
      // so what came through holds every line with a literal, in order, and otherwise only whole lines.
      const wanted = lines.filter((l) => new RegExp(sieve.source).test(l));
      assert.deepEqual(got.filter((l) => new RegExp(sieve.source).test(l)), wanted);
      let from = 0;
      for (const line of got) from = lines.indexOf(line, from) + 1 || assert.fail(`"${line}" is not one of the lines, in order`);
    },
  ));
});

test('a sieve set or cleared while a line is handed on applies from the next line of the same chunk', () => {
  const split = new LineSplitter(1024);
  split.sieve = /Oops: /g;
  const got: string[] = [];
  split.pushEach('noise 1\nOops: 1\ntrace 1\ntrace 2\nOops: 2\nnoise 2\nnoise 3\n', (line) => {
    got.push(line);
    split.sieve = line.startsWith('Oops: 1') ? undefined : line === 'trace 2' ? /Oops: /g : split.sieve;
  });
  assert.deepEqual(got, ['Oops: 1', 'trace 1', 'trace 2', 'Oops: 2']);
});
