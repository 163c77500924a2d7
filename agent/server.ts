// The agent's HTTP server: /healthz (the process is alive), /readyz (the store's first list is in; until then, why not) and
// /metrics (Prometheus), open to anyone who reaches the port; /v1/alerts, the Alertmanager receiver,
// behind its bearer token; and, only when the configuration switches them on, the built-in processors
// at POST /processors/<kind>/<name>, speaking the same contract as any HTTP processor, behind a bearer
// token of their own unless the server listens on loopback only. A caller of a built-in can make the
// node fetch a URL, read its processes or signal a shim, so they are off by default; recoverers need a
// second switch. docs/security.md has the whole trust model.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import http from './lib/node-http.js';
import type { Logger } from 'pino';
import { kindOfPlural } from './api/kinds.js';
import { Reason } from './api/reasons.js';
import { ValidationError, validateAbnormal } from './api/validate.js';
import type { BearerToken } from './lib/bearer-token.js';
import { TooLarge, readCapped } from './lib/capped-read.js';
import { httpDate } from './lib/utc-dates.js';
import { renderReply, type Processor } from './processors/contract.js';
import type { AlertSource } from './sources/alerts.js';
import { StartupError } from './startup.js';

/** Why the server cannot listen, as an operator would want to read it. */
function listenError(listen: string, err: NodeJS.ErrnoException): Error {
  const why: Record<string, string> = {
    EADDRINUSE: 'the address is in use (another agent on this node, or another program: set listen / --listen to a free one)',
    EACCES: 'not allowed (a port below 1024 needs the right to bind it)',
    EADDRNOTAVAIL: 'no such address on this machine',
  };
  return err.code && why[err.code] ? new StartupError(`cannot listen on ${listen}: ${why[err.code]}`) : err;
}

const MAX_REQUEST_BYTES = 2 * 1024 * 1024;
const MAX_ALERT_BYTES = 1024 * 1024;

export type ServerOptions = {
  listen: string;
  /** The built-in processors to serve, and the token callers need (none: loopback only); absent: none served. */
  builtins?: { processors: readonly Processor[]; serveRecoverers: boolean; token?: BearerToken };
  /** Undefined when ready; else why not, for /readyz to say. */
  notReady: () => string | undefined;
  /** Prometheus metrics for GET /metrics. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** The Alertmanager receiver and the token it requires; absent: /v1/alerts answers 404. */
  alerts?: { receiver: AlertSource; token: BearerToken };
  log: Logger;
};

export async function startServer(opts: ServerOptions): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    // Set here, Node does not write its own, which reads the local time zone: 1 MiB resident for a
    // probe (agent/lib/utc-dates.ts).
    res.setHeader('date', httpDate(new Date()));
    handle(req, res, opts).catch((err) => {
      opts.log.error({ err }, 'request failed');
      if (!res.headersSent) reply(res, 500, { reason: Reason.InternalError, message: (err as Error).message });
    });
  });
  const separator = opts.listen.lastIndexOf(':');
  const host = opts.listen.slice(0, separator).replace(/^\[|\]$/g, '');
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(opts.listen, err)));
    server.listen(Number(opts.listen.slice(separator + 1)), host, resolve);
  });
  const { port } = server.address() as { port: number };
  return {
    server,
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: ServerOptions): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://agent');
  if (url.pathname === '/healthz') return text(res, 200, 'ok');
  if (url.pathname === '/readyz') {
    const why = opts.notReady();
    return why === undefined ? text(res, 200, 'ok') : text(res, 503, `not ready: ${why}`);
  }
  if (url.pathname === '/metrics' && opts.metrics) {
    const { contentType, body } = await opts.metrics();
    res.writeHead(200, { 'content-type': contentType }).end(body);
    return;
  }

  if (url.pathname === '/v1/alerts') return handleAlerts(req, res, opts);

  if (url.pathname.startsWith('/processors/')) return handleBuiltin(url, req, res, opts);
  return reply(res, 404, { reason: Reason.NotFound, message: `nothing at ${url.pathname}` });
}

async function handleBuiltin(url: URL, req: IncomingMessage, res: ServerResponse, opts: ServerOptions): Promise<void> {
  const builtins = opts.builtins;
  if (!builtins) return reply(res, 404, { reason: Reason.NotFound, message: 'the built-in processors are not served here (builtinProcessors.serve)' });
  const match = /^\/processors\/([a-z]+)\/([a-z0-9][-a-z0-9.]*)$/.exec(url.pathname);
  const kind = match ? kindOfPlural(match[1]!) : undefined;
  const processor = kind && builtins.processors.find((p) => p.kind === kind && p.ref.name === match![2]);
  if (!processor || (kind === 'Recoverer' && !builtins.serveRecoverers)) {
    return reply(res, 404, { reason: Reason.NotFound, message: `no built-in processor at ${url.pathname}` });
  }
  if (req.method !== 'POST') return reply(res, 405, { reason: Reason.MethodNotAllowed, message: 'POST the Abnormal as JSON' });
  if (builtins.token && !(await authorized(req, res, builtins.token, opts.log))) return;

  const body = await readBodyOr413(req, res, MAX_REQUEST_BYTES);
  if (body === undefined) return;
  let abnormal;
  try {
    abnormal = validateAbnormal(JSON.parse(body));
  } catch (err) {
    const message = err instanceof ValidationError ? err.problems.join('; ') : `not JSON: ${(err as Error).message}`;
    return reply(res, 400, { reason: Reason.InvalidAbnormal, message });
  }
  const controller = new AbortController();
  req.on('close', () => controller.abort()); // the caller gave up
  const outcome = await processor.run(abnormal, controller.signal);
  if (!outcome.ok) return reply(res, 422, { reason: outcome.reason, message: outcome.message });
  return reply(res, 200, renderReply(processor.kind, abnormal, outcome));
}

async function handleAlerts(req: IncomingMessage, res: ServerResponse, opts: ServerOptions): Promise<void> {
  if (!opts.alerts) return reply(res, 404, { reason: Reason.NotFound, message: 'the alert receiver is off: configure alerts.tokenFile or alerts.tokenSecret' });
  if (req.method !== 'POST') return reply(res, 405, { reason: Reason.MethodNotAllowed, message: 'POST an Alertmanager webhook payload' });
  if (!(await authorized(req, res, opts.alerts.token, opts.log))) return;
  const body = await readBodyOr413(req, res, MAX_ALERT_BYTES);
  if (body === undefined) return;
  const result = opts.alerts.receiver.receive(body);
  return reply(res, result.status, result.body);
}

/** True when the request carries the token; otherwise answers 401 (or 503 when the token cannot be read) and closes. */
async function authorized(req: IncomingMessage, res: ServerResponse, token: BearerToken, log: Logger): Promise<boolean> {
  let admitted: boolean;
  try {
    admitted = await token.admits(req.headers.authorization);
  } catch (err) {
    log.error({ err: (err as Error).message, path: req.url }, 'cannot read the bearer token callers must send');
    reply(res, 503, { reason: Reason.TokenUnavailable, message: 'the agent cannot read the token for this endpoint' });
    return false;
  }
  if (admitted) return true;
  res.on('finish', () => req.socket.destroy()); // what an unauthenticated caller sends is never read
  reply(res, 401, { reason: Reason.Unauthorized, message: 'a valid bearer token is required' });
  return false;
}

/** The request body; or, past `max` bytes, a 413 reply and the connection dropped (the rest is never read). */
async function readBodyOr413(req: IncomingMessage, res: ServerResponse, max: number): Promise<string | undefined> {
  try {
    return (await readCapped(req, max, { destroy: false })).text;
  } catch (err) {
    if (!(err instanceof TooLarge)) throw err;
    res.on('finish', () => req.socket.destroy());
    res.setHeader('connection', 'close');
    reply(res, 413, { reason: Reason.TooLarge, message: `the request is larger than ${max} bytes` });
    return undefined;
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(`${body}\n`);
}
