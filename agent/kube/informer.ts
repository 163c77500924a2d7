// Watching objects, kept running. A resumingWatch watches again from the last version seen whenever
// the server closes a watch at its timeout. An Informer lists what matches, then watches from the
// list's resourceVersion that way and keeps a cache; it relists by itself after 410 Gone; after any
// other failure (an apiserver restart, the network) it stops and says so. `keepWatching` starts one and restarts it with backoff whenever it fails, so every
// watch of the agent survives an outage the same way.
import type { Logger } from 'pino';
import { GROUP, VERSION } from '../api/crds.js';
import { Backoff } from '../lib/backoff.js';
import { KubeApiError, seg, type KubeClient, type KubeObject, type Query, type WatchEventType, type WatchStream } from './client.js';

type Handler<T> = (object: T) => void;

/** How long the server keeps each watch open: random, so that a fleet's watches do not all reopen at once. */
const watchSecondsDefault = () => 300 + Math.floor(Math.random() * 300);

export type ResumingWatchOptions<T> = {
  query: Query;
  resourceVersion: string;
  onEvent: (type: WatchEventType, object: T) => void;
  /** Told once of the failure that ends the watch (410 Gone included); never after stop(). */
  onEnd: (err: unknown) => void;
  /** Told of each watch request made. */
  onOpen?: () => void;
  watchSeconds?: () => number;
};

/**
 * Watch `path` from a resourceVersion, and each time the server closes the watch at its timeout, watch
 * again from the last version seen, so no change made meanwhile is missed. Resolves once the first
 * watch runs (rejects if it cannot start); a later failure ends it and goes to `onEnd`.
 */
export async function resumingWatch<T extends KubeObject>(client: KubeClient, path: string, opts: ResumingWatchOptions<T>): Promise<{ stop(): void }> {
  let stopped = false;
  let stream: WatchStream | undefined;
  let version = opts.resourceVersion;
  const end = (err: unknown) => {
    if (stopped) return;
    stopped = true;
    opts.onEnd(err);
  };
  const open = async () => {
    opts.onOpen?.();
    const opened = await client.watch<T>(path, { ...opts.query, resourceVersion: version, timeoutSeconds: (opts.watchSeconds ?? watchSecondsDefault)() }, (type, object) => {
      version = object.metadata?.resourceVersion ?? version;
      opts.onEvent(type, object);
    });
    if (stopped) return opened.stop();
    stream = opened;
    void opened.done.then(() => {
      if (!stopped) open().catch(end);
    }, end);
  };
  await open();
  return {
    stop: () => {
      stopped = true;
      stream?.stop();
    },
  };
}

export class Informer<T extends KubeObject = KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers = { add: [] as Array<Handler<T>>, update: [] as Array<Handler<T>>, delete: [] as Array<Handler<T>>, error: [] as Array<(err: unknown) => void> };
  private watching?: { stop(): void };
  private running = false;
  /** Watch requests made (each list is followed by one, and each close by the server's timeout). */
  watches = 0;

  constructor(
    private readonly client: KubeClient,
    readonly path: string,
    private readonly selectors: { labelSelector?: string; fieldSelector?: string } = {},
    /** How long the server keeps each watch open (tests shorten it). */
    private readonly watchSeconds = watchSecondsDefault,
  ) {}

  on(event: 'add' | 'update' | 'delete', handler: Handler<T>): void;
  on(event: 'error', handler: (err: unknown) => void): void;
  on(event: keyof Informer['handlers'], handler: (arg: never) => void): void {
    (this.handlers[event] as Array<(arg: never) => void>).push(handler);
  }

  /** The objects as last seen. */
  list(): T[] {
    return [...this.cache.values()];
  }

  /** List, then watch. Resolves once the list is in and the watch runs; a later failure is an 'error'. */
  async start(): Promise<void> {
    this.running = true;
    const resourceVersion = await this.relist();
    await this.watchFrom(resourceVersion);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.watching?.stop();
  }

  private async watchFrom(resourceVersion: string): Promise<void> {
    const watching = await resumingWatch<T>(this.client, this.path, {
      query: this.selectors, resourceVersion, watchSeconds: this.watchSeconds,
      onOpen: () => this.watches++,
      onEvent: (type, object) => {
        if (type === 'BOOKMARK') return;
        const key = keyOf(object);
        if (type === 'DELETED') {
          this.cache.delete(key);
          this.emit('delete', object);
        } else {
          const known = this.cache.has(key);
          this.cache.set(key, object);
          this.emit(known ? 'update' : 'add', object);
        }
      },
      onEnd: (err) => this.again(async () => {
        if (!(err instanceof KubeApiError && err.status === 410)) throw err;
        await this.watchFrom(await this.relist()); // too old to resume: list again
      }),
    });
    if (!this.running) return watching.stop();
    this.watching = watching;
  }

  private again(next: () => Promise<void>): void {
    if (!this.running) return;
    next().catch((err) => {
      if (!this.running) return;
      this.running = false;
      for (const handler of this.handlers.error) handler(err);
    });
  }

  /** List afresh; what is gone since is deleted, what changed updated. Returns the list's resourceVersion. */
  private async relist(): Promise<string> {
    const list = await this.client.list<T>(this.path, this.selectors);
    const seen = new Set<string>();
    for (const object of list.items) {
      const key = keyOf(object);
      seen.add(key);
      const before = this.cache.get(key);
      this.cache.set(key, object);
      if (!before) this.emit('add', object);
      else if (before.metadata?.resourceVersion !== object.metadata?.resourceVersion) this.emit('update', object);
    }
    for (const [key, object] of this.cache) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      this.emit('delete', object);
    }
    return list.metadata?.resourceVersion ?? '';
  }

  private emit(event: 'add' | 'update' | 'delete', object: T): void {
    for (const handler of this.handlers[event]) handler(object);
  }
}

const keyOf = (o: KubeObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** An informer over one of nodemedic's custom resources, in one namespace or ("*") all, optionally by label. */
export function customResourceInformer<T extends KubeObject = KubeObject>(client: KubeClient, plural: string, namespace: string, labelSelector?: string): Informer<T> {
  const path = namespace === '*' ? `/apis/${GROUP}/${VERSION}/${plural}` : `/apis/${GROUP}/${VERSION}/namespaces/${seg(namespace)}/${plural}`;
  return new Informer<T>(client, path, labelSelector ? { labelSelector } : {});
}

/**
 * Start `informer` and keep it running until `stopped()`: a failed start is tried again, and a watch
 * that fails later is restarted, each after a wait from one Backoff (reset once a start succeeds).
 * Resolves once a start has succeeded. `onFailure` is told of every failure (for counts).
 */
export async function keepWatching<T extends KubeObject>(informer: Informer<T>, what: string, log: Logger, stopped: () => boolean, onFailure?: (why: string) => void): Promise<void> {
  const backoff = new Backoff();
  const start = async () => {
    while (!stopped()) {
      const failure = await informer.start().then(() => undefined, (err: unknown) => err ?? new Error('the watch failed'));
      // Stopped while starting: the watch that just began must not outlive its owner (it would hold the process open).
      if (stopped()) return void (await informer.stop());
      if (!failure) return backoff.reset();
      onFailure?.(watchErrorText(failure));
      log.warn({ err: watchErrorText(failure), watch: what, retryInMs: backoff.peek }, 'could not start watching');
      await backoff.wait();
    }
  };
  informer.on('error', (err) => {
    onFailure?.(watchErrorText(err));
    if (stopped()) return;
    log.warn({ err: watchErrorText(err), watch: what, retryInMs: backoff.peek }, 'watch failed; restarting');
    setTimeout(() => void start(), backoff.next());
  });
  await start();
}

/**
 * A watch's error as one line: the apiserver's own message where there is one (403 says which
 * permission); a 404 that is not the apiserver's Status — an API it does not serve — says what is most
 * likely missing.
 */
export function watchErrorText(err: unknown): string {
  if (err instanceof KubeApiError) {
    if (err.status === 404 && !err.reason) return "HTTP 404: this apiserver does not serve it — are nodemedic's CRDs installed? (kubectl apply -f manifests/crds/)";
    return `HTTP ${err.status}: ${err.message.split('\n')[0]}`;
  }
  return ((err as Error)?.message ?? String(err)).split('\n')[0]!;
}
