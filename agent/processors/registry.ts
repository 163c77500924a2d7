// The registry of all processors: the built-ins, the scripts in a directory per kind, and the HTTP
// processors registered as InformationCollector / Diagnoser / Recoverer objects in the backend's
// catalog. The pipeline asks it which
// processors to run for a stage:
//   - an Abnormal's assigned list, in the order given (a name not registered is reported as missing);
//   - otherwise every processor of the kind: built-ins first, by name, then the scripts in the kind's
//     directory, by file name, then HTTP processors by namespace and name. That order is part of the
//     API: it decides which diagnoser wins.
import type { ProcessorKind } from '../api/kinds.js';
import type { ProcessorRef } from '../api/types.generated.js';
import type { ProcessorCatalog, SecretReader } from '../store/store.js';
import { refName, type Processor } from './contract.js';
import { HttpProcessor, type HttpProcessorOptions } from './http.js';
import { scriptsIn, type ScriptOptions } from './script.js';

export type ScriptDirectories = ScriptOptions & { dirs: Partial<Record<ProcessorKind, string>> };

export class ProcessorRegistry {
  // One HttpProcessor (and so one connection pool) per registration, rebuilt when its spec changes.
  private readonly http = new Map<string, { spec: string; processor: HttpProcessor }>();

  constructor(
    private readonly builtins: readonly Processor[],
    private readonly backend: { catalog: ProcessorCatalog; secrets: SecretReader },
    private readonly httpOptions: Omit<HttpProcessorOptions, 'readSecret'>,
    private readonly scripts?: ScriptDirectories,
  ) {}

  async resolve(kind: ProcessorKind, assigned: readonly ProcessorRef[] | undefined): Promise<{ processors: Processor[]; missing: ProcessorRef[] }> {
    const all = await this.all(kind);
    if (!assigned || assigned.length === 0) return { processors: all, missing: [] };
    const byName = new Map(all.map((p) => [refName(p.ref), p]));
    const processors: Processor[] = [];
    const missing: ProcessorRef[] = [];
    for (const ref of assigned) {
      const found = byName.get(refName(ref));
      if (found) processors.push(found);
      else missing.push(ref);
    }
    return { processors, missing };
  }

  async all(kind: ProcessorKind): Promise<Processor[]> {
    const builtins = this.builtins.filter((p) => p.kind === kind).sort((a, b) => byText(a.ref.name, b.ref.name));
    const dir = this.scripts?.dirs[kind];
    const scripts = dir ? await scriptsIn(dir, kind, this.scripts!) : [];
    const registered: Processor[] = [];
    const current = new Set<string>();
    for (const { kind: k, object } of await this.backend.catalog.processors()) {
      if (k !== kind) continue;
      const ref = { namespace: object.metadata?.namespace ?? '', name: object.metadata?.name ?? '' };
      const id = `${kind}:${refName(ref)}`;
      current.add(id);
      const spec = JSON.stringify(object.spec);
      let cached = this.http.get(id);
      if (!cached || cached.spec !== spec) {
        void cached?.processor.close();
        cached = { spec, processor: new HttpProcessor(kind, ref, object.spec, { ...this.httpOptions, readSecret: (ns, name, key) => this.backend.secrets.readSecret(ns, name, key) }) };
        this.http.set(id, cached);
      }
      registered.push(cached.processor);
    }
    for (const [id, { processor }] of this.http) {
      if (id.startsWith(`${kind}:`) && !current.has(id)) {
        void processor.close(); // unregistered: let its connections go
        this.http.delete(id);
      }
    }
    registered.sort((a, b) => byText(refName(a.ref), refName(b.ref)));
    return [...builtins, ...scripts, ...registered];
  }

  async close(): Promise<void> {
    await Promise.all([...this.http.values()].map(({ processor }) => processor.close()));
    this.http.clear();
  }
}

/** Code-point order: the same on every machine, whatever its locale. */
const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
