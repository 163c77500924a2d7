// The kube store: Abnormals are custom resources. Each agent's API traffic stays flat as the cluster
// grows:
//   - it lists and watches only Abnormals labelled nodemedic.io/node=<its node>;
//   - it watches unlabelled Abnormals (made by hand with kubectl) only to claim those naming its node,
//     by adding the label; a claimed object leaves that watch at once, so the watch carries only the
//     few objects no agent has claimed yet, not the cluster's Abnormals;
//   - it watches the processor registrations, which are few whatever the cluster's size.
// Status is written through the status subresource with the object's resourceVersion (compare-and-
// swap). The informers relist on 410 Gone; any other watch failure, such as an apiserver restart, is
// retried with backoff. Every unfinished Abnormal is looked at again each resync period.
import { createHash } from 'node:crypto';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  makeInformer,
  type Informer,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { FINGERPRINT_LABEL, GROUP, NODE_LABEL, VERSION } from '../api/crds.js';
import { isTerminal } from '../api/phase.js';
import type { Abnormal, AbnormalSpec, AbnormalStatus, Processor as ProcessorObject } from '../api/types.generated.js';
import { PROCESSOR_KINDS, type ProcessorKind } from '../processors/contract.js';
import { ConflictError, keyOf, type AbnormalKey, type AbnormalStore, type EventType, type ProcessorRegistration } from './store.js';

export { NODE_LABEL };
const PLURALS: Record<ProcessorKind, string> = {
  InformationCollector: 'informationcollectors',
  Diagnoser: 'diagnosers',
  Recoverer: 'recoverers',
};

/** The label value for a node: its name, or for names longer than a label value may be, a stable digest. */
export function nodeLabelValue(nodeName: string): string {
  if (nodeName.length <= 63) return nodeName;
  const digest = createHash('sha256').update(nodeName).digest('hex').slice(0, 10);
  return `${nodeName.slice(0, 52).replace(/[-.]+$/, '')}-${digest}`;
}

type CachingInformer = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

export type KubeStoreOptions = {
  kc: KubeConfig;
  nodeName: string;
  /** Where Abnormals made by the symptom sources are created. */
  namespace: string;
  /** Namespaces whose processor objects count ("*": all). */
  processorNamespaces: readonly string[];
  log: Logger;
  resyncSeconds: number;
};

export class KubeStore implements AbnormalStore {
  synced = false;
  /** API writes this store made, by kind (for the figures in the README and, later, metrics). */
  readonly writes = { status: 0, claim: 0, event: 0, create: 0, spec: 0 };
  private readonly api: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly informers: CachingInformer[] = [];
  private readonly processorInformers = new Map<ProcessorKind, CachingInformer>();
  private readonly starters = new Map<Informer<KubernetesObject>, () => Promise<void>>();
  private resync?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly opts: KubeStoreOptions) {
    this.api = opts.kc.makeApiClient(CustomObjectsApi);
    this.core = opts.kc.makeApiClient(CoreV1Api);
  }

  async start(onChange: (key: AbnormalKey) => void): Promise<void> {
    // Processor registrations first: an Abnormal must not be worked on before they are known, or its
    // assigned processors would look unregistered.
    for (const kind of PROCESSOR_KINDS) this.processorInformers.set(kind, this.informer(PLURALS[kind]));
    await Promise.all([...this.starters.values()].map((start) => start()));

    const label = `${NODE_LABEL}=${nodeLabelValue(this.opts.nodeName)}`;
    const mine = this.informer('abnormals', label);
    mine.on('add', (o) => onChange(keyOf(o as Abnormal)));
    mine.on('update', (o) => onChange(keyOf(o as Abnormal)));

    const unclaimed = this.informer('abnormals', `!${NODE_LABEL}`);
    const claim = (o: KubernetesObject) => void this.claim(o as Abnormal);
    unclaimed.on('add', claim);
    unclaimed.on('update', claim);

    // Each resolves once its first list is in and its watch is running.
    await Promise.all([mine, unclaimed].map((informer) => this.starters.get(informer)!()));
    this.synced = true;
    this.resync = setInterval(() => {
      for (const o of mine.list()) if (!isTerminal((o as Abnormal).status?.phase)) onChange(keyOf(o as Abnormal));
    }, this.opts.resyncSeconds * 1000);
  }

  async get(key: AbnormalKey): Promise<Abnormal | undefined> {
    const [namespace, name] = key.split('/') as [string, string];
    try {
      return (await this.api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'abnormals', name })) as Abnormal;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  }

  async writeStatus(abnormal: Abnormal, status: AbnormalStatus): Promise<Abnormal> {
    const { namespace, name } = abnormal.metadata as { namespace: string; name: string };
    this.writes.status++;
    try {
      return (await this.api.replaceNamespacedCustomObjectStatus({
        group: GROUP, version: VERSION, namespace, plural: 'abnormals', name, body: { ...abnormal, status },
      })) as Abnormal;
    } catch (err) {
      // 409: changed since read; 404: deleted meanwhile. Either way: read again and decide again.
      if (err instanceof ApiException && (err.code === 409 || err.code === 404)) throw new ConflictError(keyOf(abnormal));
      throw err;
    }
  }

  async create(abnormal: Abnormal): Promise<Abnormal> {
    const namespace = abnormal.metadata?.namespace ?? this.opts.namespace;
    // Labelled for the node it names, which is this agent's node except for alerts about other nodes.
    const body: Abnormal = {
      ...abnormal,
      metadata: { ...abnormal.metadata, namespace, labels: { ...abnormal.metadata?.labels, [NODE_LABEL]: nodeLabelValue(abnormal.spec.nodeName) } },
    };
    this.writes.create++;
    return (await this.api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'abnormals', body })) as Abnormal;
  }

  /** A list by label across namespaces; rare (once per fingerprint the sink has not seen since it started). */
  async findByFingerprint(fingerprint: string): Promise<Abnormal[]> {
    const list = (await this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'abnormals', labelSelector: `${FINGERPRINT_LABEL}=${fingerprint}` })) as {
      items: Abnormal[];
    };
    return list.items;
  }

  async writeSpec(abnormal: Abnormal, spec: AbnormalSpec): Promise<Abnormal> {
    const { namespace, name } = abnormal.metadata as { namespace: string; name: string };
    this.writes.spec++;
    try {
      return (await this.api.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'abnormals', name, body: { ...abnormal, spec } })) as Abnormal;
    } catch (err) {
      if (err instanceof ApiException && (err.code === 409 || err.code === 404)) throw new ConflictError(keyOf(abnormal));
      throw err;
    }
  }

  async recordEvent(abnormal: Abnormal, type: EventType, reason: string, message: string): Promise<void> {
    const { namespace, name, uid, resourceVersion } = abnormal.metadata ?? {};
    const now = new Date();
    this.writes.event++;
    try {
      await this.core.createNamespacedEvent({
        namespace: namespace!,
        body: {
          metadata: { generateName: `${name}.`, namespace },
          involvedObject: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Abnormal', namespace, name, uid, resourceVersion },
          type, reason, message: message.slice(0, 1024),
          source: { component: 'nodemedic', host: this.opts.nodeName },
          firstTimestamp: now, lastTimestamp: now, count: 1,
          reportingComponent: 'nodemedic', reportingInstance: this.opts.nodeName,
        },
      });
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message, abnormal: keyOf(abnormal), reason }, 'could not record an event');
    }
  }

  async processors(): Promise<ProcessorRegistration[]> {
    const found: ProcessorRegistration[] = [];
    const all = this.opts.processorNamespaces.includes('*');
    for (const [kind, informer] of this.processorInformers) {
      for (const object of informer.list()) {
        if (all || this.opts.processorNamespaces.includes(object.metadata?.namespace ?? '')) found.push({ kind, object: object as unknown as ProcessorObject });
      }
    }
    return found;
  }

  async readSecret(namespace: string, name: string, key: string): Promise<string> {
    const secret = await this.core.readNamespacedSecret({ namespace, name });
    const value = secret.data?.[key];
    if (value === undefined) throw new Error(`Secret ${namespace}/${name} has no key ${key}`);
    return Buffer.from(value, 'base64').toString('utf8');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.resync);
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  /** Label a hand-made Abnormal that names this node, so this node's watch picks it up. */
  private async claim(abnormal: Abnormal): Promise<void> {
    if (abnormal.spec?.nodeName !== this.opts.nodeName || abnormal.metadata?.labels?.[NODE_LABEL]) return;
    const { namespace, name } = abnormal.metadata as { namespace: string; name: string };
    this.writes.claim++;
    try {
      await this.api.replaceNamespacedCustomObject({
        group: GROUP, version: VERSION, namespace, plural: 'abnormals', name,
        body: { ...abnormal, metadata: { ...abnormal.metadata, labels: { ...abnormal.metadata?.labels, [NODE_LABEL]: nodeLabelValue(this.opts.nodeName) } } },
      });
      this.opts.log.info({ abnormal: keyOf(abnormal) }, 'claimed a hand-made Abnormal for this node');
    } catch (err) {
      // A conflict means it changed meanwhile: the watch brings the new version and another try.
      if (!(err instanceof ApiException && err.code === 409)) this.opts.log.warn({ err: (err as Error).message, abnormal: keyOf(abnormal) }, 'could not claim');
    }
  }

  private informer(plural: string, labelSelector?: string) {
    const path = `/apis/${GROUP}/${VERSION}/${plural}`;
    const list = () =>
      this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural, ...(labelSelector ? { labelSelector } : {}) }) as Promise<
        KubernetesListObject<KubernetesObject>
      >;
    const informer = makeInformer(this.opts.kc, path, list, labelSelector);
    this.informers.push(informer);
    this.starters.set(informer, this.keepRunning(informer, `${path}${labelSelector ? `?labelSelector=${labelSelector}` : ''}`));
    return informer;
  }

  /**
   * The informer relists by itself after 410 Gone and rewatches after a clean close; after any other
   * failure (apiserver down, network) it stops. The returned function starts it and keeps it running,
   * retrying with backoff (0.5 s doubling to 30 s); it resolves once a start has succeeded.
   */
  private keepRunning(informer: Informer<KubernetesObject>, what: string): () => Promise<void> {
    let delay = 500;
    let failed = false;
    let starting = false;
    const start = async () => {
      starting = true;
      while (!this.stopped) {
        failed = false;
        await informer.start().catch((err) => {
          failed = true;
          this.opts.log.warn({ err: (err as Error).message, watch: what }, 'could not start watching');
        });
        if (!failed) break;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 30_000);
      }
      starting = false;
      delay = 500;
    };
    informer.on('error', (err) => {
      failed = true;
      if (starting || this.stopped) return; // the loop above retries
      this.opts.log.warn({ err: (err as Error)?.message ?? String(err), watch: what, retryInMs: delay }, 'watch failed; restarting');
      starting = true;
      setTimeout(() => void start(), delay);
    });
    return start;
  }
}
