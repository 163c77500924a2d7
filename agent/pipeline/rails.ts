// The recovery rails: checked by the pipeline before any recoverer acts, whoever wrote it.
//   - cooldown per fingerprint: a fault recovered on this node less than cooldownSeconds ago that is
//     back already is not repaired again blind — the Abnormal fails, for a person (NPD's health checker
//     lesson: never kill a service again before it has been up a while);
//   - rate limit per node: at most maxPerHour recoveries in any hour; past it the Abnormal waits in
//     Recovering until the oldest leaves the window (a storm pauses instead of acting everywhere);
//   - cluster-wide budget (kube store): at most maxNodesAtOnce nodes recovering at the same moment,
//     held in a Lease in the agent's namespace with a TTL per holder, so a node that vanishes
//     mid-recovery frees its slot (kured's top bug was a lock held by a vanished node).
// The history behind the first two is kept in the state directory, so a restart forgets nothing.
// Admissions are decided one at a time: checking the limits and recording the recovery is one step, so
// two Abnormals admitted at once cannot both take the last place in the hour or the cooldown.
import path from 'node:path';
import type { Logger } from 'pino';
import type { Abnormal } from '../api/types.generated.js';
import { FINGERPRINT_LABEL } from '../api/crds.js';
import { keyOf } from '../api/kinds.js';
import { Reason } from '../api/reasons.js';
import { readState, writeState } from '../lib/files.js';

/**
 * ok: the recoverer may act; call release() when it is done — release(false) if in the end it did not
 * act (the diagnosis was not confirmed), so the recovery is not counted against the limits.
 */
export type Admission = { ok: true; release(acted?: boolean): Promise<void> } | { ok: false; wait: boolean; reason: string; message: string };

/** Slots shared by the nodes of a cluster; `take` resolves false when none is free. */
export interface RecoveryBudget {
  take(): Promise<boolean>;
  give(): Promise<void>;
}

export type RecoveryRailsOptions = {
  stateDir: string;
  maxPerHour: number;
  cooldownSeconds: number;
  budget?: RecoveryBudget;
  log: Logger;
  now?: () => number;
};

type HistoryEntry = { at: number; fingerprint: string; abnormal: string };

const HOUR_MS = 3_600_000;

export class RecoveryRails {
  private history?: HistoryEntry[];
  private readonly now: () => number;
  /** The admission being decided; the next waits for it. */
  private deciding: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: RecoveryRailsOptions) {
    this.now = opts.now ?? Date.now;
  }

  private get file() {
    return path.join(this.opts.stateDir, 'recovery-history.json');
  }

  private async load(): Promise<HistoryEntry[]> {
    this.history ??= (await readState<HistoryEntry[]>(this.file)) ?? [];
    const keep = Math.max(HOUR_MS, this.opts.cooldownSeconds * 1000);
    this.history = this.history.filter((e) => this.now() - e.at < keep);
    return this.history;
  }

  /** May a recoverer act on this Abnormal now? On ok, call release() when it is done. */
  admit(abnormal: Abnormal): Promise<Admission> {
    const turn = this.deciding.then(() => this.decide(abnormal));
    this.deciding = turn.catch(() => {});
    return turn;
  }

  /** Take back a recorded recovery that never acted, in turn with the decisions. */
  private forget(entry: HistoryEntry): Promise<void> {
    const turn = this.deciding.then(async () => {
      const history = await this.load();
      const at = history.indexOf(entry);
      if (at < 0) return;
      history.splice(at, 1);
      await writeState(this.file, history);
    });
    this.deciding = turn.catch(() => {});
    return turn;
  }

  private async decide(abnormal: Abnormal): Promise<Admission> {
    const history = await this.load();
    const fingerprint = fingerprintOf(abnormal);
    const key = keyOf(abnormal);
    // The same Abnormal trying its next recoverer is the same recovery: counted once, not cooled down.
    const again = history.some((e) => e.abnormal === key);
    const recent = history.find((e) => e.fingerprint === fingerprint && e.abnormal !== key && this.now() - e.at < this.opts.cooldownSeconds * 1000);
    if (recent && !again) {
      return {
        ok: false, wait: false, reason: Reason.RecoveryCooldown,
        message: `the same fault (${fingerprint}) was recovered on this node ${Math.round((this.now() - recent.at) / 1000)} s ago (${recent.abnormal}); ` +
          `within the ${this.opts.cooldownSeconds} s cooldown it is not repaired again without a person`,
      };
    }
    const lastHour = history.filter((e) => this.now() - e.at < HOUR_MS);
    if (!again && lastHour.length >= this.opts.maxPerHour) {
      const freesIn = Math.ceil((lastHour[0]!.at + HOUR_MS - this.now()) / 1000);
      return { ok: false, wait: true, reason: Reason.RecoveryRateLimited, message: `${lastHour.length} recoveries on this node in the last hour (at most ${this.opts.maxPerHour}); waiting about ${freesIn} s` };
    }
    if (this.opts.budget) {
      // A budget that cannot be read is not a free one: nothing acts until it can be.
      const taken = await this.opts.budget.take().catch((err: Error) => err);
      if (taken instanceof Error) return { ok: false, wait: true, reason: Reason.RecoveryBudgetUnavailable, message: `the cluster-wide recovery budget cannot be checked: ${taken.message}` };
      if (!taken) return { ok: false, wait: true, reason: Reason.RecoveryBudgetExhausted, message: 'the cluster-wide number of nodes recovering at once is reached; waiting for a slot' };
    }
    const entry = again ? undefined : { at: this.now(), fingerprint, abnormal: key };
    if (entry) {
      history.push(entry);
      await writeState(this.file, history);
    }
    let released = false;
    return {
      ok: true,
      release: async (acted = true) => {
        if (released) return;
        released = true;
        if (!acted && entry) await this.forget(entry);
        await this.opts.budget?.give().catch((err) => this.opts.log.warn({ err: (err as Error).message }, 'could not give back the recovery budget slot; its TTL will'));
      },
    };
  }
}

/** The symptom's fingerprint (sources label it); a hand-made Abnormal is its own. */
const fingerprintOf = (a: Abnormal) => a.metadata?.labels?.[FINGERPRINT_LABEL] ?? keyOf(a);
