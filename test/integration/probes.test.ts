// Probes run by the real agent process on the file store, against real sockets, a real HTTP server and
// real commands; exec probes refused unless the configuration allows them.
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { stringify, parse } from 'yaml';
import { isTerminal } from '../../agent/api/phase.js';
import type { Abnormal, AbnormalSpec } from '../../agent/api/types.generated.js';
import { spawnAgent, waitFor } from '../helpers/agent.js';

const listening = <S extends { listen(port: number, host: string, cb: () => void): unknown; address(): unknown }>(server: S) =>
  new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
const http = createHttpServer((req, res) => (req.url === '/healthz' ? res.end('all good') : res.writeHead(503).end('not ready')));
const tcp = createTcpServer((socket) => socket.end());
const httpPort = await listening(http);
const tcpPort = await listening(tcp);
// A port nothing listens on: taken from the system, then given back.
const spare = createTcpServer();
const closedPort = await listening(spare);
await new Promise((resolve) => spare.close(resolve));
after(() => {
  http.close();
  tcp.close();
});

async function agentWith(config: string) {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-probes-'));
  await mkdir(path.join(dir, 'abnormals'));
  await writeFile(path.join(dir, 'config.yaml'), config);
  const agent = spawnAgent(['--store', 'file', '--state-dir', dir, '--node-name', 'demo', '--config', path.join(dir, 'config.yaml')], path.join(dir, 'agent.log'));
  after(async () => {
    agent.kill('SIGTERM');
    await agent.exited;
  });
  /** Drop in an Abnormal with this probe; resolves to it once it is finished. */
  return async (name: string, probe: Pick<AbnormalSpec, 'nodeProbe' | 'podProbe'>) => {
    const spec: AbnormalSpec = {
      source: 'Probe', nodeName: 'demo', skipDiagnosis: true, skipRecovery: true,
      assignedInformationCollectors: [{ namespace: 'builtin', name: 'probe' }], ...probe,
    };
    await writeFile(path.join(dir, 'abnormals', `${name}.yaml`), stringify({ apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal', spec }));
    return waitFor(`${name} to finish`, async () => {
      const a = parse(await readFile(path.join(dir, 'abnormals', `${name}.yaml`), 'utf8')) as Abnormal;
      return isTerminal(a.status?.phase) ? a : undefined;
    });
  };
}
const probeOf = (a: Abnormal) => a.status?.context?.probe as { healthy: boolean; detail: string } | undefined;

const probeWithDefaults = await agentWith('');
// No container runtime answers at this endpoint: exec in a container must say so, not hang.
const probeWithExec = await agentWith('probes: {allowExec: true, criEndpoint: "unix:///nonexistent/cri.sock"}\n');

test('tcpSocket: a listening port is healthy, a closed one is not', async () => {
  assert.equal(probeOf(await probeWithDefaults('tcp-open', { nodeProbe: { tcpSocket: { port: tcpPort } } }))?.healthy, true);
  const closed = probeOf(await probeWithDefaults('tcp-closed', { nodeProbe: { tcpSocket: { port: closedPort }, timeoutSeconds: 2 } }));
  assert.equal(closed?.healthy, false);
  assert.match(closed?.detail ?? '', /cannot connect to 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
});

test('httpGet: 200 is healthy with the body as output; 503 is not', async () => {
  const ok = await probeWithDefaults('http-ok', { nodeProbe: { httpGet: { port: httpPort, path: '/healthz' } } });
  assert.equal(probeOf(ok)?.healthy, true);
  assert.equal(ok.status?.output, 'all good');
  const bad = probeOf(await probeWithDefaults('http-bad', { nodeProbe: { httpGet: { port: httpPort, path: '/ready' } } }));
  assert.deepEqual([bad?.healthy, bad?.detail], [false, `GET http://127.0.0.1:${httpPort}/ready answered 503`]);
});

test('exec is refused unless the configuration allows it, on the node and in a container', async () => {
  const refused = await probeWithDefaults('exec-refused', { nodeProbe: { exec: { command: ['touch', '/tmp/nodemedic-must-not-exist'] } } });
  assert.equal(probeOf(refused), undefined);
  assert.match(refused.status?.conditions?.[0]?.message ?? '', /builtin\/probe: ExecProbesDisabled: exec probes run commands as root/);
  await assert.rejects(readFile('/tmp/nodemedic-must-not-exist'), 'the command did not run');
  const inPod = await probeWithDefaults('exec-refused-pod', { podProbe: { namespace: 'default', name: 'web', exec: { command: ['true'] } } });
  assert.match(inPod.status?.conditions?.[0]?.message ?? '', /builtin\/probe: ExecProbesDisabled/);
});

test('exec in a container with no container runtime at the endpoint: the reason, at once', async () => {
  const started = Date.now();
  const failed = await probeWithExec('exec-no-runtime', { podProbe: { namespace: 'default', name: 'web', container: 'c', exec: { command: ['true'] } } });
  assert.equal(probeOf(failed), undefined, 'no verdict: the probe did not happen');
  assert.match(failed.status?.conditions?.[0]?.message ?? '',
    /builtin\/probe: ContainerRuntimeError: CRI ListContainers at unix:\/\/\/nonexistent\/cri.sock: .*ENOENT/);
  assert.ok(Date.now() - started < 10_000, 'not waiting out the 10 s call deadline');
});

test('exec, when allowed: the exit code decides, the output is kept, the timeout kills it', async () => {
  const failing = await probeWithExec('exec-exit-3', { nodeProbe: { exec: { command: ['sh', '-c', 'echo checked; exit 3'] } } });
  assert.deepEqual([probeOf(failing)?.healthy, probeOf(failing)?.detail, failing.status?.output], [false, 'sh exited with 3', 'checked']);
  assert.equal(probeOf(await probeWithExec('exec-ok', { nodeProbe: { exec: { command: ['true'] } } }))?.healthy, true);
  const slow = probeOf(await probeWithExec('exec-slow', { nodeProbe: { exec: { command: ['sleep', '30'] }, timeoutSeconds: 1 } }));
  assert.deepEqual([slow?.healthy, slow?.detail], [false, 'sleep did not finish within 1 s']);
});
