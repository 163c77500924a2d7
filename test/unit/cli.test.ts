import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../../scripts/gen-api.js';

const BIN = path.join(REPO_ROOT, 'dist/agent/main.js');
const nodemedic = (args: string[], input?: string) =>
  spawnSync(BIN, args, { encoding: 'utf8', input, cwd: REPO_ROOT, timeout: 30_000 });

test('--help lists the commands and exits 0', () => {
  for (const args of [['--help'], ['help'], []]) {
    const r = nodemedic(args);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: nodemedic COMMAND/);
    assert.match(r.stdout, /validate FILE\.\.\./);
  }
});

test('version prints the package version', () => {
  const { version } = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8'));
  for (const args of [['version'], ['--version']]) assert.equal(nodemedic(args).stdout.trim(), version);
});

test('an unknown command exits 2 and says so', () => {
  const r = nodemedic(['agnet']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command "agnet"/);
});

test('validate accepts the example manifests', () => {
  const r = nodemedic(['validate', 'manifests/examples/abnormal.yaml', 'manifests/examples/diagnoser.yaml']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /abnormal\.yaml#1: Abnormal web-0-stuck-terminating is valid/);
  assert.match(r.stdout, /diagnoser\.yaml#2: Diagnoser team-db is valid/);
});

test('validate names each bad field, reads stdin, and exits 1', () => {
  const input = `apiVersion: nodemedic.io/v1alpha1
kind: Abnormal
metadata: {name: bad}
spec: {source: Probe, nodeName: node-a, nodeProbe: {timeoutSeconds: -1}}
---
kind: Pod
---
{ not yaml
`;
  const r = nodemedic(['validate', '-', 'no/such/file.yaml'], input);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /-#1: Abnormal bad is invalid:\n {2}spec\.nodeProbe\.timeoutSeconds: must be >= 1 \(got -1\)\n {2}spec\.nodeProbe: must set exactly one of exec, httpGet, tcpSocket/);
  assert.match(r.stderr, /-#2: kind must be Abnormal, InformationCollector, Diagnoser or Recoverer \(got "Pod"\)/);
  assert.match(r.stderr, /-#3: not YAML/);
  assert.match(r.stderr, /no\/such\/file\.yaml: cannot read: ENOENT/);
});

test('rules test shows which line matched which rule', () => {
  const lines = 'hello\nINFO: task kworker/u16:3:2811 blocked for more than 122 seconds.\nEXT4-fs (sda1): Remounting filesystem read-only\n';
  const r = nodemedic(['rules', 'test'], lines);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /line 2: kernel\/TaskHung \(temporary\)\n {2}INFO: task kworker/);
  assert.match(r.stdout, /line 3: kernel\/FilesystemIsReadOnly \(permanent, ReadonlyFilesystem\)/);
  assert.match(r.stdout, /3 line\(s\), 2 match\(es\)/);
});

test('rules test refuses a dangerous rule file, naming the rule', () => {
  const rules = path.join(mkdtempSync(path.join(tmpdir(), 'nm-rules-')), 'slow.json');
  writeFileSync(rules, '{"plugin":"kmsg","rules":[{"reason":"Slow","pattern":"(?:a?){25}a{25}"}]}');
  const r = nodemedic(['rules', 'test', '--rules', rules, '/dev/null']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /rules\[0\] \(Slow\): pattern cannot be matched in linear time/);
});

test('run takes one Abnormal through the built-ins and a scripts directory and shows every step', () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'nm-run-')), 'memory-low.yaml');
  writeFileSync(file, 'apiVersion: nodemedic.io/v1alpha1\nkind: Abnormal\nmetadata: {name: memory-low}\nspec:\n  source: Custom\n  nodeName: demo\n  context: {minAvailableMiB: 10000000, dryRun: true}\n');
  const r = nodemedic(['run', file, '--scripts', 'manifests/examples/scripts']);
  assert.equal(r.status, 1, 'a dry run recovers nothing, so the Abnormal fails');
  assert.match(r.stdout, /InformationCollector script\/10-memory\.sh \(\d+ ms\): ok\n {2}context: \{"memory":\{"availableKiB":\d+/);
  assert.match(r.stdout, /Diagnoser script\/10-memory-low\.sh \(\d+ ms\): identified: \d+ MiB available, less than 10000000 MiB/);
  assert.match(r.stdout, /Recoverer script\/10-drop-caches\.sh \(\d+ ms\): dry run: would write 1 to \/proc\/sys\/vm\/drop_caches/);
  assert.match(r.stdout, /status:\n {2}phase: Failed/);
});

test('run refuses an invalid Abnormal, naming the field', () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'nm-run-')), 'bad.yaml');
  writeFileSync(file, 'spec: {source: Custom}\n');
  const r = nodemedic(['run', file]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /spec\.nodeName: is required/);
});

test('an agent whose port is taken says so in one line and exits 1', async () => {
  // On 9a3c76b this was a raw EADDRINUSE stack trace.
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = taken.address() as { port: number };
    const state = mkdtempSync(path.join(tmpdir(), 'nodemedic-port-'));
    const r = nodemedic(['agent', '--listen', `127.0.0.1:${port}`, '--store', 'file', '--state-dir', state, '--node-name', 'n', '--no-default-rules']);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr.trim(), `nodemedic agent: cannot listen on 127.0.0.1:${port}: the address is in use (another agent on this node, or another program: set listen / --listen to a free one)`);
  } finally {
    taken.close();
  }
});
