// The kube store: Abnormals are custom resources. Each agent's API traffic stays flat as the cluster
// grows:
//   - it lists and watches only Abnormals labelled nodemedic.io/node=<its node>;
//   - it watches unlabelled Abnormals (made by hand with kubectl) only to claim those naming its node,
//     by adding the label; a claimed object leaves that watch at once, so the watch carries only the
//     few objects no agent has claimed yet, not the cluster's Abnormals.
// Status is written through the status subresource with the object's resourceVersion (compare-and-
// swap). Watches are kept running through outages (agent/kube/informer.ts). Every unfinished Abnormal
// is looked at again each resync period.
import { createHash } from 'node:crypto';
import { CustomObjectsApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { FINGERPRINT_LABEL, GROUP, NODE_LABEL, VERSION } from '../api/crds.js';
import { keyOf, type AbnormalKey } from '../api/kinds.js';
import { isTerminal } from '../api/phase.js';
import type { Abnormal, AbnormalSpec, AbnormalStatus } from '../api/types.generated.js';
import { apiStatus } from '../kube/client.js';
import { customResourceInformer, keepWatching, type CachingInformer } from '../kube/informer.js';
import { ConflictError, type AbnormalStore } from './store.js';

/** The label value for a node: its name, or for names longer than a label value may be, a stable digest. */
export function nodeLabelValue(nodeName: string): string {
  if (nodeName.length <= 63) return nodeName;
  const digest = createHash('sha256').update(nodeName).digest('hex').slice(0, 10);
  return `${nodeName.slice(0, 52).replace(/[-.]+$/, '')}-${digest}`;
}

export type KubeStoreOptions = {
  kc: KubeConfig;
  nodeName: string;
  /** Where Abnormals made by the symptom sources are created. */
  namespace: string;
  log: Logger;
  resyncSeconds: number;
};

const ABNORMALS = 'abnormals';

export class KubeStore implements AbnormalStore {
  synced = false;
  /** API writes this store made, by kind (for the figures in the README). */
  readonly writes = { status: 0, claim: 0, create: 0, spec: 0 };
  private readonly api: CustomObjectsApi;
  private readonly informers: CachingInformer[] = [];
  private resync?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly opts: KubeStoreOptions) {
    this.api = opts.kc.makeApiClient(CustomObjectsApi);
  }

  async start(onChange: (key: AbnormalKey) => void): Promise<void> {
    const label = `${NODE_LABEL}=${nodeLabelValue(this.opts.nodeName)}`;
    const mine = customResourceInformer(this.opts.kc, ABNORMALS, label);
    mine.on('add', (o) => onChange(keyOf(o as Abnormal)));
    mine.on('update', (o) => onChange(keyOf(o as Abnormal)));

    const unclaimed = customResourceInformer(this.opts.kc, ABNORMALS, `!${NODE_LABEL}`);
    const claim = (o: KubernetesObject) => void this.claim(o as Abnormal);
    unclaimed.on('add', claim);
    unclaimed.on('update', claim);

    this.informers.push(mine, unclaimed);
    // Each resolves once its first list is in and its watch is running.
    await Promise.all([
      keepWatching(mine, `${ABNORMALS}?labelSelector=${label}`, this.opts.log, () => this.stopped),
      keepWatching(unclaimed, `${ABNORMALS}?labelSelector=!${NODE_LABEL}`, this.opts.log, () => this.stopped),
    ]);
    this.synced = true;
    this.resync = setInterval(() => {
      for (const o of mine.list()) if (!isTerminal((o as Abnormal).status?.phase)) onChange(keyOf(o as Abnormal));
    }, this.opts.resyncSeconds * 1000);
  }

  async get(key: AbnormalKey): Promise<Abnormal | undefined> {
    const [namespace, name] = key.split('/') as [string, string];
    try {
      return (await this.api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: ABNORMALS, name })) as Abnormal;
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  }

  async writeStatus(abnormal: Abnormal, status: AbnormalStatus): Promise<Abnormal> {
    const { namespace, name } = abnormal.metadata as { namespace: string; name: string };
    this.writes.status++;
    try {
      return (await this.api.replaceNamespacedCustomObjectStatus({
        group: GROUP, version: VERSION, namespace, plural: ABNORMALS, name, body: { ...abnormal, status },
      })) as Abnormal;
    } catch (err) {
      // 409: changed since read; 404: deleted meanwhile. Either way: read again and decide again.
      if (apiStatus(err) === 409 || apiStatus(err) === 404) throw new ConflictError(keyOf(abnormal));
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
    return (await this.api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: ABNORMALS, body })) as Abnormal;
  }

  /** A list by label across namespaces; rare (once per fingerprint the sink has not seen since it started). */
  async findByFingerprint(fingerprint: string): Promise<Abnormal[]> {
    const list = (await this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: ABNORMALS, labelSelector: `${FINGERPRINT_LABEL}=${fingerprint}` })) as {
      items: Abnormal[];
    };
    return list.items;
  }

  async writeSpec(abnormal: Abnormal, spec: AbnormalSpec): Promise<Abnormal> {
    const { namespace, name } = abnormal.metadata as { namespace: string; name: string };
    this.writes.spec++;
    try {
      return (await this.api.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: ABNORMALS, name, body: { ...abnormal, spec } })) as Abnormal;
    } catch (err) {
      if (apiStatus(err) === 409 || apiStatus(err) === 404) throw new ConflictError(keyOf(abnormal));
      throw err;
    }
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
        group: GROUP, version: VERSION, namespace, plural: ABNORMALS, name,
        body: { ...abnormal, metadata: { ...abnormal.metadata, labels: { ...abnormal.metadata?.labels, [NODE_LABEL]: nodeLabelValue(this.opts.nodeName) } } },
      });
      this.opts.log.info({ abnormal: keyOf(abnormal) }, 'claimed a hand-made Abnormal for this node');
    } catch (err) {
      // A conflict means it changed meanwhile: the watch brings the new version and another try.
      if (apiStatus(err) !== 409) this.opts.log.warn({ err: (err as Error).message, abnormal: keyOf(abnormal) }, 'could not claim');
    }
  }
}
