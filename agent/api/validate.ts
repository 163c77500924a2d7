// Runtime validation of objects that arrive from outside the API — files, HTTP replies, script output —
// against the same schemas the apiserver enforces (agent/api/crds.ts), with messages that name the field.
// The agent's configuration and Alertmanager's payload are checked the same way (validator()).
//
// One deliberate difference from the apiserver: it prunes unknown fields silently, this rejects them,
// so that a typo such as `skipDiagnosys` in a hand-written file is an error rather than ignored.
// The checks themselves are compiled from the schemas by `npm run gen` (validators.generated.ts).
import type { ErrorObject } from 'ajv';
import type { Schema } from './crds.js';
import type { Abnormal, AbnormalStatus, Processor } from './types.generated.js';
import { checkAbnormal, checkProcessor, checkStatus } from './validators.generated.js';

export class ValidationError extends Error {
  constructor(
    readonly what: string,
    readonly problems: string[],
  ) {
    super(`invalid ${what}: ${problems.join('; ')}`);
    this.name = 'ValidationError';
  }
}

/** `/spec/assignedDiagnosers/0/name` under root `abnormal` → `spec.assignedDiagnosers[0].name`. */
function fieldPath(root: string, instancePath: string, child?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (child !== undefined) parts.push(child);
  let out = root;
  for (const part of parts) out += /^\d+$/.test(part) ? `[${part}]` : out ? `.${part}` : part;
  return out || '(object)';
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** The branches of a `oneOf` that only say which field is required, e.g. exec / httpGet / tcpSocket. */
function exclusiveFields(error: ErrorObject): string[] | undefined {
  const branches = error.parentSchema?.oneOf as Schema[] | undefined;
  const fields = branches?.map((b) => b.required?.[0]).filter((f): f is string => typeof f === 'string');
  return fields && fields.length === branches?.length ? fields : undefined;
}

function formatErrors(errors: ErrorObject[], root: string): string[] {
  // Errors from inside oneOf / anyOf branches only explain why a branch failed; the combinator's own
  // error says what matters, so report that one alone.
  const combinators = errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf');
  const insideCombinator = (e: ErrorObject) =>
    combinators.some((c) => c !== e && e.schemaPath.startsWith(c.schemaPath + '/'));
  const messages = errors.filter((e) => !insideCombinator(e)).map((e) => formatError(e, root));
  return [...new Set(messages)].sort(); // sorted by field, so the same input always reads the same
}

function formatError(e: ErrorObject, root: string): string {
  const at = fieldPath(root, e.instancePath);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `${fieldPath(root, e.instancePath, String(p.missingProperty))}: is required`;
    case 'additionalProperties':
      return `${fieldPath(root, e.instancePath, String(p.additionalProperty))}: unknown field`;
    case 'enum':
      return `${at}: must be one of ${(p.allowedValues as unknown[]).join(', ')} (got ${describe(e.data)})`;
    case 'type':
      return `${at}: must be ${p.type === 'integer' || p.type === 'object' || p.type === 'array' ? 'an' : 'a'} ${p.type} (got ${describe(e.data)})`;
    case 'maxLength':
      return `${at}: must be at most ${p.limit} characters (got ${(e.data as string).length})`;
    case 'minLength':
      return `${at}: must not be empty`;
    case 'maxItems':
      return `${at}: must have at most ${p.limit} items`;
    case 'minItems':
      return `${at}: must have at least ${p.limit} item${p.limit === 1 ? '' : 's'}`;
    case 'maxProperties':
      return `${at}: must have at most ${p.limit} keys`;
    case 'minimum':
    case 'maximum':
      return `${at}: must be ${e.keyword === 'minimum' ? '>=' : '<='} ${p.limit} (got ${describe(e.data)})`;
    case 'pattern': // x-message: what the schema says a mismatch means
      return `${at}: ${(e.parentSchema?.['x-message'] as string | undefined) ?? `must match ${p.pattern}`} (got ${describe(e.data)})`;
    case 'format':
      return `${at}: must be a ${p.format === 'date-time' ? 'RFC 3339 date-time' : `${p.format} string`} (got ${describe(e.data)})`;
    case 'oneOf': {
      const fields = exclusiveFields(e);
      return fields ? `${at}: must set exactly one of ${fields.join(', ')}` : `${at}: ${e.message}`;
    }
    case 'anyOf':
      return e.parentSchema?.['x-kubernetes-int-or-string']
        ? `${at}: must be a port number or name (got ${describe(e.data)})`
        : `${at}: ${e.message}`;
    default:
      return `${at}: ${e.message ?? e.keyword}`;
  }
}

/** A compiled check: true when the value is valid, else its errors left on the function (ajv's way). */
type Check = ((value: unknown) => boolean) & { errors?: ErrorObject[] | null };

/** A check as a function that returns its value typed, or throws ValidationError naming every problem. */
export function validator<T>(check: Check, what: string, root: string) {
  return (value: unknown): T => {
    if (check(value)) return value as T;
    throw new ValidationError(what, formatErrors(check.errors ?? [], root));
  };
}

/** A whole Abnormal (a file in the state directory, `nodemedic run`'s input). Throws ValidationError. */
export const validateAbnormal = validator<Abnormal>(checkAbnormal, 'Abnormal', '');
/** An Abnormal's status alone (what a processor hands back). Throws ValidationError. */
export const validateAbnormalStatus = validator<AbnormalStatus>(checkStatus, 'Abnormal status', 'status');
/** An InformationCollector, Diagnoser or Recoverer object. Throws ValidationError. */
export const validateProcessor = validator<Processor>(checkProcessor, 'processor', '');
