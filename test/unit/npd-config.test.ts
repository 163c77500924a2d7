// node-problem-detector's own configuration files (../shared/npd/config), unchanged: each loads or is
// refused as it should be (agent/sources/monitor-files.ts), and NPD's filelog semantics — the message
// its expressions cut out, timestamps in Go layouts, lookback, skipList — on real-format lines, with
// the rules NPD's own expressions hide matched anyway and warned about.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import type { LineReader } from '../../agent/node/line-reader.js';
import { LogSource } from '../../agent/sources/log-source.js';
import { goDuration, parseMonitorFile, type MonitorFile } from '../../agent/sources/monitor-files.js';
import { RuleError } from '../../agent/sources/rules.js';
import type { Symptom } from '../../agent/sources/source.js';
import { TimeLayout } from '../../agent/sources/translate.js';
import { REPO_ROOT } from '../cluster/cluster.js';

const NPD = path.join(REPO_ROOT, '../shared/npd/config');
const load = async (name: string) => parseMonitorFile(await readFile(path.join(NPD, name), 'utf8'), name);

test('every file of NPD\'s configuration loads, or is refused saying what it is', async () => {
  const outcome: Record<string, string> = {};
  for (const name of (await readdir(NPD)).filter((f) => f.endsWith('.json')).sort()) {
    try {
      const loaded = await load(name);
      outcome[name] = loaded.kind === 'log' ? `log ${loaded.ruleSet.plugin} ${loaded.ruleSet.rules.length}` : `plugins ${loaded.monitor.rules.length}`;
    } catch (err) {
      assert.ok(err instanceof RuleError, `${name}: ${(err as Error).message}`);
      outcome[name] = /system-stats monitor/.test(err.message) ? 'refused: system stats' : /Windows nodes/.test(err.message) ? 'refused: Windows' : `refused: ${err.message}`;
    }
  }
  assert.deepEqual(outcome, {
    'abrt-adaptor.json': 'log journald 5',
    'custom-plugin-monitor.json': 'plugins 2',
    'disk-log-message-filelog.json': 'log file 1',
    'docker-monitor-counter.json': 'plugins 1',
    'docker-monitor-filelog.json': 'log file 1',
    'docker-monitor.json': 'log journald 3',
    'health-checker-containerd.json': 'plugins 1',
    'health-checker-docker.json': 'plugins 1',
    'health-checker-kubelet.json': 'plugins 1',
    'iptables-mode-monitor.json': 'plugins 1',
    'kernel-monitor-counter.json': 'plugins 1',
    'kernel-monitor-filelog.json': 'log file 6',
    'kernel-monitor.json': 'log kmsg 14',
    'net-cgroup-system-stats-monitor.json': 'refused: system stats',
    'network-problem-monitor.json': 'plugins 2',
    'readonly-monitor.json': 'log kmsg 1',
    'system-stats-monitor.json': 'refused: system stats',
    'systemd-monitor-counter.json': 'plugins 3',
    'systemd-monitor.json': 'log journald 3',
    'windows-containerd-monitor-filelog.json': 'refused: Windows',
    'windows-defender-monitor.json': 'refused: Windows',
    'windows-health-checker-containerd.json': 'refused: Windows',
    'windows-health-checker-docker.json': 'refused: Windows',
    'windows-health-checker-kubelet.json': 'refused: Windows',
    'windows-health-checker-kubeproxy.json': 'refused: Windows',
    'windows-system-stats-monitor.json': 'refused: system stats',
  });
});

test('a custom-plugin monitor keeps NPD\'s contract: interval, timeouts, output length, concurrency, conditions', async () => {
  const loaded = await load('custom-plugin-monitor.json');
  assert.equal(loaded.kind, 'plugins');
  if (loaded.kind !== 'plugins') return;
  const { monitor } = loaded;
  assert.deepEqual([monitor.source, monitor.intervalMs, monitor.maxOutputLength, monitor.concurrency], ['ntp-custom-plugin-monitor', 30_000, 80, 3]);
  assert.deepEqual(monitor.conditions, [{ type: 'NTPProblem', reason: 'NTPIsUp', message: 'ntp service is up' }]);
  assert.deepEqual(monitor.rules.map((r) => [r.type, r.condition, r.reason, r.path, r.timeoutMs]), [
    ['temporary', undefined, 'NTPIsDown', './config/plugin/check_ntp.sh', 3000],
    ['permanent', 'NTPProblem', 'NTPIsDown', './config/plugin/check_ntp.sh', 3000],
  ]);
  assert.equal((await load('health-checker-kubelet.json') as Extract<MonitorFile, { kind: 'plugins' }>).monitor.rules[0]!.args[0], '--component=kubelet');
});

test('a system-stats monitor is refused with what it is and what to use instead', async () => {
  await assert.rejects(load('system-stats-monitor.json'), /system-stats monitor: node-problem-detector exports CPU, disk, memory and network figures .* run node-exporter/);
});

/** A log source on a fixture reader that hands over the lines a test gives it, with the rules of an NPD file. */
async function feed(loaded: MonitorFile, lines: string[]): Promise<Symptom[]> {
  assert.equal(loaded.kind, 'log');
  if (loaded.kind !== 'log') return [];
  let push!: (line: string) => void;
  const reader: LineReader = { where: loaded.ruleSet.logPath, start: async (onLine) => void (push = onLine), stop: async () => {} };
  const emitted: Symptom[] = [];
  const source = new LogSource(reader, { ruleSet: loaded.ruleSet, ...(loaded.translator ? { translator: loaded.translator } : {}) }, pino({ level: 'silent' }));
  await source.start((s) => emitted.push(s));
  lines.forEach((l) => push(l));
  await source.stop();
  return emitted;
}
const syslogNow = (offsetMs = 0) => {
  const d = new Date(Date.now() + offsetMs);
  return `${d.toLocaleString('en-US', { month: 'short' })} ${String(d.getDate()).padStart(2, ' ')} ${d.toTimeString().slice(0, 8)}`;
};

test('kernel-monitor-filelog: NPD\'s greedy message expression hides KernelOops; nodemedic warns, and matches it on the whole line', async () => {
  const loaded = await load('kernel-monitor-filelog.json');
  assert.match(loaded.warnings.join('\n'), /rule KernelOops: the message expression kernel: \\\[\.\*\\\] \(\.\*\) is greedy, .* contains "\] "/);
  const symptoms = await feed(loaded, [
    `${syslogNow()} node-1 kernel: [ 3000.89] divide error: 0000 [#2] SMP `,
    `${syslogNow()} node-1 kernel: [ 3001.00] Out of memory: Killed process 1234 (stress) total-vm:1000kB, anon-rss:900kB, file-rss:0kB, shmem-rss:0kB`,
    `${syslogNow()} node-1 kernel: [ 3002.00] an ordinary line`,
  ]);
  assert.deepEqual(symptoms.map((s) => s.reason), ['KernelOops', 'OOMKilling']);
  assert.equal(symptoms[1]!.detail.log?.logEntry, 'Out of memory: Killed process 1234 (stress) total-vm:1000kB, anon-rss:900kB, file-rss:0kB, shmem-rss:0kB', 'the message NPD cuts out');
  assert.match(symptoms[0]!.detail.log!.logEntry!, /kernel: \[ 3000\.89\] divide error: 0000 \[#2\] SMP$/, 'the whole line, trimmed, as NPD\'s message would have been "SMP"');
});

test('a ^-anchored rule matches the message NPD cuts out, not the raw line', async () => {
  const file = JSON.stringify({
    plugin: 'filelog', logPath: '/var/log/kern.log', source: 'k',
    pluginConfig: { timestamp: '^.{15}', message: 'kernel: \\[[^\\]]*\\] (.*)', timestampFormat: 'Jan _2 15:04:05' },
    rules: [{ type: 'temporary', reason: 'OOMKilling', pattern: '^Out of memory: Killed process \\d+ .*' }],
  });
  const symptoms = await feed(parseMonitorFile(file, 'anchored.json'), [`${syslogNow()} n kernel: [ 1.0] Out of memory: Killed process 7 (x) total-vm:1kB`]);
  assert.deepEqual(symptoms.map((s) => s.reason), ['OOMKilling']);
});

test('disk-log-message-filelog: the rule needs text before the message\'s start; warned, matched on the whole line; skipList and lookback honoured', async () => {
  const loaded = await load('disk-log-message-filelog.json');
  assert.match(loaded.warnings.join('\n'), /rule DiskBadBlock: the message expression .* begins with "Currently unreadable"/i);
  const symptoms = await feed(loaded, [
    `${syslogNow()} node-1 smartd[812]: Device: /dev/sda [SAT], 124 Currently unreadable (pending) sectors`,
    `${syslogNow()} node-1 audit: Device: /dev/sdb [SAT], 300 Currently unreadable (pending) sectors`, // skipList " audit:"
    `${syslogNow(-11 * 3600_000)} node-1 smartd[812]: Device: /dev/sdc [SAT], 500 Currently unreadable (pending) sectors`, // older than lookback 10h
    `${syslogNow()} node-1 smartd[812]: Device: /dev/sdd [SAT], 5 Currently unreadable (pending) sectors`, // fewer than 100: no rule
  ]);
  assert.deepEqual(symptoms.map((s) => [s.reason, /\/dev\/sd./.exec(s.detail.log?.logEntry ?? '')?.[0]]), [['DiskBadBlock', '/dev/sda']]);
  assert.deepEqual(symptoms[0]!.detail.context?.rule, { source: 'disk-monitor', reason: 'DiskBadBlock', type: 'permanent', condition: 'DiskBadBlock' });
});

test('docker-monitor-filelog: a timestamp with a zone and the message from msg="..."', async () => {
  const at = new Date(Date.now() - 1000).toISOString().replace('Z', '000000+00:00').replace(/\.(\d{3})0+/, '.$1123456');
  const symptoms = await feed(await load('docker-monitor-filelog.json'), [
    `time="${at}" level=error msg="Error trying v2 registry: failed to register layer: rename /var/lib/docker/image/overlay2/layerdb/tmp/write-set-1 /var/lib/docker/image/overlay2/layerdb/sha256/9f2e: directory not empty"`,
  ]);
  assert.deepEqual(symptoms.map((s) => s.reason), ['CorruptDockerImage']);
});

test('Go time layouts read as Go reads them', () => {
  const year = new Date().getFullYear();
  assert.equal(new TimeLayout('Jan _2 15:04:05').parse('Feb  3 04:05:06'), new Date(year, 1, 3, 4, 5, 6).getTime());
  assert.equal(new TimeLayout('2006-01-02T15:04:05.999999999-07:00').parse('2026-11-23T07:00:00.123456789+01:00'), Date.parse('2026-11-23T06:00:00.123Z'));
  assert.equal(new TimeLayout('2006-01-02T15:04:05.999999999Z07:00').parse('2026-11-23T07:00:00Z'), Date.parse('2026-11-23T07:00:00Z'));
  assert.equal(new TimeLayout('01/02/2006 03:04:05 PM').parse('11/23/2026 07:00:00 PM'), new Date(2026, 10, 23, 19, 0, 0).getTime());
  assert.ok(Number.isNaN(new TimeLayout('Jan _2 15:04:05').parse('not a time at all')));
  assert.throws(() => new TimeLayout('2006-01-02'), /no hour/);
});

test('Go durations', () => {
  assert.deepEqual(['30s', '5m', '1h30m', '86400s', '1.5s', '100ms'].map((d) => goDuration(d, 'd')), [30_000, 300_000, 5_400_000, 86_400_000, 1500, 100]);
  assert.throws(() => goDuration('5 minutes', 'lookback'), /lookback: must be a Go duration/);
});

test('a permanent rule\'s condition is set only if declared (said at load time), and never one of the kubelet\'s', () => {
  const file = (conditions: unknown, condition: string) => JSON.stringify({ plugin: 'kmsg', conditions, rules: [{ type: 'permanent', condition, reason: 'Bad', pattern: 'bad' }] });
  assert.match(parseMonitorFile(file([], 'Mine'), 'f.json').warnings.join('\n'), /rule Bad: condition Mine is not among the file's conditions, so it is not set on the Node/);
  assert.throws(() => parseMonitorFile(file([{ type: 'Ready', reason: 'KubeletReady', message: 'm' }], 'Ready'), 'f.json'), /Ready is the kubelet's own condition/);
  assert.equal(parseMonitorFile(file([{ type: 'Mine', reason: 'NoProblem', message: 'fine' }], 'Mine'), 'f.json').kind, 'log');
});
