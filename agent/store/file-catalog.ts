// The file backend's processor catalog and Secrets, beside the Abnormals in the state directory:
//   DIR/processors/*.yaml|.json          InformationCollector / Diagnoser / Recoverer objects
//   DIR/secrets/NAMESPACE/NAME/KEY       what a processor's bearerTokenSecretRef points to
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { parseAllDocuments } from 'yaml';
import { PROCESSOR_KINDS, isProcessorKind } from '../api/kinds.js';
import { validateProcessor } from '../api/validate.js';
import type { ProcessorCatalog, ProcessorRegistration, SecretReader } from './store.js';

export class FileCatalog implements ProcessorCatalog, SecretReader {
  constructor(private readonly opts: { dir: string; log: Logger }) {}

  /** Read at each call, so a registration added or changed takes effect without a restart. */
  async processors(): Promise<ProcessorRegistration[]> {
    const dir = path.join(this.opts.dir, 'processors');
    const found: ProcessorRegistration[] = [];
    for (const file of (await readdir(dir).catch(() => [])).filter((f) => /\.(ya?ml|json)$/.test(f)).sort()) {
      const docs = parseAllDocuments(await readFile(path.join(dir, file), 'utf8'));
      for (const doc of docs) {
        const object = doc.toJS() as { kind?: string; metadata?: { namespace?: string } } | null;
        if (!object) continue;
        try {
          if (!isProcessorKind(object.kind)) throw new Error(`kind must be one of ${PROCESSOR_KINDS.join(', ')}`);
          const valid = validateProcessor({ ...object, metadata: { namespace: 'default', ...object.metadata } });
          found.push({ kind: object.kind, object: valid });
        } catch (err) {
          this.opts.log.warn({ file, err: (err as Error).message }, 'ignoring an invalid processor registration');
        }
      }
    }
    return found;
  }

  async readSecret(namespace: string, name: string, key: string): Promise<string> {
    for (const part of [namespace, name, key]) if (part.includes('/') || part.startsWith('.')) throw new Error(`invalid secret path part ${part}`);
    return readFile(path.join(this.opts.dir, 'secrets', namespace, name, key), 'utf8');
  }
}
