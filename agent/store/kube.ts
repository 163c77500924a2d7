// The kube store: Abnormals are custom resources, and only those in the trusted namespaces count
// (`abnormalNamespaces`; by default the agent's own): whoever may create an Abnormal there may make the
// agent act on the node it names, so one elsewhere is never watched, claimed, read or worked on.
// Each agent's API traffic stays flat as the cluster grows:
//   - it lists and watches only Abnormals labelled nodemedic.io/node=<its node>;
//   - it watches unlabelled Abnormals (made by hand with kubectl) only to claim those naming its node,
//     by adding the label; a claimed object leaves that watch at once, so the watch carries only the
//     few objects no agent has claimed yet, not the cluster's Abnormals.
// Status is written through the status subresource with the object's resourceVersion (compare-and-
// swap). Watches are kept running through outages (agent/kube/informer.ts). Every unfinished Abnormal
// is looked at again each resync period.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { FINGERPRINT_LABEL, GROUP, NODE_LABEL, SUBJECT_LABEL, VERSION } from '../api/crds.js';
import { keyOf, type AbnormalKey } from '../api/kinds.js';
import { isTerminal } from '../api/phase.js';
import type { Abnormal, AbnormalSpec, AbnormalStatus } from '../api/types.generated.js';
import { apiMessage, apiStatus, seg, type KubeClient, type KubeObject } from '../kube/client.js';
import { customResourceInformer, keepWatching, type Informer } from '../kube/informer.js';
import { ConflictError, InvalidObjectError, type AbnormalStore } from './store.js';

/** The label value for a node: its name, or for names longer than a label value may be, a stable digest. */
export function nodeLabelValue(nodeName: string): string {
  if (nodeName.length <= 63) return nodeName;
  const digest = createHash('sha256').update(nodeName).digest('hex').slice(0, 10);
  return `${nodeName.slice(0, 52).replace(/[-.]+$/, '')}-${digest}`;
}

export type KubeStoreOptions = {
  client: KubeClient;
  nodeName: string;
  /** Where Abnormals made by the symptom sources are created. */
  namespace: string;
  /** The namespaces whose Abnormals count ("*": all). */
  namespaces: readonly string[];
  log: Logger;
  resyncSeconds: number;
};

const ABNORMALS = 'abnormals';

export class KubeStore implements AbnormalStore {
  synced = false;
  /** API writes this store made, by kind (for the figures in docs/). */
  readonly writes = { status: 0, claim: 0, create: 0, spec: 0 };
  /** Times a watch of this store failed (and was restarted). */
  watchFailures = 0;
  notSyncedBecause?: string;
  private readonly informers: Array<Informer<Abnormal>> = [];
  /** Those of the informers that hold this node's Abnormals (labelled for it). */
  private readonly ofThisNode: Array<Informer<Abnormal>> = [];
  private resync?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly opts: KubeStoreOptions) {}

  /** The path of the Abnormals in `namespace` ("*": all), or of one of them. */
  private path(namespace: string, name?: string): string {
    const all = `/apis/${GROUP}/${VERSION}${namespace === '*' ? '' : `/namespaces/${seg(namespace)}`}/${ABNORMALS}`;
    return name === undefined ? all : `${all}/${seg(name)}`;
  }

  async start(onChange: (key: AbnormalKey) => void): Promise<void> {
    const label = `${NODE_LABEL}=${nodeLabelValue(this.opts.nodeName)}`;
    const watches: Array<Promise<void>> = [];
    for (const namespace of this.watchedNamespaces) {
      const ofThisNode = customResourceInformer<Abnormal>(this.opts.client, ABNORMALS, namespace, label);
      ofThisNode.on('add', (o) => onChange(keyOf(o as Abnormal)));
      ofThisNode.on('update', (o) => onChange(keyOf(o as Abnormal)));
      const unclaimed = customResourceInformer<Abnormal>(this.opts.client, ABNORMALS, namespace, `!${NODE_LABEL}`);
      const claim = (o: Abnormal) => void this.claim(o);
      unclaimed.on('add', claim);
      unclaimed.on('update', claim);
      this.ofThisNode.push(ofThisNode);
      this.informers.push(ofThisNode, unclaimed);
      const where = namespace === '*' ? ABNORMALS : `namespaces/${namespace}/${ABNORMALS}`;
      // Each resolves once its first list is in and its watch is running.
      watches.push(
        keepWatching(ofThisNode, `${where}?labelSelector=${label}`, this.opts.log, () => this.stopped, (why) => this.watchFailed(why)),
        keepWatching(unclaimed, `${where}?labelSelector=!${NODE_LABEL}`, this.opts.log, () => this.stopped, (why) => this.watchFailed(why)),
      );
    }
    await Promise.all(watches);
    this.synced = true;
    this.resync = setInterval(() => {
      for (const o of this.ofThisNode.flatMap((informer) => informer.list())) if (!isTerminal(o.status?.phase)) onChange(keyOf(o));
    }, this.opts.resyncSeconds * 1000);
  }

  private watchFailed(why: string): void {
    this.watchFailures++;
    if (!this.synced) this.notSyncedBecause = why;
  }

  /** "*" alone, or each trusted namespace. */
  private get watchedNamespaces(): string[] {
    return this.opts.namespaces.includes('*') ? ['*'] : [...new Set(this.opts.namespaces)];
  }

  private trusts(namespace: string | undefined): boolean {
    return this.opts.namespaces.includes('*') || this.opts.namespaces.includes(namespace ?? '');
  }

  async get(key: AbnormalKey): Promise<Abnormal | undefined> {
    const [namespace, name] = key.split('/') as [string, string];
    if (!this.trusts(namespace)) return undefined; // not an Abnormal this agent may work on
    return this.opts.client.get<Abnormal>(this.path(namespace, name));
  }

  async writeStatus(abnormal: Abnormal, status: AbnormalStatus): Promise<Abnormal> {
    const { namespace, name } = abnormal.metadata as { namespace: string; name: string };
    this.writes.status++;
    try {
      return await this.opts.client.request<Abnormal>('PUT', `${this.path(namespace, name)}/status`, { body: { ...abnormal, status } });
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
    try {
      return await this.opts.client.request<Abnormal>('POST', this.path(namespace), { body });
    } catch (err) {
      if (apiStatus(err) === 400 || apiStatus(err) === 422) throw new InvalidObjectError(`the apiserver refused it: ${apiMessage(err)}`);
      throw err;
    }
  }

  /**
   * For this node, once the informers are synced: from their memory, which holds every Abnormal of
   * this node and every unclaimed one in the trusted namespaces (where the sink creates them) — a
   * list by label would cost the apiserver a read of the whole namespace from etcd per new symptom.
   * Otherwise a list by label in the trusted namespaces.
   */
  async findByFingerprint(fingerprint: string, nodeName?: string): Promise<Abnormal[]> {
    return this.findLabelled(FINGERPRINT_LABEL, fingerprint, nodeName);
  }

  async findBySubject(subject: string, nodeName?: string): Promise<Abnormal[]> {
    return this.findLabelled(SUBJECT_LABEL, subject, nodeName);
  }

  /** For this node, from the informers' memory; for another (an alert about it), a list by label. */
  private async findLabelled(label: string, value: string, nodeName?: string): Promise<Abnormal[]> {
    if (nodeName === this.opts.nodeName && this.synced && this.trusts(this.opts.namespace)) {
      return this.informers.flatMap((informer) => informer.list()).filter((a) => a.metadata?.labels?.[label] === value);
    }
    const labelSelector = `${label}=${value}`;
    const lists = await Promise.all(this.watchedNamespaces.map((namespace) => this.opts.client.list<Abnormal>(this.path(namespace), { labelSelector })));
    return lists.flatMap((list) => list.items);
  }

  /** From the informers' memory: the Abnormals labelled for this node in the trusted namespaces. */
  async listOfNode(): Promise<Abnormal[]> {
    return this.ofThisNode.flatMap((informer) => informer.list());
  }

  /**
   * DELETE with the object's uid and resourceVersion as preconditions: one changed since it was read
   * (a repeat counted on it, a person's edit) is not deleted. Only ever called with this node's own.
   */
  async remove(abnormal: Abnormal): Promise<boolean> {
    const { namespace, name, uid, resourceVersion } = abnormal.metadata as { namespace: string; name: string; uid?: string; resourceVersion?: string };
    if (abnormal.metadata?.labels?.[NODE_LABEL] !== nodeLabelValue(this.opts.nodeName) || !this.trusts(namespace)) return false;
    try {
      await this.opts.client.request('DELETE', this.path(namespace, name), { body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid, resourceVersion } } });
      return true;
    } catch (err) {
      if (apiStatus(err) === 404) return true;
      if (apiStatus(err) === 409) return false;
      throw err;
    }
  }

  async writeSpec(abnormal: Abnormal, spec: AbnormalSpec): Promise<Abnormal> {
    const { namespace, name } = abnormal.metadata as { namespace: string; name: string };
    this.writes.spec++;
    try {
      return await this.opts.client.request<Abnormal>('PUT', this.path(namespace, name), { body: { ...abnormal, spec } });
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

  /** Label a hand-made Abnormal in a trusted namespace that names this node, so this node's watch picks it up. */
  private async claim(abnormal: Abnormal): Promise<void> {
    if (abnormal.spec?.nodeName !== this.opts.nodeName || abnormal.metadata?.labels?.[NODE_LABEL] || !this.trusts(abnormal.metadata?.namespace)) return;
    const { namespace, name } = abnormal.metadata as { namespace: string; name: string };
    this.writes.claim++;
    try {
      await this.opts.client.request('PUT', this.path(namespace, name), {
        body: { ...abnormal, metadata: { ...abnormal.metadata, labels: { ...abnormal.metadata?.labels, [NODE_LABEL]: nodeLabelValue(this.opts.nodeName) } } },
      });
      this.opts.log.info({ abnormal: keyOf(abnormal) }, 'claimed a hand-made Abnormal for this node');
    } catch (err) {
      // A conflict means it changed meanwhile: the watch brings the new version and another try.
      if (apiStatus(err) !== 409) this.opts.log.warn({ err: (err as Error).message, abnormal: keyOf(abnormal) }, 'could not claim');
    }
  }
}
