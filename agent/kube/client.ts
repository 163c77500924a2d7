// The agent's Kubernetes client: JSON over HTTPS to the apiserver, and watches as streams of JSON
// lines, on Node's own https module. It is small on purpose (docs/design.md, "The Kubernetes client"):
// the agent makes a dozen kinds of call, and @kubernetes/client-node loads its whole generated API to
// make them — about 60 MiB resident on every node. Everything under agent/kube is imported only once
// the kube store is chosen.
//
// Bounded like every input: a reply is read up to MAX_REPLY_BYTES, a watch event up to
// MAX_WATCH_EVENT_BYTES; a call that gets no answer in REQUEST_TIMEOUT_MS fails, and a watch that
// stays silent past its own timeout is closed.
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import https from 'node:https';
import type { V1Pod } from '@kubernetes/client-node';
import { readCapped } from '../lib/capped-read.js';
import http from '../lib/node-http.js';
import { LineSplitter } from '../lib/line-splitter.js';
import { loadKubeConnection, type KubeConnection } from './kubeconfig.js';

export const MAX_REPLY_BYTES = 64 * 1024 * 1024;
export const MAX_WATCH_EVENT_BYTES = 16 * 1024 * 1024;
export const REQUEST_TIMEOUT_MS = 30_000;
const EXEC_TIMEOUT_MS = 30_000;
const EXEC_MAX_OUTPUT = 1024 * 1024;
/** A token file is read again at most this often (the kubelet rotates the in-cluster one well before it expires). */
const TOKEN_FILE_CHECK_MS = 10_000;

/** Any object the apiserver stores: what the client itself reads of it. */
export type KubeObject = { metadata?: { name?: string; namespace?: string; resourceVersion?: string } };
export type KubeList<T> = { metadata?: { resourceVersion?: string; continue?: string }; items: T[] };
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

/** The apiserver answered with an error status; `message` is its own words (its Status) where it gave them. */
export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}

/** The HTTP status of a failed API call, or undefined for a failure that is not the apiserver's answer. */
export const apiStatus = (err: unknown): number | undefined => (err instanceof KubeApiError ? err.status : undefined);

/** The apiserver's own message for a failed call, else the error's. */
export const apiMessage = (err: unknown): string => (err as Error).message;

export type Query = Record<string, string | number | boolean | undefined>;
type RequestOptions = { query?: Query; body?: unknown; contentType?: string };

/** A running watch: `done` settles when it ends (resolves on a clean close by the server). */
export type WatchStream = { done: Promise<void>; stop(): void };

export class KubeClient {
  private agent?: HttpAgent;
  private agentCert?: string;
  private tokenFromFile?: { token: string; checkedAt: number; mtimeMs: number };
  private execCredential?: { token?: string; cert?: string; key?: string; expiresAt: number };
  private execRunning?: Promise<{ token?: string; cert?: string; key?: string }>;

  /**
   * `idleConnections`: how many open connections are kept between requests (4: an agent's few
   * requests at a time). A caller sending hundreds at once keeps more, or each burst opens them anew.
   */
  constructor(readonly connection: KubeConnection, private readonly idleConnections = 4) {}

  /** GET, POST, PUT, PATCH or DELETE `path` with a JSON body; the reply parsed. */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, options);
    const { text, cut } = await readCapped(res, MAX_REPLY_BYTES, { cut: true });
    if (cut) throw new Error(`${method} ${path}: the reply is larger than ${MAX_REPLY_BYTES} bytes`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** GET `path`; undefined when there is no such object. */
  async get<T = unknown>(path: string, query?: Query): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', path, { query });
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /** Every item of a list, page by page. */
  async list<T = KubeObject>(path: string, query: Query = {}): Promise<KubeList<T>> {
    const items: T[] = [];
    let page: KubeList<T>;
    let next: string | undefined;
    do {
      page = await this.request<KubeList<T>>('GET', path, { query: { ...query, limit: 500, continue: next } });
      items.push(...(page.items ?? []));
      next = page.metadata?.continue || undefined;
    } while (next);
    return { metadata: page.metadata, items };
  }

  /**
   * Watch `path` from `resourceVersion`: `onEvent` gets each object changed. Resolves once the apiserver
   * accepted the watch. The server closes it after `timeoutSeconds` (then `done` resolves); an ERROR
   * event (410 Gone: the resourceVersion is too old) rejects `done` with a KubeApiError.
   */
  async watch<T extends KubeObject>(path: string, query: Query, onEvent: (type: WatchEventType, object: T) => void): Promise<WatchStream> {
    const timeoutSeconds = Number(query.timeoutSeconds ?? 300);
    const res = await this.send('GET', path, { query: { ...query, watch: true, allowWatchBookmarks: true, timeoutSeconds } });
    let stopped = false;
    const done = new Promise<void>((resolve, reject) => {
      const lines = new LineSplitter(MAX_WATCH_EVENT_BYTES);
      // No byte for longer than the server's own timeout: the connection is dead without saying so.
      const silent = () => fail(new Error(`the watch of ${path} stayed silent for ${timeoutSeconds + 30} s`));
      let silence = setTimeout(silent, (timeoutSeconds + 30) * 1000);
      const fail = (err: Error) => {
        clearTimeout(silence);
        res.destroy();
        reject(err);
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        clearTimeout(silence);
        silence = setTimeout(silent, (timeoutSeconds + 30) * 1000);
        for (const line of lines.push(chunk)) {
          if (lines.cut > 0) return fail(new Error(`a watch event of ${path} is larger than ${MAX_WATCH_EVENT_BYTES} bytes`));
          if (!line.trim()) continue;
          let event: { type: string; object: T };
          try {
            event = JSON.parse(line) as { type: string; object: T };
          } catch {
            return fail(new Error(`the watch of ${path} sent a line that is not JSON`));
          }
          if (event.type === 'ERROR') {
            const status = event.object as { code?: number; message?: string; reason?: string };
            return fail(new KubeApiError(status.code ?? 500, status.message ?? 'the watch failed', status.reason));
          }
          try {
            onEvent(event.type as WatchEventType, event.object);
          } catch (err) {
            return fail(err as Error);
          }
        }
      });
      res.on('end', () => {
        clearTimeout(silence);
        resolve();
      });
      res.on('error', (err) => (stopped ? resolve() : fail(err)));
      res.on('close', () => {
        clearTimeout(silence);
        if (stopped) resolve();
        else if (!res.complete) fail(new Error(`the watch of ${path} was cut off`));
      });
    });
    done.catch(() => {}); // the owner awaits it; a watch stopped before that must not be an unhandled rejection
    return {
      done,
      stop: () => {
        stopped = true;
        res.destroy();
      },
    };
  }

  /** The response to one request, once its status is known; an error status is thrown as a KubeApiError. */
  private async send(method: string, path: string, { query, body, contentType }: RequestOptions): Promise<IncomingMessage> {
    const res = await this.sendOnce(method, path, query, body, contentType);
    if (res.statusCode === 401 && (this.connection.exec || this.connection.tokenFile)) {
      // A rotated or expired credential: fetch it again, once.
      res.resume();
      this.execCredential = undefined;
      this.tokenFromFile = undefined;
      return this.checked(method, path, await this.sendOnce(method, path, query, body, contentType));
    }
    return this.checked(method, path, res);
  }

  private async checked(method: string, path: string, res: IncomingMessage): Promise<IncomingMessage> {
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return res;
    const { text } = await readCapped(res, 64 * 1024, { cut: true }).catch(() => ({ text: '' }));
    let apiStatus: { message?: unknown; reason?: unknown } | undefined;
    try {
      apiStatus = JSON.parse(text) as typeof apiStatus;
    } catch {
      // not the apiserver's Status (a proxy's page, say)
    }
    const message = typeof apiStatus?.message === 'string' ? apiStatus.message : `${method} ${path}: HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`;
    throw new KubeApiError(status, message, typeof apiStatus?.reason === 'string' ? apiStatus.reason : undefined);
  }

  private async sendOnce(method: string, path: string, query: Query | undefined, body: unknown, contentType = 'application/json'): Promise<IncomingMessage> {
    const headers: Record<string, string | string[]> = { Accept: 'application/json', 'User-Agent': 'nodemedic' };
    const { cert, key } = await this.authenticate(headers);
    const impersonate = this.connection.impersonate;
    if (impersonate) {
      headers['Impersonate-User'] = impersonate.user;
      if (impersonate.groups.length > 0) headers['Impersonate-Group'] = impersonate.groups;
    }
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = String(Buffer.byteLength(payload));
    }
    const url = new URL(this.connection.server + path);
    for (const [name, value] of Object.entries(query ?? {})) if (value !== undefined && value !== '') url.searchParams.set(name, String(value));
    const secure = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(url, { method, headers, agent: this.agentFor(secure, cert, key) }, resolve);
      // Until the reply's headers arrive; a watch then runs as long as the server keeps it.
      const timer = setTimeout(() => req.destroy(new Error(`${method} ${path}: no answer from ${this.connection.server} in ${REQUEST_TIMEOUT_MS / 1000} s`)), REQUEST_TIMEOUT_MS);
      req.on('response', () => clearTimeout(timer));
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(payload);
    });
  }

  /** One keep-alive connection pool, made again only when an exec plugin hands out a new client certificate. */
  private agentFor(secure: boolean, cert: string | undefined, key: string | undefined): HttpAgent {
    if (this.agent && this.agentCert === cert) return this.agent;
    this.agent?.destroy();
    const { ca, insecureSkipTlsVerify, tlsServerName } = this.connection;
    this.agentCert = cert;
    this.agent = secure
      ? new https.Agent({ keepAlive: true, maxFreeSockets: this.idleConnections, ca, cert, key, rejectUnauthorized: !insecureSkipTlsVerify, ...(tlsServerName ? { servername: tlsServerName } : {}) })
      : new http.Agent({ keepAlive: true, maxFreeSockets: this.idleConnections });
    return this.agent;
  }

  /** Sets the Authorization header this identity needs; returns the client certificate to present. */
  private async authenticate(headers: Record<string, string | string[]>): Promise<{ cert?: string; key?: string }> {
    const c = this.connection;
    let token = c.token;
    let cert = c.cert;
    let key = c.key;
    if (c.tokenFile) token = await this.readTokenFile(c.tokenFile);
    if (c.exec) {
      const credential = await this.runExecPlugin();
      token = credential.token ?? token;
      cert = credential.cert ?? cert;
      key = credential.key ?? key;
    }
    if (token) headers.Authorization = `Bearer ${token}`;
    else if (c.basicAuth) headers.Authorization = `Basic ${Buffer.from(`${c.basicAuth.username}:${c.basicAuth.password}`).toString('base64')}`;
    return { cert, key };
  }

  private async readTokenFile(file: string): Promise<string> {
    const now = Date.now();
    const held = this.tokenFromFile;
    if (held && now - held.checkedAt < TOKEN_FILE_CHECK_MS) return held.token;
    const { mtimeMs } = await stat(file);
    if (held && held.mtimeMs === mtimeMs) {
      held.checkedAt = now;
      return held.token;
    }
    const token = (await readFile(file, 'utf8')).trim();
    this.tokenFromFile = { token, checkedAt: now, mtimeMs };
    return token;
  }

  /** The exec plugin's credential; the plugin is run again once it has expired (one run at a time). */
  private async runExecPlugin(): Promise<{ token?: string; cert?: string; key?: string }> {
    const held = this.execCredential;
    if (held && held.expiresAt > Date.now()) return held;
    this.execRunning ??= this.execOnce().finally(() => (this.execRunning = undefined));
    return this.execRunning;
  }

  private async execOnce(): Promise<{ token?: string; cert?: string; key?: string }> {
    const plugin = this.connection.exec!;
    const execInfo = { apiVersion: plugin.apiVersion, kind: 'ExecCredential', spec: { interactive: false } };
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(plugin.command, plugin.args, {
        env: { ...process.env, ...plugin.env, KUBERNETES_EXEC_INFO: JSON.stringify(execInfo) },
        timeout: EXEC_TIMEOUT_MS, maxBuffer: EXEC_MAX_OUTPUT, encoding: 'utf8',
      }, (err, out, stderr) => (err ? reject(new Error(`the kubeconfig's exec plugin ${plugin.command} failed: ${(stderr || err.message).trim().split('\n')[0]}`)) : resolve(out)));
    });
    let status: { token?: string; clientCertificateData?: string; clientKeyData?: string; expirationTimestamp?: string } | undefined;
    try {
      status = (JSON.parse(stdout) as { status?: typeof status }).status;
    } catch {
      throw new Error(`the kubeconfig's exec plugin ${plugin.command} printed no ExecCredential`);
    }
    if (!status?.token && !status?.clientCertificateData) throw new Error(`the kubeconfig's exec plugin ${plugin.command} gave neither a token nor a client certificate`);
    const expires = status.expirationTimestamp ? Date.parse(status.expirationTimestamp) : NaN;
    this.execCredential = {
      token: status.token, cert: status.clientCertificateData, key: status.clientKeyData,
      // No expiry given: valid until the apiserver says otherwise (a 401 runs the plugin again).
      expiresAt: Number.isFinite(expires) ? expires : Number.MAX_SAFE_INTEGER,
    };
    return this.execCredential;
  }

  /** Close the idle connections (a running watch ends on its own when stopped). */
  close(): void {
    this.agent?.destroy();
  }
}

/** The client for the kubeconfig at `file`; absent: in-cluster, else $KUBECONFIG, else ~/.kube/config. */
export function loadKubeClient(file?: string, idleConnections?: number): KubeClient {
  return new KubeClient(loadKubeConnection(file), idleConnections);
}

/** A path segment, escaped. */
export const seg = (s: string): string => encodeURIComponent(s);

/** Reads a pod; undefined when there is none of that name. */
export function podReader(client: KubeClient): (namespace: string, name: string) => Promise<V1Pod | undefined> {
  return (namespace, name) => client.get<V1Pod>(`/api/v1/namespaces/${seg(namespace)}/pods/${seg(name)}`);
}
