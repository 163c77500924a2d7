// Prometheus alerts, from Alertmanager's webhook (payload version 4) at POST /v1/alerts on the agent's
// HTTP server. Each firing alert is mapped to the node it names (the first of the configured labels
// present: node, instance, kubernetes_node, ...; an instance's ":port" is dropped) and becomes an
// Abnormal with spec.prometheusAlert for that node — whichever agent received it, since Alertmanager
// may deliver to any of them. A resolved alert records its endsAt on the Abnormal its firing made.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Logger } from 'pino';
import type { AbnormalStore } from '../store/store.js';
import { ConflictError } from '../store/store.js';
import { fingerprintOf, type Symptom } from './sink.js';

const labelMap = z.record(z.string(), z.string());
const Alert = z.object({
  status: z.enum(['firing', 'resolved']),
  labels: labelMap,
  annotations: labelMap.default({}),
  startsAt: z.string().optional(),
  endsAt: z.string().optional(),
  generatorURL: z.string().optional(),
  fingerprint: z.string().optional(),
});
const Payload = z.object({
  version: z.literal('4'),
  alerts: z.array(Alert).max(10_000),
});

export type AlertReply = { status: number; body: Record<string, unknown> };

export type AlertReceiverOptions = {
  store: AbnormalStore;
  accept: (symptom: Symptom) => void;
  nodeLabels: readonly string[];
  log: Logger;
};

/** An alert's reason on the Abnormal: its alertname as a CamelCase word. */
function reasonOf(labels: Record<string, string>): string {
  const name = (labels.alertname ?? '').replace(/[^A-Za-z0-9]/g, '');
  if (!name) return 'PrometheusAlert';
  return /^[A-Za-z]/.test(name) ? name : `Alert${name}`;
}

/** What tells two alerts apart: Alertmanager's fingerprint, or a hash of the labels. */
const subjectOf = (alert: z.infer<typeof Alert>) =>
  `alert ${alert.fingerprint ?? createHash('sha256').update(JSON.stringify(Object.entries(alert.labels).sort())).digest('hex').slice(0, 16)}`;

/** Alertmanager's "no end" is the zero time. */
const realTime = (t: string | undefined) => (t && !t.startsWith('0001-01-01') ? t : undefined);

export class AlertReceiver {
  constructor(private readonly opts: AlertReceiverOptions) {}

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
  async receive(body: string): Promise<AlertReply> {
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch (err) {
      return { status: 400, body: { reason: 'InvalidJSON', message: (err as Error).message } };
    }
    const parsed = Payload.safeParse(json);
    if (!parsed.success) {
      const message = parsed.error.issues.map((i) => `${i.path.join('.') || '(payload)'}: ${i.message}`).slice(0, 10).join('; ');
      return { status: 400, body: { reason: 'InvalidPayload', message } };
    }
    const result = { firing: 0, resolved: 0, skipped: [] as Array<{ alert: string; reason: string }> };
    for (const alert of parsed.data.alerts) {
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
      if (alert.status === 'firing') {
        this.opts.accept(symptom);
        result.firing++;
      } else {
        await this.resolve(symptom, realTime(alert.endsAt) ?? new Date().toISOString());
        result.resolved++;
      }
    }
    return { status: 200, body: result };
  }

  /** Record the end of a resolved alert on the Abnormal its firing made, if there is one. */
  private async resolve(symptom: Symptom, endsAt: string): Promise<void> {
    const fingerprint = fingerprintOf(symptom, symptom.nodeName!);
    for (let attempt = 0; attempt < 3; attempt++) {
      const [abnormal] = await this.opts.store.findByFingerprint(fingerprint);
      if (!abnormal || abnormal.spec.prometheusAlert?.endsAt === endsAt) return;
      try {
        await this.opts.store.writeSpec(abnormal, { ...abnormal.spec, prometheusAlert: { ...abnormal.spec.prometheusAlert, endsAt } });
        return;
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
      }
    }
    this.opts.log.warn({ reason: symptom.reason, node: symptom.nodeName }, 'could not record a resolved alert after 3 conflicts');
  }
}
