// The store's contracts. The AbnormalStore is the only place an Abnormal lives: the pipeline reads an
// Abnormal back from it before each step and writes status through it, so a restart resumes where the
// last status write left off. Beside it, three small interfaces for what lives next to Abnormals in the
// same backend: the processor catalog (registered HTTP processors), the Secrets those refer to, and the
// Events that tell an Abnormal's story, and the node's own conditions and Events. Two backends implement all four: kube (custom resources,
// agent/store/kube*.ts) and file (a state directory, agent/store/file*.ts).
import type { AbnormalKey, ProcessorKind } from '../api/kinds.js';
import type { Abnormal, AbnormalSpec, AbnormalStatus, Processor as ProcessorObject } from '../api/types.generated.js';

/** Another writer changed the object since it was read; read it again and decide again. */
export class ConflictError extends Error {
  constructor(key: AbnormalKey) {
    super(`${key} changed since it was read`);
    this.name = 'ConflictError';
  }
}

/** The store refuses the object as invalid (the apiserver's 400 or 422): writing it again cannot succeed. */
export class InvalidObjectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidObjectError';
  }
}

export interface AbnormalStore {
  /**
   * Start watching this node's Abnormals; `onChange` gets the key of each one that appears or changes,
   * including every existing one at start, and of every unfinished one again each resync period.
   * Resolves once the first full list has been delivered.
   */
  start(onChange: (key: AbnormalKey) => void): Promise<void>;
  /** True once start() has delivered the first full list (for /readyz). */
  readonly synced: boolean;
  /** Until synced: what last kept it from listing (for /readyz to say), if anything. */
  readonly notSyncedBecause?: string;
  /** The current object, or undefined if it is gone or not this node's. */
  get(key: AbnormalKey): Promise<Abnormal | undefined>;
  /**
   * Replace the status of `abnormal`, compare-and-swap: throws ConflictError when the stored object is
   * newer than `abnormal`. Resolves to the stored object after the write.
   */
  writeStatus(abnormal: Abnormal, status: AbnormalStatus): Promise<Abnormal>;
  /**
   * Create an Abnormal for this node (the symptom sink does). metadata.generateName gives the name a
   * unique suffix. Resolves to the stored object.
   */
  create(abnormal: Abnormal): Promise<Abnormal>;
  /**
   * The Abnormals labelled with `fingerprint` (FINGERPRINT_LABEL). `nodeName`, the node the fingerprint
   * is for: a store that holds every Abnormal of its own node in memory answers for that node from there.
   */
  findByFingerprint(fingerprint: string, nodeName?: string): Promise<Abnormal[]>;
  /** The Abnormals labelled with `subject` (SUBJECT_LABEL): those about one pod, whatever symptom made them. */
  findBySubject(subject: string, nodeName?: string): Promise<Abnormal[]>;
  /** Replace the spec (the sink owns it: occurrences, an alert's end), compare-and-swap like writeStatus. */
  writeSpec(abnormal: Abnormal, spec: AbnormalSpec): Promise<Abnormal>;
  /** Every Abnormal of this node (for garbage collection). */
  listOfNode(): Promise<Abnormal[]>;
  /** Delete it if it is still as read (same resourceVersion); false when it changed meanwhile. Gone already: true. */
  remove(abnormal: Abnormal): Promise<boolean>;
  stop(): Promise<void>;
}

/** A registered HTTP processor object, with the kind it was registered as. */
export type ProcessorRegistration = { kind: ProcessorKind; object: ProcessorObject };

/** The HTTP processors registered with this backend (InformationCollector / Diagnoser / Recoverer objects). */
export interface ProcessorCatalog {
  processors(): Promise<ProcessorRegistration[]>;
  /** Until its first lists are in: what last kept it from listing (for /readyz to say), if anything. */
  readonly notSyncedBecause?: string;
}

/** Secrets by namespace, name and key: a processor's bearer token, the alert receiver's. */
export interface SecretReader {
  readSecret(namespace: string, name: string, key: string): Promise<string>;
}

export type EventType = 'Normal' | 'Warning';

/** An Abnormal's story (kubectl describe). */
export interface EventRecorder {
  /** Record one line of it. Never throws: a lost event loses no state. */
  recordEvent(abnormal: Abnormal, type: EventType, reason: string, message: string): Promise<void>;
}

/** A condition the agent keeps on its Node, as node-problem-detector does (kubectl describe node). */
export type NodeCondition = { type: string; status: 'True' | 'False' | 'Unknown'; reason: string; message: string };

/** This node's Node object: the conditions the agent owns on it, and the Events about it. */
export interface NodeReporter {
  /**
   * Set these conditions on the Node, leaving every other condition as it is; a condition's
   * lastTransitionTime moves only when its status changes. Throws when it cannot (the caller tries again).
   */
  setConditions(conditions: NodeCondition[]): Promise<void>;
  /** Record an Event about the Node. Never throws: a lost event loses no state. */
  recordNodeEvent(type: EventType, reason: string, message: string): Promise<void>;
}

/** One backend: the Abnormals and what lives beside them. */
export type Backend = { store: AbnormalStore; catalog: ProcessorCatalog; secrets: SecretReader; events: EventRecorder; node: NodeReporter };
