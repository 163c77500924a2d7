// Trust model, what a probe may be made to do (docs/security.md). On a2117e0 a probe's httpGet read the
// whole body before cutting it to 64 KiB, and its timeout did not stop the download: one probe of an
// endless response took the agent from 116 MB to 5.8 GB resident. The built-in probe collector runs
// here in this process against real HTTP servers on loopback that never stop sending.
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { after, test } from 'node:test';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { probeCollector } from '../../collectors/probe.js';

/** A server whose one route sends `chunk` forever, as fast as the client reads (`gapMs` between chunks); it counts what it sent and sees the client go. */
function endless(chunk: Buffer, gapMs = 0) {
  const seen = { sent: 0, closedByClient: new Promise<void>(() => {}) };
  const server = createServer((_req, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    seen.closedByClient = new Promise<void>((resolve) => res.on('close', resolve));
    const send = () => {
      if (res.destroyed) return;
      seen.sent += chunk.length;
      const more = res.write(chunk);
      if (gapMs > 0) setTimeout(send, gapMs);
      else if (more) setImmediate(send);
      else res.once('drain', send);
    };
    send();
  });
  return { server, seen };
}

async function listen(server: ReturnType<typeof createServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.on('connection', (socket) => after(() => socket.destroy()));
  return (server.address() as { port: number }).port;
}

const probe = probeCollector({ allowExec: false });
const abnormalProbing = (port: number, timeoutSeconds: number): Abnormal => ({
  metadata: { namespace: 'default', name: 'p' },
  spec: { source: 'Probe', nodeName: 'demo', nodeProbe: { httpGet: { host: '127.0.0.1', port, path: '/' }, timeoutSeconds } },
});

test('security: an endless response is read only up to the 64 KiB cap, then the connection is closed', async () => {
  const { server, seen } = endless(Buffer.alloc(64 * 1024, 'x'));
  const port = await listen(server);
  const outcome = await probe.run(abnormalProbing(port, 30), new AbortController().signal);
  assert.ok(outcome.ok);
  assert.equal(outcome.output?.length, 64 * 1024, 'the output is the first 64 KiB');
  await seen.closedByClient; // the agent hung up; the test would time out otherwise
  // What the server got out before it saw the close is the cap plus what the sockets buffer, not the endless body.
  assert.ok(seen.sent < 32 * 1024 * 1024, `${seen.sent} bytes sent before the agent hung up`);
});

test('security: the timeout covers the body too: a response that trickles forever is cut off at timeoutSeconds', async () => {
  const { server, seen } = endless(Buffer.from('.'), 50); // 20 bytes a second: never reaches the cap
  const port = await listen(server);
  const outcome = await probe.run(abnormalProbing(port, 1), new AbortController().signal);
  assert.ok(outcome.ok);
  assert.equal((outcome.context?.probe as { healthy: boolean }).healthy, false);
  assert.match((outcome.context?.probe as { detail: string }).detail, /failed/);
  await seen.closedByClient;
});

test('security: a redirect is not followed: the probe reports it and asks nothing of where it points', async () => {
  let redirected = 0;
  const elsewhere = createServer((_req, res) => {
    redirected++;
    res.end('secret');
  });
  const elsewherePort = await listen(elsewhere);
  const redirecting = createServer((_req, res) => res.writeHead(302, { location: `http://127.0.0.1:${elsewherePort}/latest/meta-data` }).end());
  const port = await listen(redirecting);
  const outcome = await probe.run(abnormalProbing(port, 5), new AbortController().signal);
  assert.ok(outcome.ok);
  assert.match((outcome.context?.probe as { detail: string }).detail, /answered 302/);
  assert.equal(redirected, 0);
});
