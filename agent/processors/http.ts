// The HTTP adapter: a processor registered as an InformationCollector / Diagnoser / Recoverer object,
// called with undici. POST the Abnormal as JSON; a 2xx reply is the Abnormal as the processor would have
// it (see contract.ts). Per-processor timeout, a connection pool per processor, TLS verified with the
// object's CA bundle, an optional bearer token from a Secret, and a cap on the reply's size.
import type { Agent } from 'undici';
import type { ProcessorKind } from '../api/kinds.js';
import { Reason } from '../api/reasons.js';
import type { Abnormal, ProcessorRef, ProcessorSpec } from '../api/types.generated.js';
import { TooLarge, readCapped } from '../lib/capped-read.js';
import { failure, interpretReply, type Outcome, type Processor } from './contract.js';

export type HttpProcessorOptions = {
  /** Replies larger than this fail the step (a processor cannot make the agent buffer without bound). */
  maxReplyBytes: number;
  /** Used when the object sets no timeoutSeconds. */
  defaultTimeoutSeconds: number;
  readSecret: (namespace: string, name: string, key: string) => Promise<string>;
};

export class HttpProcessor implements Processor {
  /** Made at the first call: undici is loaded only by an agent that has an HTTP processor to call. */
  private dispatcher?: Agent;
  readonly url: string;

  constructor(
    readonly kind: ProcessorKind,
    readonly ref: ProcessorRef,
    private readonly spec: ProcessorSpec,
    private readonly opts: HttpProcessorOptions,
  ) {
    this.url = spec.url ?? serviceURL(spec);
  }

  async run(abnormal: Abnormal, signal: AbortSignal): Promise<Outcome> {
    const timeoutMs = (this.spec.timeoutSeconds ?? this.opts.defaultTimeoutSeconds) * 1000;
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.spec.bearerTokenSecretRef) {
      const { name, key } = this.spec.bearerTokenSecretRef;
      try {
        headers.authorization = `Bearer ${(await this.opts.readSecret(this.ref.namespace, name, key)).trim()}`;
      } catch (err) {
        return failure(Reason.TokenUnavailable, `cannot read bearer token from Secret ${this.ref.namespace}/${name} key ${key}: ${(err as Error).message}`);
      }
    }
    const deadline = AbortSignal.timeout(timeoutMs);
    let text: string;
    let statusCode: number;
    try {
      const { Agent, request } = await import('undici');
      this.dispatcher ??= new Agent({ connect: this.spec.caBundle ? { ca: Buffer.from(this.spec.caBundle, 'base64').toString('utf8') } : {}, keepAliveTimeout: 30_000 });
      const res = await request(this.url, {
        method: 'POST',
        headers,
        body: JSON.stringify(abnormal),
        dispatcher: this.dispatcher,
        signal: AbortSignal.any([signal, deadline]),
      });
      statusCode = res.statusCode;
      text = (await readCapped(res.body, this.opts.maxReplyBytes)).text;
    } catch (err) {
      if (deadline.aborted) return failure(Reason.Timeout, `no complete reply from ${this.url} within ${timeoutMs / 1000} s`);
      if (err instanceof TooLarge) return failure(Reason.ReplyTooLarge, `the reply is larger than the ${err.limit}-byte limit (maxReplyBytes)`);
      return failure(Reason.Unreachable, `${this.url}: ${(err as Error).message}`);
    }
    if (statusCode < 200 || statusCode > 299) return failureReply(statusCode, text, this.url);
    let reply: unknown;
    try {
      reply = JSON.parse(text);
    } catch (err) {
      return failure(Reason.InvalidReply, `the reply is not JSON (${(err as Error).message}): ${excerpt(text)}`);
    }
    return interpretReply(this.kind, abnormal, reply);
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }
}

function serviceURL(spec: ProcessorSpec): string {
  const service = spec.service!;
  const scheme = (spec.scheme ?? 'HTTP').toLowerCase();
  const port = service.port ?? (scheme === 'https' ? 443 : 80);
  return `${scheme}://${service.name}.${service.namespace}.svc:${port}${spec.path ?? '/'}`;
}

/** A failure reply: {"reason", "message"} as JSON if the processor sent that, else the status and the body. */
function failureReply(statusCode: number, text: string, url: string): Outcome {
  try {
    const body = JSON.parse(text) as { reason?: unknown; message?: unknown };
    if (typeof body.reason === 'string' && body.reason) return failure(body.reason, typeof body.message === 'string' ? body.message : `HTTP ${statusCode}`);
  } catch {
    // not JSON: report the text
  }
  return failure(`HTTP${statusCode}`, excerpt(text) || `${url} answered ${statusCode}`);
}

const excerpt = (text: string) => (text.length > 1024 ? `${text.slice(0, 1024)}…` : text).trim();
