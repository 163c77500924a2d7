// The kube backend's processor catalog and Secrets. Processor registrations (InformationCollector,
// Diagnoser and Recoverer objects) are watched — they are few whatever the cluster's size — and only
// those in trusted namespaces count.
import type { Logger } from 'pino';
import { PROCESSOR_KINDS, PROCESSOR_PLURALS, type ProcessorKind } from '../api/kinds.js';
import type { Processor as ProcessorObject } from '../api/types.generated.js';
import { seg, type KubeClient } from '../kube/client.js';
import { customResourceInformer, keepWatching, type Informer } from '../kube/informer.js';
import type { ProcessorCatalog, ProcessorRegistration, SecretReader } from './store.js';

export type KubeCatalogOptions = {
  client: KubeClient;
  /** Namespaces whose processor objects count ("*": all). */
  processorNamespaces: readonly string[];
  log: Logger;
};

export class KubeCatalog implements ProcessorCatalog, SecretReader {
  private readonly informers = new Map<ProcessorKind, Informer>();
  private stopped = false;
  notSyncedBecause?: string;

  constructor(private readonly opts: KubeCatalogOptions) {}

  /** Resolves once every kind's first list is in: an Abnormal worked on before would see its assigned processors as unregistered. */
  async start(): Promise<void> {
    for (const kind of PROCESSOR_KINDS) this.informers.set(kind, customResourceInformer(this.opts.client, PROCESSOR_PLURALS[kind], '*'));
    await Promise.all([...this.informers].map(([kind, informer]) =>
      keepWatching(informer, PROCESSOR_PLURALS[kind], this.opts.log, () => this.stopped, (why) => (this.notSyncedBecause = `${PROCESSOR_PLURALS[kind]}: ${why}`))));
    this.notSyncedBecause = undefined;
  }

  async processors(): Promise<ProcessorRegistration[]> {
    const found: ProcessorRegistration[] = [];
    const all = this.opts.processorNamespaces.includes('*');
    for (const [kind, informer] of this.informers) {
      for (const object of informer.list()) {
        if (all || this.opts.processorNamespaces.includes(object.metadata?.namespace ?? '')) found.push({ kind, object: object as unknown as ProcessorObject });
      }
    }
    return found;
  }

  async readSecret(namespace: string, name: string, key: string): Promise<string> {
    const secret = await this.opts.client.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${seg(namespace)}/secrets/${seg(name)}`);
    const value = secret.data?.[key];
    if (value === undefined) throw new Error(`Secret ${namespace}/${name} has no key ${key}`);
    return Buffer.from(value, 'base64').toString('utf8');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }
}
