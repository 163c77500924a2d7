// A small shared record kept in the annotations of one ConfigMap, changed by compare-and-swap: read it,
// decide, write it back with the resourceVersion that was read. Two agents deciding at once cannot both
// win: the second write is refused (409) and that agent reads and decides again. The event watcher's
// lock and the cluster-wide recovery budget are both such records.
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { apiStatus } from './client.js';

export type Annotations = Record<string, string>;

export class AnnotationRecord {
  private readonly core: CoreV1Api;

  constructor(
    kc: KubeConfig,
    readonly namespace: string,
    readonly name: string,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  /** The annotations as stored now ({} when the ConfigMap does not exist). */
  async read(): Promise<Annotations> {
    return (await this.get())?.metadata?.annotations ?? {};
  }

  /**
   * `decide` gets the stored annotations and returns those to set (merged over the stored ones), or
   * undefined to write nothing. Resolves true once a write of its decision succeeded; false when it
   * decided to write nothing, or when another writer won every one of `attempts` tries.
   */
  async update(decide: (current: Annotations) => Annotations | undefined, attempts = 5): Promise<boolean> {
    for (let attempt = 0; attempt < attempts; attempt++) {
      const map = await this.get();
      const change = decide({ ...map?.metadata?.annotations });
      if (!change) return false;
      const annotations = { ...map?.metadata?.annotations, ...change };
      try {
        if (map) {
          await this.core.replaceNamespacedConfigMap({ namespace: this.namespace, name: this.name, body: { ...map, metadata: { ...map.metadata, annotations } } });
        } else {
          await this.core.createNamespacedConfigMap({ namespace: this.namespace, body: { metadata: { name: this.name, annotations } } });
        }
        return true;
      } catch (err) {
        // Another writer came first (409), or the object went or changed shape meanwhile (404, 422): again.
        if (![409, 404, 422].includes(apiStatus(err) ?? 0)) throw err;
      }
    }
    return false;
  }

  private async get(): Promise<V1ConfigMap | undefined> {
    try {
      return await this.core.readNamespacedConfigMap({ namespace: this.namespace, name: this.name });
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  }
}
