// Watching objects with client-node's informers, kept running. An informer relists by itself after
// 410 Gone and rewatches after a clean close; after any other failure (an apiserver restart, the
// network) it stops. `keepWatching` starts one and restarts it with backoff whenever it fails, so every
// watch of the agent survives an outage the same way.
import {
  CustomObjectsApi,
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP, VERSION } from '../api/crds.js';
import { Backoff } from '../lib/backoff.js';

export type CachingInformer<T extends KubernetesObject = KubernetesObject> = Informer<T> & ObjectCache<T>;

/** An informer over one of nodemedic's custom resources, in one namespace or ("*") all, optionally by label. */
export function customResourceInformer(kc: KubeConfig, plural: string, namespace: string, labelSelector?: string): CachingInformer {
  const api = kc.makeApiClient(CustomObjectsApi);
  const selector = labelSelector ? { labelSelector } : {};
  const list = () =>
    (namespace === '*'
      ? api.listClusterCustomObject({ group: GROUP, version: VERSION, plural, ...selector })
      : api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, ...selector })) as Promise<KubernetesListObject<KubernetesObject>>;
  const path = namespace === '*' ? `/apis/${GROUP}/${VERSION}/${plural}` : `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${plural}`;
  return makeInformer(kc, path, list, labelSelector);
}

/**
 * Start `informer` and keep it running until `stopped()`: a failed start is tried again, and a watch
 * that fails later is restarted, each after a wait from one Backoff (reset once a start succeeds).
 * Resolves once a start has succeeded. `onFailure` is told of every failure (for counts).
 */
export async function keepWatching<T extends KubernetesObject>(informer: Informer<T>, what: string, log: Logger, stopped: () => boolean, onFailure?: () => void): Promise<void> {
  const backoff = new Backoff();
  let starting = false;
  let failed: unknown; // set by a failure while starting, too: a watch that dies as it starts is not running
  const start = async () => {
    starting = true;
    while (!stopped()) {
      failed = undefined;
      const failure = await informer.start().then(() => undefined, (err: Error) => err);
      // Stopped while starting: the watch that just began must not outlive its owner (it would hold the process open).
      if (stopped()) return void (await informer.stop().catch(() => {}));
      if (!failure && !failed) break;
      log.warn({ err: watchErrorText(failure ?? failed), watch: what, retryInMs: backoff.peek }, 'could not start watching');
      await backoff.wait();
    }
    starting = false;
    backoff.reset();
  };
  informer.on('error', (err) => {
    failed = err ?? new Error('the watch failed');
    onFailure?.();
    if (starting || stopped()) return; // the loop above retries
    log.warn({ err: watchErrorText(err), watch: what, retryInMs: backoff.peek }, 'watch failed; restarting');
    starting = true;
    setTimeout(() => void start(), backoff.next());
  });
  await start();
}

/**
 * An informer's error as one line: the apiserver's own message where there is one (403 says which
 * permission); a bare 404 — an API the apiserver does not serve — says what is most likely missing.
 */
export function watchErrorText(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string } | undefined;
  const body = typeof e?.body === 'string' ? e.body : JSON.stringify(e?.body ?? '');
  let apiMessage: string | undefined;
  try {
    const status = JSON.parse(body) as { message?: unknown };
    if (typeof status?.message === 'string') apiMessage = status.message;
  } catch {
    // not the apiserver's Status
  }
  if (e?.code === 404 && !apiMessage) return "HTTP 404: this apiserver does not serve it — are nodemedic's CRDs installed? (kubectl apply -f manifests/crds/)";
  return [e?.code && `HTTP ${e.code}`, (apiMessage ?? e?.message ?? String(err)).split('\n')[0]].filter(Boolean).join(': ');
}
