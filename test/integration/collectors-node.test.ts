// The built-in collectors that read the node itself, on this machine's real kernel log and binaries:
// kernel-log hands on the lines from shortly before the symptom (and not older ones), the ones nearest
// it, a repeated line folded into one, and its runs close in time share one open device (KmsgHistory),
// each seeing what was logged since the one before; node-facts reports the container runtime's version as the
// installed binary gives it, asking it again only when the binary changes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readlinkSync, writeSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { kernelLog } from '../../collectors/kernel-log.js';
import { KmsgHistory } from '../../agent/node/kmsg.js';
import { nodeFacts } from '../../collectors/node-facts.js';
import { waitFor } from '../helpers/wait.js';
import { holdMachineLock } from '../helpers/machine-lock.js';
import { IS_ROOT, needsRoot } from '../helpers/needs.js';

// Another file's flood of the kernel log would overwrite the records these tests read back.
if (IS_ROOT) await holdMachineLock('kmsg');

const abnormalSeenAt = (firstSeen: Date): Abnormal => ({
  apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal', metadata: { namespace: 'default', name: 'collect' },
  spec: { nodeName: 'here', source: 'Custom', occurrences: { count: 1, firstSeen: firstSeen.toISOString(), lastSeen: firstSeen.toISOString() } },
} as Abnormal);

/** One kernel log record, through an open file of its own (the kernel rate-limits each open file). */
function kmsgLine(text: string): void {
  const fd = openSync('/dev/kmsg', 'w');
  try {
    writeSync(fd, `<6>${text}\n`);
  } finally {
    closeSync(fd);
  }
}

const linesOf = async (abnormal: Abnormal, beforeSeconds: number) => {
  const outcome = await kernelLog({ beforeSeconds }).run(abnormal, new AbortController().signal);
  assert.ok(outcome.ok, JSON.stringify(outcome));
  return (outcome.context?.kernelLog as { lines: string[] }).lines;
};

test('kernel-log hands on the kernel lines logged from beforeSeconds before the symptom, not older ones', { skip: needsRoot('writes a kernel log record into /dev/kmsg') }, async () => {
  const marker = `nodemedic-collector-${Date.now()}`;
  kmsgLine(marker);
  const now = Date.now();
  const around = await linesOf(abnormalSeenAt(new Date(now)), 60);
  assert.ok(around.some((line) => line.endsWith(`] ${marker}`)), 'the line logged just before the symptom');
  // A symptom an hour from now, with a minute before it: the line is older than that window.
  const later = await linesOf(abnormalSeenAt(new Date(now + 3600_000)), 60);
  assert.ok(!later.some((line) => line.includes(marker)), 'a line older than the window is left out');
});

test('kernel-log keeps the lines nearest the symptom, not the latest, and folds a repeated line into one', { skip: needsRoot('writes kernel log records into /dev/kmsg') }, async () => {
  const marker = `nodemedic-near-${Date.now()}`;
  // Two seconds before anything below is logged, so every line here is after the symptom whatever the
  // small drift between the kernel's clock and this one.
  const symptomAt = new Date(Date.now() - 2000);
  for (let i = 0; i < 5; i++) kmsgLine(`${marker} repeated`);
  for (let i = 0; i < 250; i++) kmsgLine(`${marker} later ${i}`);
  const lines = await linesOf(abnormalSeenAt(symptomAt), 60);
  assert.ok(lines.length <= 200);
  assert.deepEqual(lines.filter((line) => line.includes(`${marker} repeated`)).map((line) => line.replace(/^\[[^\]]+\] /, '')), [`${marker} repeated (repeated 5 times)`]);
  assert.ok(lines.some((line) => line.endsWith(`${marker} later 0`)), 'the first line after the symptom');
  assert.ok(!lines.some((line) => line.endsWith(`${marker} later 249`)), 'not the latest line');
});

test('kernel-log run again soon after sees the lines logged since, on the device it kept open', { skip: needsRoot('writes kernel log records into /dev/kmsg') }, async () => {
  const collector = kernelLog({ beforeSeconds: 60 });
  const run = async () => {
    const outcome = await collector.run(abnormalSeenAt(new Date()), new AbortController().signal);
    assert.ok(outcome.ok, JSON.stringify(outcome));
    return (outcome.context?.kernelLog as { lines: string[] }).lines;
  };
  const marker = `nodemedic-again-${Date.now()}`;
  kmsgLine(`${marker} first`);
  assert.ok((await run()).some((line) => line.endsWith(`${marker} first`)));
  kmsgLine(`${marker} second`);
  const again = await run();
  assert.ok(again.some((line) => line.endsWith(`${marker} first`)) && again.some((line) => line.endsWith(`${marker} second`)), 'both lines, in order');
});

/** Descriptors of this process open on /dev/kmsg (the collectors above may still hold theirs, closing them when idle). */
const kmsgDescriptors = () => new Set(readdirSync('/proc/self/fd').filter((fd) => {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`) === '/dev/kmsg';
  } catch {
    return false; // closed while listed
  }
}));

test('the kernel log history keeps its device open between reads close in time, and closes it when idle', { skip: needsRoot('writes kernel log records into /dev/kmsg') }, async () => {
  // The collectors of the tests above keep theirs open for 5 s after their last read.
  await waitFor('no /dev/kmsg open in this process', async () => kmsgDescriptors().size === 0 || undefined, 15_000);
  const history = new KmsgHistory('/dev/kmsg', { idleMs: 200 });
  const before = kmsgDescriptors();
  const marker = `nodemedic-history-${Date.now()}`;
  kmsgLine(`${marker} 1`);
  const first = await history.read(0);
  const one = first.find((r) => r.message === `${marker} 1`);
  assert.ok(one, 'the record logged before the first read');
  const opened = [...kmsgDescriptors()].filter((fd) => !before.has(fd));
  assert.equal(opened.length, 1, 'the device is kept open after a read');
  kmsgLine(`${marker} 2`);
  const second = await history.read(0);
  assert.deepEqual(second.filter((r) => r.message.startsWith(marker)).map((r) => r.message), [`${marker} 1`, `${marker} 2`], 'each record once, in order');
  assert.ok(kmsgDescriptors().has(opened[0]!), 'read on the same descriptor');
  await waitFor('the device closed once idle', async () => !kmsgDescriptors().has(opened[0]!) || undefined);

  // Records are kept from a minute before the first start asked for: a start within that minute is
  // served from what was kept, an earlier one reads the device again.
  const minute = 60e6;
  const fromMarker = new KmsgHistory('/dev/kmsg', { idleMs: 60_000 });
  try {
    const kept = await fromMarker.read(one.usec + 1 + minute);
    assert.ok(!kept.some((r) => r.message === `${marker} 1`), 'older than kept: left out');
    assert.equal(await fromMarker.read(one.usec + 2), kept, 'within the minute: the same records, not read again');
    assert.ok((await fromMarker.read(one.usec)).some((r) => r.message === `${marker} 1`), 'from earlier: read again');
  } finally {
    fromMarker.close();
  }
});

test('the kernel log history keeps the newest records up to its caps, in records and in characters', { skip: needsRoot('writes kernel log records into /dev/kmsg') }, async () => {
  const marker = `nodemedic-cap-${Date.now()}`;
  for (let i = 0; i < 8; i++) kmsgLine(`${marker} ${i} ${'x'.repeat(100)}`);
  for (const [cap, opts] of [['records', { maxRecords: 5 }], ['characters', { maxChars: 5 * 150 }]] as const) {
    const history = new KmsgHistory('/dev/kmsg', { ...opts, perTurn: 2 });
    try {
      const kept = (await history.read(0)).map((r) => r.message);
      if (cap === 'records') assert.equal(kept.length, 5);
      else assert.ok(kept.join('').length <= 5 * 150, `${kept.join('').length} characters kept`);
      assert.ok(kept.some((m) => m.startsWith(`${marker} 7 `)), `${cap}: the newest record is kept`);
      assert.ok(![0, 1, 2].some((i) => kept.some((m) => m.startsWith(`${marker} ${i} `))), `${cap}: the oldest are left out`);
    } finally {
      history.close();
    }
  }
});

const containerd = '/usr/bin/containerd';
test('node-facts reports the container runtime version the installed binary gives', { skip: existsSync(containerd) ? false : `${containerd} is not installed here` }, async () => {
  const expected = execFileSync(containerd, ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  const outcome = await nodeFacts().run(abnormalSeenAt(new Date()), new AbortController().signal);
  assert.ok(outcome.ok);
  const facts = outcome.context?.nodeFacts as { runtime: { containerd?: string }; kernel: string };
  assert.equal(facts.runtime.containerd, expected);
  assert.match(facts.kernel, /^Linux /);
});

test('node-facts asks a runtime its version once, and again only when its binary changes', async () => {
  // A fixture containerd first on PATH: it says its version and counts how often it was asked.
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-facts-'));
  const asked = path.join(dir, 'asked');
  const fake = (version: string) => writeFile(path.join(dir, 'containerd'), `#!/bin/sh\necho x >> ${asked}\necho "containerd ${version}"\n`, { mode: 0o755 });
  const timesAsked = async () => (await readFile(asked, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
  const runtimeOf = async (collector: ReturnType<typeof nodeFacts>) => {
    const outcome = await collector.run(abnormalSeenAt(new Date()), new AbortController().signal);
    assert.ok(outcome.ok);
    return (outcome.context?.nodeFacts as { runtime: { containerd?: string } }).runtime.containerd;
  };
  const pathBefore = process.env.PATH;
  try {
    await fake('v1.0.0');
    process.env.PATH = `${dir}:${pathBefore}`;
    const collector = nodeFacts(); // asks at once
    await waitFor('the version asked as the collector is made', async () => (await timesAsked()) === 1 || undefined);
    assert.equal(await runtimeOf(collector), 'containerd v1.0.0');
    assert.equal(await runtimeOf(collector), 'containerd v1.0.0');
    assert.equal(await timesAsked(), 1, 'not asked again while the binary is the same');
    await fake('v2.0.0-upgraded');
    assert.equal(await runtimeOf(collector), 'containerd v2.0.0-upgraded');
    assert.equal(await timesAsked(), 2);
  } finally {
    process.env.PATH = pathBefore;
    await rm(dir, { recursive: true, force: true });
  }
});
