// The journal as a symptom source: a journal directory written by systemd's own tools
// (systemd-journal-remote, from the export format, with this boot's ID as journald would write it),
// read by the real `nodemedic agent` with the built-in kubelet and containerd rules.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir, uptime } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { parse } from 'yaml';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { spawnAgent, waitFor } from '../helpers/agent.js';

const JOURNAL_REMOTE = '/lib/systemd/systemd-journal-remote';
const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-journal-'));
const journal = path.join(dir, 'journal');
const state = path.join(dir, 'state');
await mkdir(journal);
await mkdir(path.join(state, 'abnormals'), { recursive: true });
const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replace(/-/g, '');

/** Append an entry to the journal, as the unit would have logged it. */
function journalEntry(unit: string, message: string, extra: Record<string, string> = {}) {
  const now = BigInt(Date.now()) * 1000n;
  const fields = {
    __REALTIME_TIMESTAMP: now, __MONOTONIC_TIMESTAMP: BigInt(Math.round(uptime() * 1e6)), _BOOT_ID: bootId,
    _SYSTEMD_UNIT: unit, SYSLOG_IDENTIFIER: unit.replace(/\.service$/, ''), PRIORITY: 3, ...extra, MESSAGE: message,
  };
  const exported = `${Object.entries(fields).map(([k, v]) => `${k}=${v}`).join('\n')}\n\n`;
  execFileSync(JOURNAL_REMOTE, [`--output=${path.join(journal, 'remote.journal')}`, '-'], { input: exported, stdio: ['pipe', 'ignore', 'ignore'] });
}

// A node's journal always holds this boot's entries; journalctl following an empty one exits at once.
journalEntry('kubelet.service', 'Started kubelet: The Kubernetes Node Agent.');
await writeFile(path.join(dir, 'config.yaml'), `sources: {journalDirectory: "${journal}", kernelLogFallback: ""}\nsymptoms: {flushSeconds: 0.5}\n`);
// The built-in rules on (they are what is tested); the kernel ones read /dev/kmsg too, so only this
// test's reasons are looked at.
const start = () =>
  spawnAgent(['--store', 'file', '--state-dir', state, '--node-name', 'demo', '--config', path.join(dir, 'config.yaml')], path.join(dir, 'agent.log'), { defaultRules: true });
let agent = start();
after(async () => {
  agent.kill('SIGTERM');
  await agent.exited;
});

const PLEG = 'E1123 07:00:00.000000    1234 kubelet.go:2183] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active 3m5.300154479s ago; threshold is 3m0s"';

async function abnormalFor(prefix: string, count: number): Promise<Abnormal> {
  return waitFor(`${prefix} with count ${count}`, async () => {
    for (const file of await readdir(path.join(state, 'abnormals'))) {
      if (!file.startsWith(prefix)) continue;
      const a = parse(await readFile(path.join(state, 'abnormals', file), 'utf8')) as Abnormal;
      if (a.spec.occurrences?.count === count) return a;
    }
    return undefined;
  }, 20_000);
}
const watching = () =>
  waitFor('journalctl to run', async () => (await readFile(path.join(dir, 'agent.log'), 'utf8').catch(() => '')).includes('journald:kubelet.service') || undefined);

test('kubelet and containerd lines in the journal become Abnormals', async () => {
  await watching();
  journalEntry('kubelet.service', PLEG);
  journalEntry('containerd.service', 'time="2026-11-23T07:00:00Z" level=error msg="failed to delete shim" id=4f1c error="exit status 1"');
  const pleg = await abnormalFor('demo-plegnothealthy-', 1);
  assert.equal(pleg.spec.log?.filePath, 'journald:kubelet.service');
  assert.equal(pleg.spec.log?.logEntry, PLEG);
  assert.deepEqual(pleg.spec.context?.rule, { source: 'kubelet', reason: 'PLEGNotHealthy', type: 'temporary' });
  const shim = await abnormalFor('demo-shimerror-', 1);
  assert.equal(shim.spec.log?.filePath, 'journald:containerd.service');
});

test('across a restart the journal is resumed by cursor: an entry written meanwhile is read once', async () => {
  agent.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
  journalEntry('kubelet.service', PLEG);
  agent = start();
  // Count 2: the entry written while down, once; the first one was not read again (that would be 3).
  await abnormalFor('demo-plegnothealthy-', 2);
});

test('when journalctl exits it is started again and nothing after the last cursor is lost', async () => {
  await watching();
  execFileSync('pkill', ['-f', '--', `--directory=${journal}`]);
  journalEntry('kubelet.service', PLEG);
  await abnormalFor('demo-plegnothealthy-', 3);
  assert.match(await readFile(path.join(dir, 'agent.log'), 'utf8'), /journalctl exited; starting it again/);
});

test('a line journald cut at its 48 KiB LineMax (_LINE_BREAK=line-max) is put back together before the rules see it', async () => {
  await watching();
  // journald writes the first 48 KiB as one entry marked line-max, the rest as the next: here the cut
  // falls inside "PLEG is not healthy", so neither piece alone matches the rule.
  const long = `${'x'.repeat(48 * 1024 - PLEG.indexOf('PLEG is not') - 5)} ${PLEG}`.slice(1);
  journalEntry('kubelet.service', long.slice(0, 48 * 1024), { _PID: '4242', _LINE_BREAK: 'line-max' });
  journalEntry('kubelet.service', long.slice(48 * 1024), { _PID: '4242' });
  const pleg = await abnormalFor('demo-plegnothealthy-', 4);
  assert.equal(pleg.spec.occurrences?.count, 4, 'one more match, on the whole line');
});
