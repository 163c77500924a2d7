// The one processor contract. Built-in, HTTP and script processors are the same thing to the pipeline:
// given an Abnormal, succeed with changes to status.context / message / reason / output (and, for a
// diagnoser or recoverer, the claim that it identified or recovered), or fail with a reason.
//
// On the wire (HTTP, and built-ins served over HTTP) a processor receives the Abnormal as JSON and
// replies 200 with the Abnormal as it would have it. interpretReply() takes from that reply only what
// the contract allows and refuses a reply that rewrites anything else.
import { isDeepStrictEqual } from 'node:util';
import type { Abnormal, AbnormalStatus, ProcessorRef } from '../api/types.generated.js';
import { ValidationError, validateAbnormalStatus } from '../api/validate.js';
import { fitText } from '../api/limits.js';
import { AGENT_CONTEXT_PREFIX, LIMITS } from '../api/crds.js';
import type { ProcessorKind } from '../api/kinds.js';
import { Reason } from '../api/reasons.js';

/** Built-in processors are referred to with this namespace, e.g. {namespace: builtin, name: node-facts}. */
export const BUILTIN_NAMESPACE = 'builtin';
/** Scripts are referred to with this namespace, e.g. {namespace: script, name: 10-check-disk.sh}. */
export const SCRIPT_NAMESPACE = 'script';

export type Outcome =
  | {
      ok: true;
      /** A diagnoser's claim that it identified the fault. */
      identified?: boolean;
      /** A recoverer's claim that it recovered the fault. */
      recovered?: boolean;
      /** Merged into status.context, key by key. */
      context?: Record<string, unknown>;
      message?: string;
      reason?: string;
      output?: string;
    }
  | { ok: false; reason: string; message: string };

export interface Processor {
  readonly kind: ProcessorKind;
  readonly ref: ProcessorRef;
  /** Never throws for a processor's own failure: that is an Outcome with ok false. */
  run(abnormal: Abnormal, signal: AbortSignal): Promise<Outcome>;
}

export const refName = (ref: ProcessorRef) => `${ref.namespace}/${ref.name}`;
export const failure = (reason: string, message: string): Outcome => ({ ok: false, reason, message });

// What the pipeline alone may write; a reply that changes any of these is refused.
const AGENT_OWNED_STATUS = ['phase', 'conditions', 'startTime', 'diagnoser', 'recoverer'] as const;

/**
 * What a reply means under the contract. `sent` is the Abnormal the processor was given; `reply` is its
 * parsed JSON body. Long text is cut to the API's limits (with a note) rather than refused.
 */
export function interpretReply(kind: ProcessorKind, sent: Abnormal, reply: unknown): Outcome {
  if (typeof reply !== 'object' || reply === null || Array.isArray(reply)) {
    return failure(Reason.InvalidReply, `the reply must be a JSON object (the Abnormal), got ${Array.isArray(reply) ? 'an array' : typeof reply}`);
  }
  const r = reply as Partial<Abnormal>;
  if ('spec' in r && !isDeepStrictEqual(r.spec, sent.spec)) return failure(Reason.ReplyRewritesSpec, 'the reply changes spec, which belongs to people and sources');
  if ('metadata' in r && !isDeepStrictEqual(r.metadata, sent.metadata)) return failure(Reason.ReplyRewritesMetadata, 'the reply changes metadata');
  for (const field of ['apiVersion', 'kind'] as const) {
    if (field in r && r[field] !== sent[field]) return failure(Reason.ReplyRewritesMetadata, `the reply changes ${field}`);
  }
  if (r.status !== undefined && (typeof r.status !== 'object' || r.status === null || Array.isArray(r.status))) {
    return failure(Reason.InvalidReply, `the reply's status must be an object, got ${Array.isArray(r.status) ? 'an array' : r.status === null ? 'null' : typeof r.status}`);
  }
  const status = (r.status ?? {}) as AbnormalStatus;
  for (const field of AGENT_OWNED_STATUS) {
    if (field in status && !isDeepStrictEqual(status[field], sent.status?.[field])) {
      return failure(field === 'phase' ? Reason.ReplyRewritesPhase : Reason.ReplyRewritesStatus, `the reply changes status.${field}, which only the agent writes`);
    }
  }
  for (const key of Object.keys(status.context ?? {})) {
    if (key.startsWith(AGENT_CONTEXT_PREFIX) && !isDeepStrictEqual(status.context?.[key], sent.status?.context?.[key])) {
      return failure(Reason.ReplyRewritesStatus, `the reply changes status.context["${key}"], which only the agent writes`);
    }
  }
  const claim = kind === 'Diagnoser' ? 'identifiable' : kind === 'Recoverer' ? 'recoverable' : undefined;
  for (const field of ['identifiable', 'recoverable'] as const) {
    if (field !== claim && field in status && status[field] !== sent.status?.[field]) {
      return failure(Reason.ReplyRewritesStatus, `a ${kind} may not set status.${field}`);
    }
  }
  const fitted: AbnormalStatus = {
    ...status,
    ...(typeof status.message === 'string' ? { message: fitText(status.message, LIMITS.message) } : {}),
    ...(typeof status.reason === 'string' ? { reason: fitText(status.reason, LIMITS.shortText) } : {}),
    ...(typeof status.output === 'string' ? { output: fitText(status.output, LIMITS.output) } : {}),
  };
  try {
    validateAbnormalStatus(fitted);
  } catch (err) {
    if (err instanceof ValidationError) return failure(Reason.InvalidReply, err.problems.join('; '));
    throw err;
  }
  // The reply is the whole Abnormal as the processor would have it: what it says anew is what differs
  // from what it was sent.
  const before = sent.status ?? {};
  const outcome: Outcome = { ok: true };
  if (claim === 'identifiable') outcome.identified = fitted.identifiable === true;
  if (claim === 'recoverable') outcome.recovered = fitted.recoverable === true;
  const changed = Object.entries(fitted.context ?? {}).filter(([key, value]) => !isDeepStrictEqual(value, before.context?.[key]));
  if (changed.length > 0) outcome.context = Object.fromEntries(changed);
  for (const field of ['message', 'reason', 'output'] as const) {
    if (fitted[field] !== undefined && fitted[field] !== before[field]) outcome[field] = fitted[field];
  }
  return outcome;
}

/** The reply a processor served over HTTP sends for an outcome: the Abnormal with its status changed. */
export function renderReply(kind: ProcessorKind, abnormal: Abnormal, outcome: Outcome & { ok: true }): Abnormal {
  const status: AbnormalStatus = { ...abnormal.status };
  if (outcome.context) status.context = { ...status.context, ...outcome.context };
  if (outcome.message !== undefined) status.message = outcome.message;
  if (outcome.reason !== undefined) status.reason = outcome.reason;
  if (outcome.output !== undefined) status.output = outcome.output;
  if (kind === 'Diagnoser') status.identifiable = outcome.identified === true;
  if (kind === 'Recoverer') status.recoverable = outcome.recovered === true;
  return { ...abnormal, status };
}
