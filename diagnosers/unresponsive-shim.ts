// Unresponsive shim: a shim of the Abnormal's pod that gave no goroutine dump within the collector's
// timeout (status.context.goroutineDumps) and was stopped (T, t) or in uninterruptible sleep (D) the
// whole time, for at least `thresholdSeconds` (watched on until then) — and still is now. A shim that is merely slow, or
// running, or that answered, is not identified.
import { setTimeout as sleep } from 'node:timers/promises';
import { Reason } from '../agent/api/reasons.js';
import { UNRESPONSIVE_STATES, sameProcess } from '../agent/node/procfs.js';
import { BUILTIN_NAMESPACE, type Processor } from '../agent/processors/contract.js';
import { evidence, readEvidence } from '../agent/processors/evidence.js';

export function unresponsiveShim(opts: { thresholdSeconds: number }): Processor {
  return {
    kind: 'Diagnoser',
    ref: { namespace: BUILTIN_NAMESPACE, name: 'unresponsive-shim' },
    async run(abnormal, signal) {
      const entries = readEvidence(abnormal, 'goroutineDumps') ?? [];
      if (entries.length === 0) return { ok: true, identified: false, message: 'no shim was asked for a goroutine dump' };
      const notes: string[] = [];
      const targets: Array<{ pid: number; startTicks: number; state: string; seconds: number }> = [];
      for (const entry of entries) {
        if (entry.dump !== undefined) {
          notes.push(`shim pid ${entry.pid} answered with a goroutine dump`);
          continue;
        }
        if (entry.noDumpWithinSeconds === undefined) continue; // gone, or not signalled
        const states = entry.states ?? [];
        const stuck = states.length === 1 && UNRESPONSIVE_STATES.has(states[0]!.state);
        if (!stuck) {
          notes.push(`shim pid ${entry.pid} gave no dump but was seen ${states.map((s) => s.state).join(' → ') || 'in no state'}, not stopped or in uninterruptible sleep throughout`);
          continue;
        }
        // Still the same process, still in that state: the evidence holds now, not only when collected.
        const now = await sameProcess(entry.pid, entry.startTicks);
        if (!now || !UNRESPONSIVE_STATES.has(now.state)) {
          notes.push(`shim pid ${entry.pid} is no longer ${states[0]!.state}`);
          continue;
        }
        // Not yet stuck for the threshold: keep watching until it is, or until it moves.
        const since = new Date(states[0]!.from).getTime();
        let state: string | undefined = now.state;
        while (state && Date.now() - since < opts.thresholdSeconds * 1000 && !signal.aborted) {
          await sleep(500);
          const again = await sameProcess(entry.pid, entry.startTicks);
          state = again && UNRESPONSIVE_STATES.has(again.state) ? again.state : undefined;
        }
        const seconds = Math.round((Date.now() - since) / 1000);
        if (!state || seconds < opts.thresholdSeconds) {
          notes.push(`shim pid ${entry.pid} left state ${now.state} after ${seconds} s, under the ${opts.thresholdSeconds} s threshold`);
          continue;
        }
        targets.push({ pid: entry.pid, startTicks: entry.startTicks, state, seconds });
      }
      if (targets.length === 0) return { ok: true, identified: false, message: notes.join('; ') || 'no unresponsive shim' };
      const what = targets.map((t) => `shim pid ${t.pid} gave no goroutine dump and has been ${t.state === 'D' ? 'in uninterruptible sleep (D)' : `stopped (${t.state})`} for ${t.seconds} s`).join('; ');
      return {
        ok: true, identified: true, reason: Reason.ShimUnresponsive, message: what,
        context: evidence({ diagnosis: { fault: Reason.ShimUnresponsive, targets: targets.map(({ pid, startTicks }) => ({ pid, startTicks })) } }),
      };
    },
  };
}
