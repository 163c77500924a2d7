// The kinds of the nodemedic API and how each is named on the wire: the one home of the kind → plural
// map (the CRDs, the kube store's watches and the HTTP server's /processors/<plural>/ paths use it), and
// of an Abnormal's key.
import type { Abnormal } from './types.generated.js';

/** Each processor kind and its resource's plural name. */
export const PROCESSOR_PLURALS = {
  InformationCollector: 'informationcollectors',
  Diagnoser: 'diagnosers',
  Recoverer: 'recoverers',
} as const;

export type ProcessorKind = keyof typeof PROCESSOR_PLURALS;
export type ProcessorPlural = (typeof PROCESSOR_PLURALS)[ProcessorKind];
export const PROCESSOR_KINDS = Object.keys(PROCESSOR_PLURALS) as ProcessorKind[];

export const isProcessorKind = (value: unknown): value is ProcessorKind => typeof value === 'string' && value in PROCESSOR_PLURALS;

/** The kind whose plural this is ("diagnosers" → "Diagnoser"), or undefined. */
export const kindOfPlural = (plural: string): ProcessorKind | undefined => PROCESSOR_KINDS.find((kind) => PROCESSOR_PLURALS[kind] === plural);

/** How an Abnormal is named everywhere in the agent: "namespace/name". */
export type AbnormalKey = string;

export const keyOf = (abnormal: Pick<Abnormal, 'metadata'>): AbnormalKey => `${abnormal.metadata?.namespace ?? ''}/${abnormal.metadata?.name ?? ''}`;
