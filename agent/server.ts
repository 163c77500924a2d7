// The agent's HTTP server: /healthz (the process is alive), /readyz (the store's first list is in),
// /metrics (Prometheus),
// and the built-in processors at POST /processors/<kind>/<name>, speaking the same contract as any
// HTTP processor, so other nodes' tooling can call them. Built-in recoverers are served only when the
// configuration says so: whoever reaches this port could otherwise make the node act.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { kindOfPlural } from './api/kinds.js';
import { Reason } from './api/reasons.js';
import { ValidationError, validateAbnormal } from './api/validate.js';
import { TooLarge, readCapped } from './lib/capped-read.js';
import { renderReply, type Processor } from './processors/contract.js';
import type { AlertSource } from './sources/alerts.js';

const MAX_REQUEST_BYTES = 2 * 1024 * 1024;
const MAX_ALERT_BYTES = 1024 * 1024;

export type ServerOptions = {
  listen: string;
  builtins: readonly Processor[];
  serveRecoverers: boolean;
  ready: () => boolean;
  /** Prometheus metrics for GET /metrics. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** The Alertmanager receiver and the token it requires; absent: /v1/alerts answers 404. */
  alerts?: { receiver: AlertSource; token: () => Promise<string> };
  log: Logger;
};

export async function startServer(opts: ServerOptions): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    handle(req, res, opts).catch((err) => {
      opts.log.error({ err }, 'request failed');
      if (!res.headersSent) reply(res, 500, { reason: Reason.InternalError, message: (err as Error).message });
    });
  });
  const separator = opts.listen.lastIndexOf(':');
  const host = opts.listen.slice(0, separator).replace(/^\[|\]$/g, '');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
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
  if (url.pathname === '/readyz') return opts.ready() ? text(res, 200, 'ok') : text(res, 503, 'not ready: the store has not synced yet');
  if (url.pathname === '/metrics' && opts.metrics) {
    const { contentType, body } = await opts.metrics();
    res.writeHead(200, { 'content-type': contentType }).end(body);
    return;
  }

  if (url.pathname === '/v1/alerts') return handleAlerts(req, res, opts);

  const match = /^\/processors\/([a-z]+)\/([a-z0-9][-a-z0-9.]*)$/.exec(url.pathname);
  const kind = match ? kindOfPlural(match[1]!) : undefined;
  const processor = kind && opts.builtins.find((p) => p.kind === kind && p.ref.name === match![2]);
  if (!processor || (kind === 'Recoverer' && !opts.serveRecoverers)) {
    return reply(res, 404, { reason: Reason.NotFound, message: `no built-in processor at ${url.pathname}` });
  }
  if (req.method !== 'POST') return reply(res, 405, { reason: Reason.MethodNotAllowed, message: 'POST the Abnormal as JSON' });

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
  let token: string;
  try {
    token = (await opts.alerts.token()).trim();
  } catch (err) {
    opts.log.error({ err: (err as Error).message }, 'cannot read the alert receiver token');
    return reply(res, 503, { reason: Reason.TokenUnavailable, message: 'the agent cannot read its alert receiver token' });
  }
  if (!sameSecret(req.headers.authorization ?? '', `Bearer ${token}`)) {
    res.on('finish', () => req.socket.destroy()); // do not read what an unauthenticated caller sends
    return reply(res, 401, { reason: Reason.Unauthorized, message: 'a valid bearer token is required' });
  }
  const body = await readBodyOr413(req, res, MAX_ALERT_BYTES);
  if (body === undefined) return;
  const result = opts.alerts.receiver.receive(body);
  return reply(res, result.status, result.body);
}

/** Compares in constant time, so the token cannot be guessed from how long a refusal takes. */
function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
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
