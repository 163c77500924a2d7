// node-problem-detector's custom-plugin monitors, run by the real agent process on the file store:
// NPD's own NTP monitor and plugin, unchanged, from NPD's working directory; and plugins of the test's
// own that fail, pass again, hang, print too much and answer neither 0 nor 1. A problem is an
// Abnormal and sets its condition (DIR/node.json, what the kube store writes on the Node); a pass
// records the end on that Abnormal and clears the condition.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { parse, stringify } from 'yaml';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { REPO_ROOT } from '../cluster/cluster.js';
import { spawnAgent, waitFor } from '../helpers/agent.js';
import { needsRoot } from '../helpers/needs.js';

// Plugins run as root, so the agent refuses any not owned by root: only root can make ones it accepts.
const skip = needsRoot('the agent runs only plugins owned by root');
const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-plugins-'));
const state = path.join(dir, 'state');
const plugins = path.join(dir, 'plugins');
await mkdir(path.join(state, 'abnormals'), { recursive: true });
await mkdir(plugins, { recursive: true });

async function plugin(name: string, body: string): Promise<string> {
  const file = path.join(plugins, name);
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}
// A plugin whose answer the test changes: the exit status and output in a file beside it.
const answer = path.join(dir, 'answer');
const setAnswer = (code: number, output: string) => writeFile(answer, `${code}\n${output}\n`);
await setAnswer(1, 'disk /dev/sda is failing');
// Each of its runs is also a tick of a 1 s clock the test can watch (ticks).
const ticks = path.join(dir, 'ticks');
const flipping = await plugin('flipping.sh', `echo x >> ${ticks}; code=$(head -n1 ${answer}); tail -n +2 ${answer}; exit $code`);
const hanging = await plugin('hanging.sh', 'echo started; exec sleep 1000');
const chatty = await plugin('chatty.sh', 'i=0; while [ $i -lt 100 ]; do printf "0123456789"; i=$((i+1)); done; exit 1');
const strange = await plugin('strange.sh', 'echo "cannot tell"; exit 3');

await writeFile(path.join(dir, 'ours.json'), JSON.stringify({
  plugin: 'custom',
  pluginConfig: { invoke_interval: '1s', timeout: '5s', max_output_length: 20, concurrency: 2 },
  source: 'test-plugins',
  conditions: [{ type: 'DiskProblem', reason: 'DiskIsFine', message: 'no disk problem' }],
  rules: [
    { type: 'permanent', condition: 'DiskProblem', reason: 'DiskFailing', path: flipping },
    { type: 'temporary', reason: 'Hangs', path: hanging, timeout: '1s' },
    { type: 'temporary', reason: 'Chatty', path: chatty },
    { type: 'temporary', reason: 'Strange', path: strange },
  ],
}));
// Two plugins slower than their interval, one at a time (concurrency 1): each takes a lock directory,
// and would report a problem (Overlap) if the other held it. Each run counts itself, and holds the lock
// until the test releases it (release-N), after rounds of the monitor have passed.
const runs = path.join(dir, 'runs');
await writeFile(runs, '');
const serial = (name: string) => plugin(name, `mkdir ${dir}/lock 2>/dev/null || { echo overlap; exit 1; }; n=$(( $(wc -l < ${runs}) + 1 )); echo x >> ${runs}; ` +
  `while [ ! -e ${dir}/release-$n ]; do sleep 0.05; done; rmdir ${dir}/lock; exit 0`);
await writeFile(path.join(dir, 'serial.json'), JSON.stringify({
  plugin: 'custom', pluginConfig: { invoke_interval: '1s', timeout: '10s', concurrency: 1 }, source: 'serial',
  rules: [{ type: 'temporary', reason: 'Overlap', path: await serial('first.sh') }, { type: 'temporary', reason: 'Overlap', path: await serial('second.sh') }],
}));
const NPD = path.join(REPO_ROOT, '../shared/npd');
await writeFile(path.join(dir, 'config.yaml'), stringify({
  sources: { ruleFiles: [path.join(NPD, 'config/custom-plugin-monitor.json'), path.join(dir, 'ours.json'), path.join(dir, 'serial.json')] },
  symptoms: { flushSeconds: 0.2 },
}));
const log = path.join(dir, 'agent.log');
// From NPD's working directory, where its files' relative plugin paths (./config/plugin/...) lead.
const agent = skip ? undefined : spawnAgent(['--store', 'file', '--state-dir', state, '--node-name', 'demo', '--config', path.join(dir, 'config.yaml')], log, { cwd: NPD });
after(async () => {
  agent?.kill('SIGTERM');
  await agent?.exited;
});

async function abnormals(): Promise<Abnormal[]> {
  const files = await readdir(path.join(state, 'abnormals')).catch(() => []);
  return Promise.all(files.filter((f) => f.endsWith('.yaml')).map(async (f) => parse(await readFile(path.join(state, 'abnormals', f), 'utf8')) as Abnormal));
}
const withReason = async (reason: string) => (await abnormals()).find((a) => (a.spec.context?.rule as { reason?: string } | undefined)?.reason === reason);
const condition = async (type: string) =>
  ((await readFile(path.join(state, 'node.json'), 'utf8').then((t) => JSON.parse(t), () => ({ conditions: [] }))).conditions as Array<{ type: string; status: string; reason: string; message: string }>).find((c) => c.type === type);

test('NPD\'s own NTP monitor and plugin, unchanged: the plugin says ntp is not running (exit 1), an Abnormal is made and NTPProblem set', { skip }, async () => {
  const ntp = await waitFor('the NTP problem', () => withReason('NTPIsDown'), 30_000);
  assert.equal(ntp.spec.source, 'Custom');
  assert.deepEqual(ntp.spec.context?.rule, { source: 'ntp-custom-plugin-monitor', reason: 'NTPIsDown', type: 'permanent', condition: 'NTPProblem' }, 'one Abnormal for the two rules on one plugin: the permanent one\'s');
  assert.deepEqual(ntp.spec.context?.plugin, { path: './config/plugin/check_ntp.sh', args: [], output: 'ntp.service is not running' });
  const set = await waitFor('NTPProblem set', async () => (await condition('NTPProblem'))?.status === 'True' ? condition('NTPProblem') : undefined, 30_000);
  assert.equal(set?.reason, 'NTPIsDown');
});

test('a problem sets its condition; the plugin passing again ends the Abnormal and clears it', { skip }, async () => {
  const failing = await waitFor('the disk problem', () => withReason('DiskFailing'), 30_000);
  assert.equal((failing.spec.context?.plugin as { output: string }).output, 'disk /dev/sda is fai', 'cut at max_output_length (20)');
  await waitFor('DiskProblem set', async () => (await condition('DiskProblem'))?.status === 'True' || undefined, 30_000);
  await setAnswer(0, 'all good');
  const ended = await waitFor('the end recorded', async () => (await withReason('DiskFailing'))?.spec.occurrences?.endedAt ? withReason('DiskFailing') : undefined, 30_000);
  assert.equal(ended?.metadata?.name, failing.metadata?.name, 'on the same Abnormal');
  const cleared = await waitFor('DiskProblem cleared', async () => (await condition('DiskProblem'))?.status === 'False' ? condition('DiskProblem') : undefined, 30_000);
  assert.deepEqual([cleared?.reason, cleared?.message], ['DiskIsFine', 'no disk problem']);
  // The Node's Event is written after its condition: wait for it, then check that it is the only other.
  const nodeEvents = await waitFor('the DiskIsFine event', async () => {
    const events = (await readFile(path.join(state, 'events.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { kind?: string; type: string; reason: string });
    const seen = events.filter((e) => e.kind === 'Node' && ['DiskFailing', 'DiskIsFine'].includes(e.reason)).map((e) => `${e.type} ${e.reason}`);
    return seen.includes('Normal DiskIsFine') ? seen : undefined;
  }, 30_000);
  assert.deepEqual(nodeEvents, ['Warning DiskFailing', 'Normal DiskIsFine']);
});

test('a plugin that hangs is killed at its timeout, one that answers neither 0 nor 1 is unknown: neither makes an Abnormal', { skip }, async () => {
  await waitFor('the unknown results logged', async () => {
    const text = await readFile(log, 'utf8');
    return (text.includes('hanging.sh') && text.includes('strange.sh') && text.includes('the result is unknown')) || undefined;
  }, 30_000);
  assert.equal(await withReason('Hangs'), undefined);
  assert.equal(await withReason('Strange'), undefined);
  // What printed 1,000 characters is a problem all the same, its message cut at max_output_length.
  const chatty = await waitFor('the chatty plugin\'s problem', () => withReason('Chatty'), 30_000);
  assert.equal((chatty.spec.context?.plugin as { output: string }).output, '01234567890123456789');
});

test('concurrency holds across rounds: plugins slower than their interval never run at once, nor one twice at once', { skip }, async () => {
  const lines = async (file: string) => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
  for (let run = 1; run <= 6; run++) {
    await waitFor(`run ${run} of the slow plugins`, async () => (await lines(runs)) >= run || undefined, 60_000);
    // Three ticks of the other monitor's 1 s clock: the serial monitor's own rounds came meanwhile.
    const now = await lines(ticks);
    await waitFor('three ticks', async () => (await lines(ticks)) >= now + 3 || undefined, 60_000);
    await writeFile(path.join(dir, `release-${run}`), '');
  }
  await waitFor('the sixth run over', async () => (await lines(runs)) >= 7 || undefined, 60_000);
  assert.equal(await withReason('Overlap'), undefined, 'no run ever found the other holding the lock');
});
