// How lines become symptoms (agent/sources/log-source.ts): collecting a stack trace into one symptom.
// The reader is a fixture that hands over lines the test gives it, or a real file's follower.
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { KERNEL_RULES } from '../../agent/sources/default-rules.js';
import { FileReader } from '../../agent/node/file-reader.js';
import type { LineReader } from '../../agent/node/line-reader.js';
import { LogSource, sieveLiteral } from '../../agent/sources/log-source.js';
import { compileRuleSet } from '../../agent/sources/rules.js';
import { waitFor } from '../helpers/wait.js';
import type { Symptom } from '../../agent/sources/source.js';

async function source() {
  let push!: (line: string) => void;
  const reader: LineReader = { where: '/dev/kmsg', start: async (onLine) => void (push = onLine), stop: async () => {} };
  const emitted: Symptom[] = [];
  const src = new LogSource(reader, { ruleSet: compileRuleSet(KERNEL_RULES, 'kernel') }, pino({ level: 'silent' }));
  await src.start((s) => emitted.push(s));
  return { push: (...lines: string[]) => lines.forEach((l) => push(l)), emitted, stop: () => src.stop() };
}
const entries = (emitted: Symptom[]) => emitted.map((s) => [s.reason, s.detail.log?.logEntry]);

test('an oops is collected up to its end-of-trace line', async () => {
  const { push, emitted, stop } = await source();
  push('Oops: 0002 [#1] PREEMPT SMP NOPTI', 'RIP: 0010:foo+0x1/0x2', '---[ end trace 0123456789abcdef ]---', 'an unrelated line');
  assert.deepEqual(entries(emitted), [['KernelOops', 'Oops: 0002 [#1] PREEMPT SMP NOPTI\nRIP: 0010:foo+0x1/0x2\n---[ end trace 0123456789abcdef ]---']]);
  await stop();
});

test('a hung-task report ends where the next report begins, or after a second of quiet', async () => {
  const { push, emitted, stop } = await source();
  push('INFO: task a:1 blocked for more than 120 seconds.', 'Call Trace:', 'INFO: task b:2 blocked for more than 120 seconds.');
  assert.deepEqual(entries(emitted), [['TaskHung', 'INFO: task a:1 blocked for more than 120 seconds.\nCall Trace:']]);
  await waitFor('the second report, after its second of quiet', async () => emitted.length >= 2 || undefined, 10_000);
  assert.deepEqual(entries(emitted)[1], ['TaskHung', 'INFO: task b:2 blocked for more than 120 seconds.']);
  await stop();
});

test('the symptom says where it came from and which rule matched', async () => {
  const { push, emitted, stop } = await source();
  push('EXT4-fs (sda1): Remounting filesystem read-only');
  assert.deepEqual(emitted[0]?.detail, {
    log: { filePath: '/dev/kmsg', logEntry: 'EXT4-fs (sda1): Remounting filesystem read-only' },
    context: { rule: { source: 'kernel', reason: 'FilesystemIsReadOnly', type: 'permanent', condition: 'ReadonlyFilesystem' } },
  });
  await stop();
});

test('on a real file, where lines without a literal are passed over in the reader, a trace is still collected whole', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-sieve-'));
  const file = path.join(dir, 'kern.log');
  await writeFile(file, '');
  const log = pino({ level: 'silent' });
  const reader = new FileReader({ file, pollMs: 20, log });
  const handedOn: string[] = [];
  const counting: LineReader = { where: file, start: (onLine) => reader.start((l) => (handedOn.push(l), onLine(l))), stop: () => reader.stop(), passOver: (s) => reader.passOver(s) };
  const emitted: Symptom[] = [];
  const src = new LogSource(counting, { ruleSet: compileRuleSet(KERNEL_RULES, 'kernel') }, log);
  await src.start((s) => emitted.push(s));
  t.after(async () => {
    await src.stop(); // before the file goes: tail-file's last poll waits for a file that is there
    await rm(dir, { recursive: true, force: true });
  });
  const noise = Array.from({ length: 1000 }, (_, i) => `cni0: port ${i} entered forwarding state\n`).join('');
  await appendFile(file, `${noise}Oops: 0002 [#1] PREEMPT SMP NOPTI\nRIP: 0010:foo+0x1/0x2\n---[ end trace 0123456789abcdef ]---\n${noise}EXT4-fs error (device sda1): x\n`);
  await waitFor('both symptoms', async () => emitted.length >= 2 || undefined, 10_000);
  assert.deepEqual(entries(emitted), [
    ['KernelOops', 'Oops: 0002 [#1] PREEMPT SMP NOPTI\nRIP: 0010:foo+0x1/0x2\n---[ end trace 0123456789abcdef ]---'],
    ['Ext4Error', 'EXT4-fs error (device sda1): x'],
  ]);
  assert.ok(handedOn.length < 100, `the 2,000 lines of noise were passed over in the reader (${handedOn.length} lines handed on)`);
});

test('the sieve looks for each literal without its leading spaces and punctuation, and so still finds every line holding one', async () => {
  assert.equal(sieveLiteral(' detected stalls on CPUs/tasks:'), 'detected stalls on CPUs/tasks:');
  assert.equal(sieveLiteral('): Remounting filesystem read-only'), 'Remounting filesystem read-only');
  assert.equal(sieveLiteral('[Hardware Error]: '), 'Hardware Error]: ');
  assert.equal(sieveLiteral(': ab'), ': ab', 'kept whole where too little would be left');
  for (const { literal } of compileRuleSet(KERNEL_RULES, 'kernel').rules) {
    if (literal) assert.ok(literal.includes(sieveLiteral(literal)), literal);
  }
  // Through a real file, where the sieve passes lines over: the rules whose literals begin with a space
  // or a colon still match, among lines that hold the rest of the literal only.
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-sieve-'));
  const file = path.join(dir, 'kern.log');
  await writeFile(file, '');
  const log = pino({ level: 'silent' });
  const src = new LogSource(new FileReader({ file, pollMs: 20, log }), { ruleSet: compileRuleSet(KERNEL_RULES, 'kernel') }, log);
  const emitted: Symptom[] = [];
  await src.start((s) => emitted.push(s));
  try {
    await appendFile(file, [
      'undetected stalls on CPUs/tasks:', // what the sieve looks for, but not the literal: no symptom
      'rcu: INFO: rcu_sched detected stalls on CPUs/tasks:',
      'EXT4-fs (sda1): Remounting filesystem read-only',
      '',
    ].join('\n'));
    await waitFor('both symptoms', async () => emitted.length >= 2 || undefined, 10_000);
    assert.deepEqual(emitted.map((s) => s.detail.log?.logEntry), ['rcu: INFO: rcu_sched detected stalls on CPUs/tasks:', 'EXT4-fs (sda1): Remounting filesystem read-only']);
  } finally {
    await src.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
