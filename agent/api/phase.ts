// The Abnormal's state machine, as pure functions: which phase changes are legal, and how conditions
// are set. The pipeline checks canTransition before every status write, so a bug elsewhere cannot
// move an Abnormal backwards or out of a terminal phase.
import { PHASES, type CONDITION_TYPES } from './crds.js';
import type { Abnormal, AbnormalCondition } from './types.generated.js';

export type Phase = (typeof PHASES)[number];
export type ConditionType = (typeof CONDITION_TYPES)[number];

/** The happy path, in order. Skipping ahead is legal (skipDiagnosis, skipRecovery); going back is not. */
const FORWARD: readonly Phase[] = ['InformationCollecting', 'Diagnosing', 'Recovering', 'Succeeded'];

/**
 * Phases the agent never leaves. Unknown is one: the agent could not tell what happened (say, it
 * restarted while a recoverer was acting), and acting again without knowing is how a self-healing
 * system hurts a node, so a person decides.
 */
const TERMINAL: ReadonlySet<Phase> = new Set(['Succeeded', 'Failed', 'Unknown']);

/** No phase yet means not yet accepted by the agent. */
export function isTerminal(phase: Phase | undefined): boolean {
  return phase !== undefined && TERMINAL.has(phase);
}

/** When an Abnormal reached its terminal phase (ms): its latest condition change, else its creation; NaN when neither is known. */
export function endedAt(abnormal: Abnormal): number {
  const times = (abnormal.status?.conditions ?? []).map((c) => Date.parse(c.lastTransitionTime ?? '')).filter(Number.isFinite);
  return times.length > 0 ? Math.max(...times) : Date.parse(String(abnormal.metadata?.creationTimestamp ?? ''));
}

/**
 * Whether `from` may become `to`. Legal: forward along InformationCollecting → Diagnosing →
 * Recovering → Succeeded (starting from no phase, steps may be skipped), and from any non-terminal
 * phase (including none) to Failed or Unknown. Staying in the same phase is not a transition.
 */
export function canTransition(from: Phase | undefined, to: Phase): boolean {
  if (isTerminal(from) || from === to) return false;
  if (to === 'Failed' || to === 'Unknown') return true;
  const toIndex = FORWARD.indexOf(to);
  const fromIndex = from === undefined ? -1 : FORWARD.indexOf(from);
  return toIndex > fromIndex;
}

export type ConditionUpdate = {
  type: ConditionType;
  status: AbnormalCondition['status'];
  reason?: string;
  message?: string;
};

/**
 * A copy of `conditions` with `update` applied. lastTransitionTime moves to `now` only when the
 * condition is new or its status changes; a new reason or message alone keeps the old time.
 */
export function setCondition(
  conditions: readonly AbnormalCondition[] | undefined,
  update: ConditionUpdate,
  now: Date,
): AbnormalCondition[] {
  const list = conditions ?? [];
  const existing = list.find((c) => c.type === update.type);
  const lastTransitionTime =
    existing && existing.status === update.status && existing.lastTransitionTime
      ? existing.lastTransitionTime
      : toRFC3339(now);
  const next: AbnormalCondition = { ...update, lastTransitionTime };
  return existing ? list.map((c) => (c === existing ? next : c)) : [...list, next];
}

/** Kubernetes times have whole seconds (metav1.Time); keep ours the same so round-trips compare equal. */
export function toRFC3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
