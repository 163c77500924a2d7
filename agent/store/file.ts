// The file store, the embedded default: the same API kept as files in a state directory, for a node
// without a cluster, for trying processors offline, and for the quick start.
//
//   DIR/abnormals/NAME.yaml|.yml|.json   one Abnormal per file; its name is the file's base name, its
//                                        namespace metadata.namespace or "default"; status is written back
//                                        into the same file (YAML comments in spec are kept)
//   DIR/processors, DIR/secrets          the processor catalog and Secrets (file-catalog.ts)
//   DIR/events.jsonl                     the Events (file-events.ts)
//
// Writes are atomic (write a temporary file, fsync, rename, fsync the directory), so a crash leaves
// either the old file or the new one. The resourceVersion of an Abnormal is the hash of its file, so a
// person editing the file while the agent works is a conflict, never a lost edit.
import { createHash, randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, open, readFile, readdir, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { Document, parseDocument } from 'yaml';
import type { Abnormal, AbnormalSpec, AbnormalStatus } from '../api/types.generated.js';
import { FINGERPRINT_LABEL, SUBJECT_LABEL } from '../api/crds.js';
import { keyOf, type AbnormalKey } from '../api/kinds.js';
import { isTerminal } from '../api/phase.js';
import { Reason } from '../api/reasons.js';
import { ValidationError, validateAbnormal } from '../api/validate.js';
import { TEMPORARY_FILE, atomicWrite } from '../lib/files.js';
import { ConflictError, type AbnormalStore } from './store.js';

const ABNORMAL_FILE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\.(ya?ml|json)$/;
const SETTLE_MS = 300;
/** The largest Abnormal file read: etcd takes objects up to 1.5 MiB, and parsing more would stall the agent. */
const MAX_FILE_BYTES = 2 * 1024 * 1024;
/** The most text whose parsed reads are kept (FileStore.parsed): a directory of large files costs a bounded cache. */
const MAX_PARSED_BYTES = 16 * 1024 * 1024;
/** The most documents of the store's own last writes kept (FileStore.documents): about the Abnormals in flight. */
const MAX_DOCUMENTS = 16;

export type FileStoreOptions = {
  dir: string;
  log: Logger;
  /** How often the directory is listed for changes fs.watch missed. */
  rescanMs?: number;
  /** How often every unfinished Abnormal is handed to onChange again, changed or not (config resyncSeconds). */
  resyncMs?: number;
  /** How long a file must be unchanged before it is read (SETTLE_MS); 0 for files the caller wrote itself. */
  settleMs?: number;
};

export class FileStore implements AbnormalStore {
  synced = false;
  private readonly abnormalsDir: string;
  private readonly files = new Map<AbnormalKey, string>(); // key → file name
  /** fingerprint label → the keys of the Abnormals last read with it. */
  private readonly byFingerprint = new Map<string, Set<AbnormalKey>>();
  private readonly seen = new Map<string, string>(); // file name → mtime+size at the last scan
  /**
   * The last valid read of each file, by its hash: a file read again unchanged is not parsed and
   * checked again. The pipeline and the node conditions read every Abnormal often; YAML parsing was
   * most of what the file store cost.
   */
  private readonly parsed = new Map<string, { version: string; key: AbnormalKey; abnormal: Abnormal; bytes: number }>();
  /** What the kept reads were parsed from, in all: at most MAX_PARSED_BYTES, the oldest dropped first. */
  private parsedBytes = 0;
  /**
   * The YAML document of this store's last write of a file, by the hash of what it wrote: the next
   * rewrite of the file, if it is unchanged, starts from it instead of parsing the file again (an
   * Abnormal's status is written a few times in a row; parsing was most of each write).
   */
  private readonly documents = new Map<string, { version: string; doc: Document }>();
  /** YAML texts parsed so far: what the two caches above are there to save (the tests count it). */
  yamlParses = 0;
  private watcher?: FSWatcher;
  private rescan?: NodeJS.Timeout;
  private resync?: NodeJS.Timeout;
  private onChange: (key: AbnormalKey) => void = () => {};
  /** The rewrite in flight per file: read, compare and write must not interleave with another's. */
  private readonly rewriting = new Map<string, Promise<unknown>>();

  constructor(private readonly opts: FileStoreOptions) {
    this.abnormalsDir = path.join(opts.dir, 'abnormals');
  }

  async start(onChange: (key: AbnormalKey) => void): Promise<void> {
    this.onChange = onChange;
    await mkdir(this.abnormalsDir, { recursive: true });
    // Temporaries of writes a crash or a full disk cut short: the files they were for are intact.
    for (const name of await readdir(this.abnormalsDir)) if (TEMPORARY_FILE.test(name)) await unlink(path.join(this.abnormalsDir, name)).catch(() => {});
    // fs.watch says quickly that something changed; the rescan catches what it can miss (it is not
    // guaranteed on every filesystem) and is how a file that was refused gets another look.
    this.watcher = watch(this.abnormalsDir, (_event, file) => {
      if (file && ABNORMAL_FILE.test(file.toString())) void this.scanFile(file.toString());
    });
    this.watcher.on('error', (err) => this.opts.log.warn({ err }, 'watching the state directory failed; relying on the rescan'));
    await this.scan();
    this.rescan = setInterval(() => void this.scan(), this.opts.rescanMs ?? 2000);
    // What a failed write left mid-pipeline is looked at again even though its file did not change.
    this.resync = setInterval(() => void this.resyncUnfinished(), this.opts.resyncMs ?? 300_000);
    this.synced = true;
  }

  async get(key: AbnormalKey): Promise<Abnormal | undefined> {
    const file = this.files.get(key);
    return file ? (await this.load(file))?.abnormal : undefined;
  }

  writeStatus(abnormal: Abnormal, status: AbnormalStatus): Promise<Abnormal> {
    return this.rewrite(abnormal, [[['status'], status]]);
  }

  /** Only the spec fields that changed are rewritten, so comments on the others stay. */
  async writeSpec(abnormal: Abnormal, spec: AbnormalSpec): Promise<Abnormal> {
    const changed = Object.entries(spec).filter(([key, value]) => !isDeepStrictEqual(value, abnormal.spec[key as keyof AbnormalSpec]));
    return this.rewrite(abnormal, changed.map(([key, value]) => [['spec', key], value]));
  }

  async create(abnormal: Abnormal): Promise<Abnormal> {
    const name = abnormal.metadata?.name ?? `${abnormal.metadata?.generateName ?? 'abnormal-'}${randomBytes(3).toString('hex')}`;
    const namespace = abnormal.metadata?.namespace ?? 'default';
    const { generateName: _, ...metadata } = { ...abnormal.metadata, name, namespace };
    const doc = new Document({ ...abnormal, metadata });
    doc.commentBefore = ' Created by nodemedic from a symptom.';
    const text = doc.toString({ lineWidth: 0 });
    const file = `${name}.yaml`;
    const version = hash(text);
    const key = `${namespace}/${name}`;
    await this.inTurn(file, async () => {
      await atomicWrite(path.join(this.abnormalsDir, file), text);
      this.files.set(key, file);
      this.index(abnormal, key);
      this.keepDocument(file, version, doc);
      this.rememberWritten(file, key, doc.toJS() as Abnormal, text, version);
    });
    return { ...abnormal, metadata: { ...metadata, resourceVersion: version } };
  }

  /** Every Abnormal in the state directory: the file store serves one node. */
  async listOfNode(): Promise<Abnormal[]> {
    const all = await Promise.all([...this.files.keys()].map((key) => this.get(key).catch(() => undefined)));
    return all.filter((a): a is Abnormal => a !== undefined);
  }

  /** Deletes the file if its content is still what was read (its hash); in turn with the rewrites of it. */
  async remove(abnormal: Abnormal): Promise<boolean> {
    const key = keyOf(abnormal);
    const file = this.files.get(key);
    if (!file) return true;
    return this.inTurn(file, async () => {
      const full = path.join(this.abnormalsDir, file);
      const text = await readFile(full, 'utf8').catch(() => undefined);
      if (text === undefined) return true;
      if (hash(text) !== abnormal.metadata?.resourceVersion) return false;
      await unlink(full);
      this.files.delete(key);
      this.seen.delete(file);
      this.forget(file);
      return true;
    });
  }

  /** Reads only the files last seen with that fingerprint (an index kept as files are read), not every file. */
  async findByFingerprint(fingerprint: string): Promise<Abnormal[]> {
    const found: Abnormal[] = [];
    for (const key of [...(this.byFingerprint.get(fingerprint) ?? [])]) {
      const abnormal = await this.get(key);
      if (abnormal?.metadata?.labels?.[FINGERPRINT_LABEL] === fingerprint) found.push(abnormal);
      else this.byFingerprint.get(fingerprint)?.delete(key); // gone, or relabelled since
    }
    return found;
  }

  async findBySubject(subject: string): Promise<Abnormal[]> {
    return (await this.listOfNode()).filter((a) => a.metadata?.labels?.[SUBJECT_LABEL] === subject);
  }

  private index(abnormal: Pick<Abnormal, 'metadata'>, key: AbnormalKey): void {
    const fingerprint = abnormal.metadata?.labels?.[FINGERPRINT_LABEL];
    if (!fingerprint) return;
    const keys = this.byFingerprint.get(fingerprint) ?? new Set<AbnormalKey>();
    keys.add(key);
    this.byFingerprint.set(fingerprint, keys);
  }

  /**
   * Replace the values at the given paths in the Abnormal's file, compare-and-swap on the file's hash.
   * Rewrites of one file by this process (the pipeline's status, a source's count) take turns, so the
   * second sees the first's hash and gets a conflict instead of silently writing over it.
   */
  private async rewrite(abnormal: Abnormal, changes: Array<[string[], unknown]>): Promise<Abnormal> {
    const key = keyOf(abnormal);
    const file = this.files.get(key);
    if (!file) throw new ConflictError(key);
    return this.inTurn(file, () => this.rewriteNow(file, key, abnormal, changes));
  }

  /** Work on one file after the work on it already asked for. */
  private async inTurn<T>(file: string, work: () => Promise<T>): Promise<T> {
    const previous = this.rewriting.get(file) ?? Promise.resolve();
    const turn = previous.catch(() => {}).then(work);
    this.rewriting.set(file, turn);
    try {
      return await turn;
    } finally {
      if (this.rewriting.get(file) === turn) this.rewriting.delete(file);
    }
  }

  private async rewriteNow(file: string, key: AbnormalKey, abnormal: Abnormal, changes: Array<[string[], unknown]>): Promise<Abnormal> {
    const full = path.join(this.abnormalsDir, file);
    const text = await readFile(full, 'utf8');
    const current = hash(text);
    if (current !== abnormal.metadata?.resourceVersion) throw new ConflictError(key);
    let next: string;
    let written: Abnormal;
    let doc: Document | undefined;
    if (file.endsWith('.json')) {
      const object = JSON.parse(text) as Record<string, Record<string, unknown>>;
      for (const [at, value] of changes) {
        if (at.length === 1) object[at[0]!] = value as Record<string, unknown>;
        else object[at[0]!] = { ...object[at[0]!], [at[1]!]: value };
      }
      next = `${JSON.stringify(object, null, 2)}\n`;
      written = JSON.parse(next) as Abnormal;
    } else {
      const kept = this.documents.get(file);
      this.documents.delete(file); // changed below: kept again once written
      doc = kept?.version === current ? kept.doc : this.parse(text);
      for (const [at, value] of changes) doc.setIn(at, doc.createNode(value));
      next = doc.toString({ lineWidth: 0 });
      written = doc.toJS() as Abnormal; // what `next` reads back as, without parsing it again
    }
    await atomicWrite(full, next);
    const version = hash(next);
    if (doc) this.keepDocument(file, version, doc);
    this.rememberWritten(file, key, written, next, version);
    return { ...written, metadata: { ...abnormal.metadata, resourceVersion: version } };
  }

  /** What the watcher's read of a file this store wrote would find, kept — unless the write made it invalid (then it is read and judged). */
  private rememberWritten(file: string, key: AbnormalKey, written: Partial<Abnormal>, text: string, version: string): void {
    const served = asServed(file, written, version);
    try {
      check(served);
      this.remember(file, { version, key, abnormal: served, bytes: text.length });
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
    }
  }

  /** Keeps a valid read (a copy of it), within the byte budget. */
  private remember(file: string, read: { version: string; key: AbnormalKey; abnormal: Abnormal; bytes: number }): void {
    this.parsedBytes -= this.parsed.get(file)?.bytes ?? 0;
    this.parsed.delete(file); // its document, if kept, is the same write's
    if (read.bytes > MAX_PARSED_BYTES) return;
    for (const [oldest] of this.parsed) {
      if (this.parsedBytes + read.bytes <= MAX_PARSED_BYTES) break;
      this.forget(oldest);
    }
    this.parsed.set(file, { ...read, abnormal: structuredClone(read.abnormal) });
    this.parsedBytes += read.bytes;
  }

  private forget(file: string): void {
    this.parsedBytes -= this.parsed.get(file)?.bytes ?? 0;
    this.parsed.delete(file);
    this.documents.delete(file);
  }

  private parse(text: string): Document {
    this.yamlParses++;
    return parseDocument(text);
  }

  private keepDocument(file: string, version: string, doc: Document): void {
    this.documents.delete(file);
    for (const [oldest] of this.documents) {
      if (this.documents.size < MAX_DOCUMENTS) break;
      this.documents.delete(oldest);
    }
    this.documents.set(file, { version, doc });
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    clearInterval(this.rescan);
    clearInterval(this.resync);
  }

  private async resyncUnfinished(): Promise<void> {
    for (const key of [...this.files.keys()]) {
      const abnormal = await this.get(key).catch(() => undefined);
      if (abnormal && !isTerminal(abnormal.status?.phase)) this.onChange(key);
    }
  }

  private async scan(): Promise<void> {
    const names = (await readdir(this.abnormalsDir).catch(() => [] as string[])).filter((f) => ABNORMAL_FILE.test(f));
    for (const file of names) await this.scanFile(file);
    for (const [key, file] of this.files) {
      if (!names.includes(file)) {
        this.files.delete(key);
        this.seen.delete(file);
        this.forget(file);
      }
    }
  }

  /**
   * Look at one file if it changed since last seen; tell the pipeline about it if it is an Abnormal.
   * A file changed less than SETTLE_MS ago may still be being written (cp, an editor): it is looked at
   * again once it has settled, so the agent never reads half a file or writes over one being written.
   */
  private async scanFile(file: string): Promise<void> {
    const info = await stat(path.join(this.abnormalsDir, file)).catch(() => undefined);
    if (!info) return;
    const settle = this.opts.settleMs ?? SETTLE_MS;
    const age = Date.now() - info.mtimeMs;
    if (age < settle) {
      setTimeout(() => void this.scanFile(file), settle - age + 10).unref();
      return;
    }
    const signature = `${info.mtimeMs}:${info.size}`;
    if (this.seen.get(file) === signature) return;
    this.seen.set(file, signature);
    const loaded = await this.load(file);
    if (loaded) this.onChange(loaded.key);
  }

  /**
   * Parse and validate a file. An invalid Abnormal is marked Failed in its own status, with every
   * problem named; a file that is not YAML at all gets a FILE.error beside it.
   */
  private async load(file: string): Promise<{ key: AbnormalKey; abnormal: Abnormal } | undefined> {
    // A write of this store in flight: its file may be there before what it wrote is kept; read after it.
    await this.rewriting.get(file)?.catch(() => {});
    const full = path.join(this.abnormalsDir, file);
    const handle = await open(full, 'r').catch(() => undefined);
    if (!handle) return undefined;
    let text: string;
    try {
      // The size of what was opened, so a file that grows meanwhile is still judged by what is read.
      const { size } = await handle.stat();
      if (size > MAX_FILE_BYTES) {
        const message = `${file} is ${size} bytes; an Abnormal file may have at most ${MAX_FILE_BYTES} (it is not read)`;
        this.opts.log.warn({ file, size }, message);
        await writeFile(`${full}.error`, `${message}\n`).catch(() => {});
        return undefined;
      }
      const buffer = Buffer.alloc(size);
      const { bytesRead } = await handle.read(buffer, 0, size, 0);
      text = buffer.toString('utf8', 0, bytesRead);
    } catch {
      return undefined;
    } finally {
      await handle.close();
    }
    const version = hash(text);
    const known = this.parsed.get(file);
    if (known?.version === version && this.files.get(known.key) === file) return { key: known.key, abnormal: structuredClone(known.abnormal) };
    let object: Partial<Abnormal>;
    try {
      const doc = this.parse(text);
      if (doc.errors.length > 0) throw doc.errors[0];
      object = (doc.toJS() ?? {}) as Partial<Abnormal>;
      if (typeof object !== 'object' || Array.isArray(object)) throw new Error('the file must hold one object (an Abnormal)');
      await unlink(`${full}.error`).catch(() => {});
    } catch (err) {
      const message = `${file} is not a valid YAML or JSON object: ${(err as Error).message}`;
      this.opts.log.warn({ file }, message);
      await writeFile(`${full}.error`, `${message}\n`).catch(() => {});
      return undefined;
    }
    const abnormal = asServed(file, object, version);
    const key = keyOf(abnormal);
    const owner = this.files.get(key);
    if (owner && owner !== file) {
      this.opts.log.warn({ file, other: owner }, `two files name the Abnormal ${key}; ignoring ${file}`);
      return undefined;
    }
    this.files.set(key, file);
    this.index(abnormal, key);
    try {
      check(abnormal);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      if (abnormal.status?.phase !== 'Failed') {
        const message = `invalid Abnormal: ${err.problems.join('; ')}`;
        this.opts.log.warn({ file }, message);
        const base = { ...abnormal, status: undefined } as unknown as Abnormal;
        await this.writeStatus(base, { phase: 'Failed', reason: Reason.InvalidAbnormal, message }).catch(() => {});
      }
      return undefined;
    }
    this.remember(file, { version, key, abnormal, bytes: text.length });
    return { key, abnormal };
  }
}

/** A file's object as the store serves it: named after the file, in namespace default unless it says, at the file's version. */
function asServed(file: string, object: Partial<Abnormal>, version: string): Abnormal {
  const name = file.replace(/\.(ya?ml|json)$/, '');
  return { ...object, metadata: { ...object.metadata, name, namespace: object.metadata?.namespace ?? 'default', resourceVersion: version } } as Abnormal;
}

/** Throws ValidationError unless the Abnormal is valid (its metadata is the store's, so only its name and namespace are checked). */
const check = (abnormal: Abnormal) => validateAbnormal({ ...abnormal, metadata: { name: abnormal.metadata!.name, namespace: abnormal.metadata!.namespace } });
const hash = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 16);
