// The AbnormalStore: the only place an Abnormal lives. The pipeline reads an Abnormal back from the
// store before each run and writes status through it, so a restart resumes where the last status write
// left off. Two implementations: kube (custom resources) and file (the embedded default).
import type { Abnormal, AbnormalSpec, AbnormalStatus, Processor as ProcessorObject } from '../api/types.generated.js';
import type { ProcessorKind } from '../processors/contract.js';

/** namespace/name for kube; the file name for the file store. */
export type AbnormalKey = string;

export const keyOf = (abnormal: Abnormal): AbnormalKey => `${abnormal.metadata?.namespace ?? ''}/${abnormal.metadata?.name ?? ''}`;

/** Another writer changed the object since it was read; read it again and decide again. */
export class ConflictError extends Error {
  constructor(key: AbnormalKey) {
    super(`${key} changed since it was read`);
    this.name = 'ConflictError';
  }
}

export type EventType = 'Normal' | 'Warning';

/** A registered HTTP processor object, with the kind it was registered as. */
export type ProcessorRegistration = { kind: ProcessorKind; object: ProcessorObject };

export interface AbnormalStore {
  /**
   * Start watching this node's Abnormals; `onChange` gets the key of each one that appears or changes,
   * including every existing one at start. Resolves once the first full list has been delivered.
   */
  start(onChange: (key: AbnormalKey) => void): Promise<void>;
  /** True once start() has delivered the first full list (for /readyz). */
  readonly synced: boolean;
  /** The current object, or undefined if it is gone or not this node's. */
  get(key: AbnormalKey): Promise<Abnormal | undefined>;
  /**
   * Replace the status of `abnormal`, compare-and-swap: throws ConflictError when the stored object is
   * newer than `abnormal`. Resolves to the stored object after the write.
   */
  writeStatus(abnormal: Abnormal, status: AbnormalStatus): Promise<Abnormal>;
  /**
   * Create an Abnormal for this node (the symptom sources do). metadata.generateName gives the name a
   * unique suffix. Resolves to the stored object.
   */
  create(abnormal: Abnormal): Promise<Abnormal>;
  /** The Abnormals labelled with `fingerprint` (FINGERPRINT_LABEL), whichever node they are for. */
  findByFingerprint(fingerprint: string): Promise<Abnormal[]>;
  /** Replace the spec (the sources own it: occurrences, an alert's end), compare-and-swap like writeStatus. */
  writeSpec(abnormal: Abnormal, spec: AbnormalSpec): Promise<Abnormal>;
  /** Record a line in the Abnormal's story (kubectl describe). Never throws: a lost event loses no state. */
  recordEvent(abnormal: Abnormal, type: EventType, reason: string, message: string): Promise<void>;
  /** The HTTP processors registered for this store (InformationCollector / Diagnoser / Recoverer objects). */
  processors(): Promise<ProcessorRegistration[]>;
  /** The bearer token a processor object refers to (bearerTokenSecretRef), read where the store keeps secrets. */
  readSecret(namespace: string, name: string, key: string): Promise<string>;
  stop(): Promise<void>;
}
