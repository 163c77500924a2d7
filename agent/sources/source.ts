// The one contract every symptom source follows, as node-problem-detector's monitors do: start with a
// place to put symptoms, stop. The log sources, Kubernetes events, stuck pods and the Alertmanager
// receiver all hand their symptoms to the sink (sink.ts), the only part that writes to the store.
import { createHash } from 'node:crypto';
import { API_VERSION, FINGERPRINT_LABEL, SUBJECT_LABEL } from '../api/crds.js';
import { toRFC3339 } from '../api/phase.js';
import type { Abnormal, AbnormalSpec } from '../api/types.generated.js';
import { ValidationError, validateAbnormal } from '../api/validate.js';

export type Symptom = {
  source: AbnormalSpec['source'];
  /** The node it concerns, if not the agent's own (an alert about another node). */
  nodeName?: string;
  /** CamelCase, e.g. the rule's reason. */
  reason: string;
  /** What else makes two symptoms the same, e.g. "Pod default/web-0"; absent for node-wide ones. */
  subject?: string;
  /** The detail fields of the Abnormal: log, kubernetesEvent, prometheusAlert, nodeProbe, context, ... */
  detail: Partial<AbnormalSpec>;
  seenAt: Date;
  /**
   * The symptom has ended (a resolved alert), at this time: recorded on the Abnormal the same symptom
   * made (spec.prometheusAlert.endsAt), if there is one; never a new Abnormal.
   */
  endedAt?: string;
};

export interface SymptomSource {
  readonly name: string;
  /** Input lost before it could be looked at, if the source can tell; reported, never silent. */
  readonly lost?: number;
  start(emit: (symptom: Symptom) => void): Promise<void>;
  stop(): Promise<void>;
}

/** What makes two symptoms the same: source, node, reason and subject. A label on the Abnormal, so repeats find it after a restart. */
export function fingerprintOf(symptom: Pick<Symptom, 'source' | 'reason' | 'subject'>, nodeName: string): string {
  return createHash('sha256').update([symptom.source, nodeName, symptom.reason, symptom.subject ?? ''].join('\u0000')).digest('hex').slice(0, 32);
}

/**
 * What a symptom is about, as a label value, when symptoms about it are one fault: a pod (a stuck pod
 * and the kubelet's FailedKillPod for it). A node is the subject of nearly everything, and its
 * NodeNotReady and KernelDeadlock are two faults: undefined for it, and for anything else.
 */
export function subjectLabelOf(subject: string | undefined, nodeName: string): string | undefined {
  if (!subject?.startsWith('Pod ')) return undefined;
  return createHash('sha256').update([nodeName, subject].join('\u0000')).digest('hex').slice(0, 32);
}

/** The Abnormal a symptom becomes (the sink creates it), seen `count` times from `firstSeen` to `lastSeen`. */
export function abnormalOf(symptom: Symptom, nodeName: string, count = 1, firstSeen = symptom.seenAt, lastSeen = symptom.seenAt): Abnormal {
  const node = symptom.nodeName ?? nodeName;
  return {
    apiVersion: API_VERSION,
    kind: 'Abnormal',
    metadata: {
      generateName: `${node.slice(0, 30)}-${symptom.reason.toLowerCase().slice(0, 20)}-`,
      labels: { [FINGERPRINT_LABEL]: fingerprintOf(symptom, node), ...labelled(SUBJECT_LABEL, subjectLabelOf(symptom.subject, node)) },
    },
    spec: { ...symptom.detail, source: symptom.source, nodeName: node, occurrences: { count, firstSeen: toRFC3339(firstSeen), lastSeen: toRFC3339(lastSeen) } },
  };
}

/** Why the API would refuse the Abnormal a symptom becomes (each problem naming its field), or undefined if it would take it. */
export function refusalOf(symptom: Symptom, nodeName: string): string[] | undefined {
  const abnormal = abnormalOf(symptom, nodeName);
  try {
    validateAbnormal({ ...abnormal, metadata: { ...abnormal.metadata, name: 'symptom' } });
    return undefined;
  } catch (err) {
    if (err instanceof ValidationError) return err.problems;
    throw err;
  }
}

const labelled = (label: string, value: string | undefined) => (value ? { [label]: value } : {});
