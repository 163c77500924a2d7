// Prometheus alerts, from Alertmanager's webhook (payload version 4) at POST /v1/alerts on the agent's
// HTTP server (which checks the token and the size, then hands the body to receive()). A source like
// the others: each firing alert is mapped to the node it names (the first of the configured labels
// present: node, instance, kubernetes_node, ...; an instance's ":port" is dropped) and becomes a symptom
// for that node — whichever agent received it, since Alertmanager may deliver to any of them. A
// resolved alert is a symptom that has ended: the sink records its endsAt on the Abnormal its firing made.
// Each alert is checked against the Abnormal schema before the reply: one the API would refuse (a
// startsAt that is no date, a label over its size limit) is named in the reply's `refused` with why,
// counted, and never handed on — Alertmanager, told 200, would not send it again, and it could never be
// written anyway. The reply: 200 {firing, resolved, skipped: [{alert, reason}], refused: [{alert, problems}]}.
import { createHash } from 'node:crypto';
import { Reason } from '../api/reasons.js';
import { ValidationError, validator } from '../api/validate.js';
import type { AlertmanagerAlert, AlertmanagerPayload } from './alertmanager-schema.js';
import { checkAlertmanagerPayload } from './alertmanager.generated.js';
import { refusalOf, type Symptom, type SymptomSource } from './source.js';

/** The generated check (agent/sources/alertmanager-schema.ts is its source). */
const validatePayload = validator<AlertmanagerPayload>(checkAlertmanagerPayload, 'Alertmanager payload', '');

export type AlertReply = { status: number; body: Record<string, unknown> };

export type AlertSourceOptions = {
  /** Labels that name an alert's node, tried in order. */
  nodeLabels: readonly string[];
};

/** An alert's reason on the Abnormal: its alertname as a CamelCase word. */
function reasonOf(labels: Record<string, string>): string {
  const name = (labels.alertname ?? '').replace(/[^A-Za-z0-9]/g, '');
  if (!name) return 'PrometheusAlert';
  return /^[A-Za-z]/.test(name) ? name : `Alert${name}`;
}

/** What tells two alerts apart: Alertmanager's fingerprint, or a hash of the labels. */
const subjectOf = (alert: AlertmanagerAlert) =>
  `alert ${alert.fingerprint ?? createHash('sha256').update(JSON.stringify(Object.entries(alert.labels).sort())).digest('hex').slice(0, 16)}`;

/** Alertmanager's "no end" is the zero time. */
const realTime = (t: string | undefined) => (t && !t.startsWith('0001-01-01') ? t : undefined);

export class AlertSource implements SymptomSource {
  readonly name = 'alertmanager webhook';
  /** Alerts refused as invalid (the Abnormal schema), for the metrics. */
  refused = 0;
  private emit?: (symptom: Symptom) => void;

  constructor(private readonly opts: AlertSourceOptions) {}

  async start(emit: (symptom: Symptom) => void): Promise<void> {
    this.emit = emit;
  }

  async stop(): Promise<void> {
    this.emit = undefined;
  }

  nodeOf(labels: Record<string, string>): string | undefined {
    for (const label of this.opts.nodeLabels) {
      const value = labels[label];
      if (!value) continue;
      const node = (label === 'instance' ? value.replace(/:\d+$/, '') : value).toLowerCase();
      if (/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(node) && node.length <= 253) return node;
    }
    return undefined;
  }

  /** Handle a webhook body (already authenticated and size-checked). */
  receive(body: string): AlertReply {
    const emit = this.emit;
    if (!emit) return { status: 503, body: { reason: Reason.Unavailable, message: 'the alert receiver is not running (the agent is starting or stopping); try again' } };
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch (err) {
      return { status: 400, body: { reason: Reason.InvalidJSON, message: (err as Error).message } };
    }
    let payload: AlertmanagerPayload;
    try {
      payload = validatePayload(json);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      return { status: 400, body: { reason: Reason.InvalidPayload, message: err.problems.slice(0, 10).join('; ') } };
    }
    const result = { firing: 0, resolved: 0, skipped: [] as Array<{ alert: string; reason: string }>, refused: [] as Array<{ alert: string; problems: string[] }> };
    for (const alert of payload.alerts) {
      const node = this.nodeOf(alert.labels);
      if (!node) {
        result.skipped.push({ alert: alert.labels.alertname ?? '(unnamed)', reason: `no node in labels ${this.opts.nodeLabels.join(', ')}` });
        continue;
      }
      const symptom: Symptom = {
        source: 'PrometheusAlert',
        nodeName: node,
        reason: reasonOf(alert.labels),
        subject: subjectOf(alert),
        detail: {
          prometheusAlert: {
            labels: alert.labels,
            annotations: alert.annotations,
            ...(realTime(alert.startsAt) ? { startsAt: alert.startsAt } : {}),
            ...(alert.generatorURL ? { generatorURL: alert.generatorURL } : {}),
          },
        },
        seenAt: new Date(),
      };
      if (alert.status === 'resolved') symptom.endedAt = realTime(alert.endsAt) ?? new Date().toISOString();
      // A resolved alert is checked with the end it would record.
      const checked = symptom.endedAt ? { ...symptom, detail: { prometheusAlert: { ...symptom.detail.prometheusAlert, endsAt: symptom.endedAt } } } : symptom;
      const problems = refusalOf(checked, node);
      if (problems) {
        this.refused++;
        result.refused.push({ alert: alert.labels.alertname ?? '(unnamed)', problems: problems.slice(0, 5) });
        continue;
      }
      if (symptom.endedAt) result.resolved++;
      else result.firing++;
      emit(symptom);
    }
    return { status: 200, body: result };
  }
}
