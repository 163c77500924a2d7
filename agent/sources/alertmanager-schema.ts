// Alertmanager's webhook payload (version 4), as far as agent/sources/alerts.ts reads it. The source of
// truth for the check `npm run gen` compiles into alertmanager.generated.ts; the agent does not load
// this file (agent/config-schema.ts says why). Fields not named here are let through and not read.
import { z } from 'zod';

const labelMap = z.record(z.string(), z.string());

export const AlertmanagerAlert = z.object({
  status: z.enum(['firing', 'resolved']),
  labels: labelMap,
  annotations: labelMap.default({}),
  startsAt: z.string().optional(),
  endsAt: z.string().optional(),
  generatorURL: z.string().optional(),
  fingerprint: z.string().optional(),
});

export const AlertmanagerPayload = z.object({
  version: z.literal('4'),
  alerts: z.array(AlertmanagerAlert).max(10_000),
});

export type AlertmanagerAlert = z.output<typeof AlertmanagerAlert>;
export type AlertmanagerPayload = z.output<typeof AlertmanagerPayload>;
