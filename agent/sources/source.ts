// The one contract every symptom source follows, as node-problem-detector's monitors do: start with a
// place to put symptoms, stop. The log sources, Kubernetes events, stuck pods and the Alertmanager
// receiver all hand their symptoms to the sink (sink.ts), the only part that writes to the store.
import type { AbnormalSpec } from '../api/types.generated.js';

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
