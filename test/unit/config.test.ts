import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, DEFAULTS, loadConfig } from '../../agent/config.js';

const file = async (text: string) => {
  const f = path.join(await mkdtemp(path.join(tmpdir(), 'nm-config-')), 'config.yaml');
  await writeFile(f, text);
  return f;
};
const problems = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
  try {
    await loadConfig(args, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('accepted');
};

test('defaults, then the file, then the environment, then flags', async () => {
  const f = await file('nodeName: from-file\nconcurrency: 2\nstore: kube\n');
  assert.deepEqual(await loadConfig(['--config', f], {}), { ...DEFAULTS, nodeName: 'from-file', concurrency: 2, store: 'kube' });
  const c = await loadConfig(['--config', f, '--concurrency', '9'], { NODE_NAME: 'from-env', NODEMEDIC_CONCURRENCY: '5' });
  assert.equal(c.nodeName, 'from-env');
  assert.equal(c.concurrency, 9);
});

test('every bad key is named', async () => {
  const f = await file('concurency: 3\nstore: cloud\nconcurrency: 0\nlisten: everywhere\n');
  assert.deepEqual((await problems(['--config', f], { NODEMEDIC_LOG_LEVEL: 'loud' })).sort(), [
    'concurency: unknown field',
    'concurrency: must be >= 1 (got 0)',
    'listen: must be HOST:PORT, e.g. 127.0.0.1:9095 (got "everywhere")',
    'logLevel: must be one of trace, debug, info, warn, error, fatal (got "loud")',
    'store: must be one of kube, file (got "cloud")',
  ]);
  assert.deepEqual(await problems(['--concurrency', 'many']), ['concurrency: --concurrency must be a number (got "many")']);
  assert.deepEqual(await problems(['--node-name', 'Bad_Name']), ['nodeName: must be a node name (lower-case DNS name) (got "Bad_Name")']);
  assert.match((await problems(['--no-such-flag']))[0]!, /Unknown option '--no-such-flag'/);
  assert.match((await problems(['--config', '/no/such/file']))[0]!, /--config \/no\/such\/file: ENOENT/);
  assert.match((await problems(['--config', await file('- a list\n')]))[0]!, /must be a YAML mapping/);
});

test('a nested key is named with its section, and the value it had', async () => {
  const f = await file('sources:\n  ruleFile: [a.json]\nrecovery:\n  maxPerHour: 0\nalerts:\n  tokenSecret: {name: s}\n');
  assert.deepEqual((await problems(['--config', f])).sort(), [
    'alerts.tokenSecret.key: is required',
    'recovery.maxPerHour: must be >= 1 (got 0)',
    'sources.ruleFile: unknown field',
  ]);
});

test('a section given in part keeps the defaults of the rest; the defaults come from the schema', async () => {
  const c = await loadConfig(['--config', await file('nodeName: n\nrecovery:\n  dryRun: true\n')], {});
  assert.deepEqual(c.recovery, { ...DEFAULTS.recovery, dryRun: true });
  assert.equal(DEFAULTS.recovery.maxPerHour, 6);
  assert.deepEqual(DEFAULTS.recovery.allowedExecutables, ['containerd-shim-runc-v2', 'containerd-shim-runc-v1', 'containerd-shim', 'docker-containerd-shim']);
  assert.equal(DEFAULTS.listen, '127.0.0.1:9095');
});

test('what JSON Schema cannot say is checked after it: addresses and CIDRs, a token off loopback', async () => {
  const f = await file('probes:\n  allowedTargets: [10.0.0.0/8, nowhere]\nbuiltinProcessors: {serve: true}\nlisten: 0.0.0.0:9095\n');
  assert.deepEqual((await problems(['--config', f])).sort(), [
    'builtinProcessors.serve: serving the built-in processors on 0.0.0.0:9095, which other hosts can reach, needs builtinProcessors.tokenFile or tokenSecret',
    'probes.allowedTargets[1]: must be an address or a CIDR such as 10.0.0.0/8 (got "nowhere")',
  ]);
});

test('each configuration gets defaults of its own: changing one changes no other', async () => {
  const [a, b] = [await loadConfig(['--node-name', 'a'], {}), await loadConfig(['--node-name', 'b'], {})];
  a.sources.ruleFiles.push('/etc/x.yaml');
  a.recovery.allowedExecutables.pop();
  assert.deepEqual(b.sources.ruleFiles, []);
  assert.deepEqual(b.recovery.allowedExecutables, DEFAULTS.recovery.allowedExecutables);
  assert.deepEqual(DEFAULTS.sources.ruleFiles, []);
});
