// Real HTTP processors for tests: a server on loopback whose routes answer as the test says, and that
// counts the calls to each route.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Abnormal } from '../../agent/api/types.generated.js';

export type Handler = (abnormal: Abnormal, req: IncomingMessage, res: ServerResponse) => unknown | Promise<unknown>;

/** Reply with the Abnormal, its status changed as given (what a well-behaved processor does). */
export const answer = (abnormal: Abnormal, status: NonNullable<Abnormal['status']>) => ({ ...abnormal, status: { ...abnormal.status, ...status } });

export class ProcessorServer {
  readonly calls = new Map<string, number>();
  private readonly routes = new Map<string, Handler>();
  private readonly server: Server;
  url = '';

  constructor(tls?: { key: string; cert: string }) {
    const listener = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    this.server = tls ? createHttpsServer(tls, listener) : createHttpServer(listener);
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as { port: number };
    this.url = `${'cert' in this.server ? 'https' : 'http'}://127.0.0.1:${port}`;
    return this;
  }

  /** A handler's return value is sent as JSON with status 200, unless it wrote the response itself. */
  route(path: string, handler: Handler): string {
    this.routes.set(path, handler);
    return `${this.url}${path}`;
  }

  count(path: string): number {
    return this.calls.get(path) ?? 0;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    this.calls.set(path, this.count(path) + 1);
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const handler = this.routes.get(path);
      if (!handler) {
        res.writeHead(404).end('no such route');
        return;
      }
      const result = await handler(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Abnormal, req, res);
      if (!res.headersSent && !res.writableEnded) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result));
      }
    } catch (err) {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    }
  }
}
