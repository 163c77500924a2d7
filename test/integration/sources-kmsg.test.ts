// The kernel log source on the real /dev/kmsg, into a real apiserver: a line written to the kernel log
// becomes an Abnormal; a stack trace becomes one; a restart neither misses nor repeats lines; a flood of
// 100,000 identical lines becomes one Abnormal and a small, bounded number of API writes, and the reader
// goes on following the device after it; the reader polls the device when told to.
// Lines are written as real kernel log records ("<3>text" into /dev/kmsg, as root).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import type { RunningAgent } from '../../agent/agent.js';
import { FINGERPRINT_LABEL } from '../../agent/api/crds.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { KmsgReader } from '../../agent/node/kmsg.js';
import { fingerprintOf } from '../../agent/sources/source.js';
import type { KubeStore } from '../../agent/store/kube.js';
import { DEFAULTS } from '../../agent/config.js';
import { TEMPORARY_FILE } from '../../agent/lib/files.js';
import { startKubeAgent, waitFor } from '../helpers/agent.js';
import { CoreV1Api } from '@kubernetes/client-node';
import { ABNORMALS, GROUP, VERSION, customObjects, kubeConfig, testNamespace } from '../helpers/kube.js';
import { REPO_ROOT } from '../cluster/cluster.js';
import { holdMachineLock } from '../helpers/machine-lock.js';
import { needsRoot } from '../helpers/needs.js';

const skip = needsRoot('writes kernel log records into /dev/kmsg');
// The kernel log is one for the machine: another test run's floods and markers must not land in this one's counts.
if (!skip) await holdMachineLock('kmsg');

const ns = await testNamespace('kmsg');
const node = `kmsg-${ns}`;
const stateDir = await mkdtemp(path.join(tmpdir(), 'nodemedic-kmsg-'));
const start = () =>
  startKubeAgent(node, {
    namespace: ns,
    stateDir,
    processorNamespaces: [ns], // none registered there: only the built-ins run on what this test creates
    sources: { defaultRules: true, ruleFiles: [], kernelLogFallback: '', journalDirectory: '' },
    symptoms: { ...DEFAULTS.symptoms, flushSeconds: 1, cooldownSeconds: 600, createBurst: 10, createPerMinute: 60, maxTracked: 1000 },
  });
let agent: RunningAgent = skip ? (undefined as never) : await start();
after(() => agent?.stop());

/** Writes lines as kernel log records, opening /dev/kmsg per line (its rate limit is per open file). */
function kmsg(...lines: string[]) {
  for (const line of lines) {
    const fd = openSync('/dev/kmsg', 'w');
    try {
      writeSync(fd, `<3>${line}\n`); // without the newline the kernel holds the record open for a continuation
    } finally {
      closeSync(fd);
    }
  }
}

const byFingerprint = async (reason: string) => {
  const list = (await customObjects().listNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS,
    labelSelector: `${FINGERPRINT_LABEL}=${fingerprintOf({ source: 'Log', reason }, node)}`,
  })) as { items: Abnormal[] };
  return list.items;
};
const one = (reason: string, check: (a: Abnormal) => boolean = () => true) =>
  waitFor(`an Abnormal for ${reason}`, async () => {
    const items = await byFingerprint(reason);
    return items.length === 1 && check(items[0]!) ? items[0] : undefined;
  });

test('a hung-task line in the kernel log becomes an Abnormal', { skip }, async () => {
  const marker = `nm${Date.now()}`;
  kmsg(`INFO: task ${marker}:4242 blocked for more than 120 seconds.`);
  const created = await one('TaskHung');
  assert.equal(created.spec.source, 'Log');
  assert.equal(created.spec.nodeName, node);
  assert.equal(created.spec.log?.filePath, '/dev/kmsg');
  assert.match(created.spec.log?.logEntry ?? '', new RegExp(`^INFO: task ${marker}:4242 blocked for more than 120 seconds\\.`));
  assert.deepEqual(created.spec.context?.rule, { source: 'kernel', reason: 'TaskHung', type: 'temporary' });
  assert.equal(created.spec.occurrences?.count, 1);
  assert.equal(created.metadata?.labels?.['nodemedic.io/node'], node);
});

test('a kernel oops with its stack trace is one symptom', { skip }, async () => {
  kmsg(
    'BUG: kernel NULL pointer dereference, address: 0000000000000008',
    '#PF: supervisor read access in kernel mode',
    'Call Trace:',
    ' <TASK>',
    ' nodemedic_test_fn+0x1c/0x40',
    '---[ end trace 0123456789abcdef ]---',
  );
  const oops = await one('KernelOops');
  const entry = oops.spec.log?.logEntry ?? '';
  assert.match(entry, /^BUG: kernel NULL pointer dereference, address: 0000000000000008\n#PF: supervisor read access/);
  assert.match(entry, /nodemedic_test_fn\+0x1c\/0x40\n---\[ end trace 0123456789abcdef \]---$/);
  assert.equal(oops.spec.occurrences?.count, 1);
});

test('across a restart, lines written while the agent was down are read, and none twice', { skip }, async () => {
  await agent.stop();
  kmsg('EXT4-fs (nmtest0): Remounting filesystem read-only');
  const saved = JSON.parse(readFileSync(path.join(stateDir, 'kmsg.json'), 'utf8')) as { seq: number };
  assert.ok(saved.seq > 0, 'the position was kept');
  agent = await start();
  const readOnly = await one('FilesystemIsReadOnly');
  assert.equal(readOnly.spec.occurrences?.count, 1);
  // The lines handled before the restart were not read again: their counts did not move.
  await agent.sink.flush();
  assert.equal((await byFingerprint('TaskHung'))[0]?.spec.occurrences?.count, 1);
  assert.equal((await byFingerprint('KernelOops'))[0]?.spec.occurrences?.count, 1);
});

test('a burst of 100,000 identical lines: one Abnormal, every line read counted, few API writes', { skip }, async (t) => {
  // One open file may write 10 lines per 5 s while printk_devkmsg is "ratelimit"; lift that for the burst.
  const sysctl = '/proc/sys/kernel/printk_devkmsg';
  const before = readFileSync(sysctl, 'utf8').trim();
  writeFileSync(sysctl, 'on\n'); // the kernel wants the newline
  const writes = { ...(agent.store as KubeStore).writes };
  // The soft lockups taken, not every symptom: the real kernel may log one of its own meanwhile (a
  // task hung by the node tests' deadlocked shim, say), and the burst's count must not include it.
  const softLockups = () => agent.sink.stats.byProblem.get('Log\tSoftLockup') ?? 0;
  const softLockupsBefore = softLockups();
  const lostBefore = lost();
  const lostSince = () => lost() - lostBefore;
  const started = Date.now();
  try {
    // From another process, as a flood comes from the kernel while the agent runs. Level 4 (warning):
    // below the console's level, so the kernel does not also print each line to the slow serial console.
    const writer = spawn(process.execPath, ['-e', `
      const fs = require('node:fs');
      const fd = fs.openSync('/dev/kmsg', 'w');
      for (let i = 0; i < 100000; i++) fs.writeSync(fd, '<4>watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [nodemedic-flood:1]\\n');
    `], { stdio: 'inherit' });
    assert.equal(await new Promise((resolve) => writer.once('exit', resolve)), 0);
  } finally {
    writeFileSync(sysctl, `${before}\n`);
  }
  const burstSeconds = (Date.now() - started) / 1000;
  // Every line the reader got is counted on the one Abnormal; lines the kernel overwrote first are counted as lost.
  await waitFor('the burst to be read', async () => softLockups() - softLockupsBefore + lostSince() >= 100_000 || undefined, 60_000);
  await agent.sink.flush();
  const read = softLockups() - softLockupsBefore;
  const floods = await byFingerprint('SoftLockup');
  assert.equal(floods.length, 1, 'one Abnormal');
  const counted = floods[0]!.spec.occurrences!.count;
  assert.equal(counted, read, 'every line read is counted');
  const after = (agent.store as KubeStore).writes;
  const sinkWrites = after.create - writes.create + (after.spec - writes.spec);
  // One create, then at most one count update per flush second of the burst (plus the last flush).
  assert.ok(sinkWrites <= 2 + Math.ceil(burstSeconds) + 2, `${sinkWrites} writes for a ${burstSeconds.toFixed(1)} s burst`);
  t.diagnostic(`100,000 lines in ${burstSeconds.toFixed(1)} s: ${counted} read and counted, ${lostSince()} overwritten by the kernel first; ${sinkWrites} API writes by the sink`);

  // The flood made reads fail with EPIPE (records overwritten while unread): the reader still follows.
  kmsg(`INFO: task nm-after-flood:4242 blocked for more than 120 seconds.`);
  await one('TaskHung', (a) => a.spec.occurrences?.count === 2);
});

test('when the kernel overwrites records while the event loop is held, the reader counts them lost and goes on', { skip }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-kmsg-held-'));
  const lines: string[] = [];
  const errors: string[] = [];
  const log = pino({ level: 'error' }, { write: (entry: string) => void errors.push(entry) });
  const reader = new KmsgReader({ stateDir: dir, log });
  await reader.start((line) => lines.push(line));
  try {
    // spawnSync holds this event loop while another process floods the kernel log past its buffer:
    // the first read after it fails with EPIPE, the stream waiting on the device closes it, and the
    // reader must open it again.
    const sysctl = '/proc/sys/kernel/printk_devkmsg';
    const before = readFileSync(sysctl, 'utf8').trim();
    writeFileSync(sysctl, 'on\n');
    try {
      const flood = spawnSync(process.execPath, ['-e', `
        const fs = require('node:fs');
        const fd = fs.openSync('/dev/kmsg', 'w');
        for (let i = 0; i < 20000; i++) fs.writeSync(fd, '<4>nodemedic-held-loop flood line\\n');
      `], { stdio: 'inherit' });
      assert.equal(flood.status, 0);
    } finally {
      writeFileSync(sysctl, `${before}\n`);
    }
    await waitFor('records counted lost', async () => (reader.lost > 0 ? true : undefined));
    const marker = `nm-after-held-${Date.now()}`;
    kmsg(marker);
    await waitFor('a line logged after the loss read', async () => (lines.includes(marker) ? true : undefined));
    assert.deepEqual(errors, [], 'it went on waiting on the device (no fall back to polling)');
  } finally {
    await reader.stop();
  }
});

test('told to poll (as where this Node cannot wait on the device), the reader drains it on a timer', { skip }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-kmsg-poll-'));
  const lines: string[] = [];
  const reader = new KmsgReader({ stateDir: dir, log: pino({ level: 'silent' }), pollMs: 20 });
  await reader.start((line) => lines.push(line));
  try {
    const marker = `nm-poll-${Date.now()}`;
    kmsg(`${marker} first`, `${marker} second`);
    await waitFor('both lines read by polling', async () => (lines.filter((l) => l.startsWith(marker)).length === 2 ? true : undefined));
    assert.deepEqual(lines.filter((l) => l.startsWith(marker)), [`${marker} first`, `${marker} second`]);
  } finally {
    await reader.stop();
  }
});

test('NPD\'s kernel-monitor.json and readonly-monitor.json, unchanged, share one reader and one position; lookback, trimmed messages, the Node\'s conditions and events', { skip }, async () => {
  const npdNode = `npd-${ns}`;
  const core = kubeConfig().makeApiClient(CoreV1Api);
  await core.createNode({ body: { metadata: { name: npdNode } } }); // a Node object with no kubelet behind it
  const marker = `nm${Date.now()}`;
  // Logged before the agent's first start on this node: NPD's lookback (5m) reads it all the same.
  kmsg(`EXT4-fs (${marker}): Remounting filesystem read-only`);
  const npdState = await mkdtemp(path.join(tmpdir(), 'nodemedic-kmsg-npd-'));
  const npd = await startKubeAgent(npdNode, {
    namespace: ns, stateDir: npdState, processorNamespaces: [ns],
    sources: { defaultRules: false, ruleFiles: ['kernel-monitor.json', 'readonly-monitor.json'].map((f) => path.join(REPO_ROOT, '../shared/npd/config', f)), kernelLogFallback: '', journalDirectory: '' },
    symptoms: { ...DEFAULTS.symptoms, flushSeconds: 1 },
  });
  try {
    assert.deepEqual(npd.sources.map((s) => s.name).filter((n) => n.includes('kmsg')), ['kernel-monitor, readonly-monitor (/dev/kmsg)'], 'one reader for both files');
    kmsg('divide error: 0000 [#9] SMP '); // NPD's own sample, trailing blank and all: trimmed, as NPD trims it
    const ofNode = async (reason: string) => ((await customObjects().listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, labelSelector: `${FINGERPRINT_LABEL}=${fingerprintOf({ source: 'Log', reason }, npdNode)}` })) as { items: Abnormal[] }).items[0];
    const readOnly = await waitFor('the read-only remount, from before the start', () => ofNode('FilesystemIsReadOnly'));
    assert.match(readOnly.spec.log?.logEntry ?? '', new RegExp(`^EXT4-fs \\(${marker}\\): Remounting`));
    await waitFor('the divide error', () => ofNode('KernelOops'));
    const conditions = await waitFor('ReadonlyFilesystem set on the Node', async () => {
      const list = (await core.readNode({ name: npdNode })).status?.conditions ?? [];
      return list.find((c) => c.type === 'ReadonlyFilesystem' && c.status === 'True') ? list : undefined;
    });
    assert.deepEqual(conditions.map((c) => [c.type, c.status, c.reason]).sort(), [
      ['CperHardwareErrorFatal', 'False', 'CperHardwareHasNoFatalError'], ['KernelDeadlock', 'False', 'KernelHasNoDeadlock'],
      ['ReadonlyFilesystem', 'True', 'FilesystemIsReadOnly'], ['XfsShutdown', 'False', 'XfsHasNotShutDown'],
    ]);
    const events = await waitFor('the Node\'s events', async () => {
      const list = (await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.kind=Node,involvedObject.name=${npdNode}` })).items;
      return list.length >= 2 ? list : undefined;
    });
    assert.deepEqual(events.map((e) => [e.type, e.reason, e.involvedObject.uid]).sort(), [['Warning', 'FilesystemIsReadOnly', npdNode], ['Warning', 'KernelOops', npdNode]]);
    assert.deepEqual(readdirSync(npdState).filter((f) => f.includes('kmsg') && !TEMPORARY_FILE.test(f)), ['kmsg.json'], 'one position');
  } finally {
    await npd.stop();
    await core.deleteNode({ name: npdNode });
  }
});

/** Kernel log records the agent's readers found overwritten before they could read them. */
const lost = () => agent.sources.reduce((sum, source) => sum + (source.lost ?? 0), 0);
