// Keeping an Abnormal writable: evidence that would push it past the API's limits is cut, with a note
// saying so, so the apiserver never rejects a status write for size (etcd refuses requests over
// 1.5 MiB; the schema caps each text field; status.context has no schema cap, so it gets a budget here).
import type { AbnormalStatus } from './types.generated.js';
import { AGENT_CONTEXT_PREFIX, LIMITS } from './crds.js';

/** status.context as serialized JSON may use at most this much; the rest of the object fits beside it. */
export const CONTEXT_BUDGET = 512 * 1024;

export function fitText(text: string, max: number): string {
  if (text.length <= max) return text;
  const note = `\n… [truncated by nodemedic: kept ${max} of ${text.length} characters]`;
  return text.slice(0, Math.max(0, max - note.length)) + note;
}

/**
 * status.context within CONTEXT_BUDGET: while it is over, the largest entry is replaced by a note and
 * the start of its JSON, so what each processor found stays visible in part. The agent's own records
 * (keys under nodemedic.io/, such as the recovery log) are small and never cut.
 */
export function fitContext(context: Record<string, unknown>, budget = CONTEXT_BUDGET): Record<string, unknown> {
  const fitted = { ...context };
  const size = () => Buffer.byteLength(JSON.stringify(fitted));
  let total = size();
  while (total > budget) {
    const sizes = Object.entries(fitted)
      .filter(([key]) => !key.startsWith(AGENT_CONTEXT_PREFIX))
      .map(([key, value]) => [key, Buffer.byteLength(JSON.stringify(value) ?? '')] as const);
    if (sizes.length === 0) break;
    const [key, bytes] = sizes.reduce((a, b) => (b[1] > a[1] ? b : a));
    const over = total - budget;
    const keep = Math.max(0, bytes - over - 512); // 512: room for the note itself
    fitted[key] = {
      truncated: `nodemedic kept ${keep} of ${bytes} bytes of this entry to stay within the object size limit`,
      start: JSON.stringify(fitted[key]).slice(0, keep),
    };
    const next = size();
    if (next >= total) break; // nothing left to cut
    total = next;
  }
  return fitted;
}

/** The whole status within the API's limits. */
export function fitStatus(status: AbnormalStatus): AbnormalStatus {
  const out: AbnormalStatus = { ...status };
  if (out.message !== undefined) out.message = fitText(out.message, LIMITS.message);
  if (out.reason !== undefined) out.reason = fitText(out.reason, LIMITS.shortText);
  if (out.output) out.output = fitText(out.output, LIMITS.output);
  else delete out.output; // nothing printed: no field (written as "", it reached the apiserver as null and was refused)
  if (out.context) out.context = fitContext(out.context);
  if (out.conditions) {
    out.conditions = out.conditions.map((c) => ({
      ...c,
      ...(c.message !== undefined ? { message: fitText(c.message, LIMITS.message) } : {}),
      ...(c.reason !== undefined ? { reason: fitText(c.reason, LIMITS.shortText) } : {}),
    }));
  }
  return out;
}
