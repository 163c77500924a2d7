// Trust model, the network client of the node (docs/security.md): whoever reaches the agent's port.
// On a2117e0 anyone could POST to /processors/informationcollectors/probe and have the node fetch any
// URL with any headers (a fake cloud-metadata token came back in the reply). Now the built-in
// processors are off unless switched on, behind a token of their own unless the server is on loopback,
// and /healthz, /readyz and /metrics stay open. The agent runs in this process on the file store, with
// a real HTTP server standing in for a cloud's metadata service.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { parseAllDocuments } from 'yaml';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { ConfigError, DEFAULTS, loadConfig, type Config } from '../../agent/config.js';
import { REPO_ROOT } from '../cluster/cluster.js';

/** What a cloud's metadata service would hand to anyone who asks from the node. */
const metadata = { requests: 0 };
const metadataServer = createServer((_req, res) => {
  metadata.requests++;
  res.end('{"AccessKeyId":"fake","SecretAccessKey":"stolen"}');
});
await new Promise<void>((resolve) => metadataServer.listen(0, '127.0.0.1', resolve));
const metadataPort = (metadataServer.address() as { port: number }).port;
after(() => new Promise<void>((resolve) => metadataServer.close(() => resolve())));

const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-security-http-'));
after(() => rm(dir, { recursive: true, force: true }));
const tokenFile = path.join(dir, 'token');
await writeFile(tokenFile, 'the-right-token\n');

const agents: RunningAgent[] = [];
after(() => Promise.all(agents.map((a) => a.stop())));
async function agent(builtinProcessors: Partial<Config['builtinProcessors']> = {}): Promise<RunningAgent> {
  const started = await startAgent({
    ...DEFAULTS, nodeName: 'demo', store: 'file', stateDir: await mkdtemp(path.join(dir, 'state-')), listen: '127.0.0.1:0', logLevel: 'warn',
    sources: { ...DEFAULTS.sources, defaultRules: false }, scripts: { ...DEFAULTS.scripts, collectors: '', diagnosers: '', recoverers: '' },
    builtinProcessors: { ...DEFAULTS.builtinProcessors, ...builtinProcessors },
  }, pino({ level: 'warn' }));
  agents.push(started);
  return started;
}

/** The SSRF the attack sent: a probe of the metadata service, with a header of the caller's choosing. */
const ssrf = JSON.stringify({
  apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal', metadata: { name: 'x', namespace: 'default' },
  spec: { source: 'Probe', nodeName: 'demo', nodeProbe: { httpGet: { port: metadataPort, path: '/latest/meta-data/iam', httpHeaders: [{ name: 'Metadata-Flavor', value: 'Google' }] } } },
});
const post = (port: number, what: string, headers: Record<string, string> = {}) =>
  fetch(`http://127.0.0.1:${port}/processors/${what}`, { method: 'POST', body: ssrf, headers: { 'content-type': 'application/json', ...headers } });

test('security: the built-in processors are not served unless switched on: the probe cannot be made to fetch a URL; health and metrics stay open', async () => {
  const { port } = await agent();
  const before = metadata.requests;
  const res = await post(port, 'informationcollectors/probe');
  assert.equal(res.status, 404);
  assert.match(((await res.json()) as { message: string }).message, /not served here \(builtinProcessors\.serve\)/);
  assert.equal((await post(port, 'informationcollectors/process-tree')).status, 404);
  assert.equal((await post(port, 'informationcollectors/goroutine-dump')).status, 404);
  assert.equal(metadata.requests, before, 'nothing was fetched');
  for (const open of ['/healthz', '/readyz', '/metrics']) assert.equal((await fetch(`http://127.0.0.1:${port}${open}`)).status, 200, open);
});

test('security: switched on with a token: no token or a wrong one is refused before anything runs; the right one is served; recoverers need their own switch', async () => {
  const { port } = await agent({ serve: true, tokenFile });
  const before = metadata.requests;
  const none = await post(port, 'informationcollectors/probe');
  assert.equal(none.status, 401);
  assert.equal((await post(port, 'informationcollectors/probe', { authorization: 'Bearer the-wrong-token' })).status, 401);
  assert.equal((await post(port, 'informationcollectors/probe', { authorization: 'the-right-token' })).status, 401, 'the scheme is part of it');
  assert.equal(metadata.requests, before, 'a refused caller made the node fetch nothing');
  const allowed = await post(port, 'informationcollectors/probe', { authorization: 'Bearer the-right-token' });
  assert.equal(allowed.status, 200);
  assert.equal(metadata.requests, before + 1, 'the token holder is served');
  assert.equal((await post(port, 'recoverers/signal-process', { authorization: 'Bearer the-right-token' })).status, 404, 'recoverers are not served unless serveRecoverers');
});

test('security: a token that cannot be read lets no one in: 503, and nothing runs', async () => {
  const { port } = await agent({ serve: true, tokenFile: path.join(dir, 'no-such-token') });
  const before = metadata.requests;
  assert.equal((await post(port, 'informationcollectors/probe', { authorization: 'Bearer ' })).status, 503);
  assert.equal(metadata.requests, before);
});

test('security: on an address other hosts can reach, serving the built-ins without a token is refused at start, naming the key', async () => {
  const config = path.join(dir, 'open.yaml');
  await writeFile(config, 'nodeName: demo\nlisten: 0.0.0.0:9095\nbuiltinProcessors: {serve: true}\n');
  await assert.rejects(loadConfig(['--config', config], {}), (err) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /builtinProcessors\.serve: serving the built-in processors on 0\.0\.0\.0:9095, which other hosts can reach, needs builtinProcessors\.tokenFile or tokenSecret/);
    return true;
  });
  await writeFile(config, 'nodeName: demo\nlisten: 127.0.0.1:9095\nbuiltinProcessors: {serve: true}\n');
  assert.equal((await loadConfig(['--config', config], {})).builtinProcessors.serve, true, 'on loopback no token is needed');
});

test('security: the shipped DaemonSet, on the node\'s address, serves no processor', async () => {
  const docs = parseAllDocuments(await readFile(path.join(REPO_ROOT, 'manifests/deploy/daemonset.yaml'), 'utf8')).map((d) => d.toJS() as { kind?: string; data?: Record<string, string> });
  const shipped = docs.find((d) => d.kind === 'ConfigMap')!.data!['config.yaml']!;
  const file = path.join(dir, 'shipped.yaml');
  await writeFile(file, shipped);
  const config = await loadConfig(['--config', file], { NODE_NAME: 'demo' });
  assert.equal(config.listen, '0.0.0.0:9095', 'it listens on the node\'s address (metrics, alerts)');
  assert.equal(config.builtinProcessors.serve, false);
});
