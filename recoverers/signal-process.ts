// Signal a process (SIGKILL by default) — the repair for a hung container shim: once its shim is
// gone, containerd and the kubelet finish tearing the pod down. The rails, all checked before any
// signal is sent (one refusal and nothing is signalled):
//   - only the pids the diagnosis named (status.context.diagnosis.targets) — a diagnosis the pipeline
//     has just confirmed by running its diagnoser again on fresh evidence — each still the process that
//     was diagnosed (same start time: pids are reused);
//   - only a proven shim: its executable is the very file (device and inode) the node's container
//     runtime starts as a shim — a copy or a look-alike named like one is refused — and the runtime
//     reports the sandbox or container it serves (CRI); a runtime that cannot be asked is a refusal;
//   - only executables on the allow-list (the container shims by default);
//   - never pid 1, never the agent itself or a process it descends from;
//   - the diagnosis still holds: a shim diagnosed unresponsive must still be stopped or in D.
// In dry-run it says what it would do and does nothing. After acting it confirms the symptom is gone:
// the processes have exited and the Abnormal's pod (spec.context.pod) has finished terminating;
// otherwise it reports, not recovered, what is still wrong.
import { setTimeout as sleep } from 'node:timers/promises';
import { Reason } from '../agent/api/reasons.js';
import { UNRESPONSIVE_STATES, readStat, sameProcess } from '../agent/node/procfs.js';
import { SHIM_EXECUTABLES, executableName, provenShim, runtimeShimBinaries } from '../agent/node/shims.js';
import { BUILTIN_NAMESPACE, failure, type Processor } from '../agent/processors/contract.js';
import { readEvidence, subjectOf } from '../agent/processors/evidence.js';

export type SignalProcessOptions = {
  signal?: NodeJS.Signals;
  allowedExecutables?: readonly string[];
  dryRun?: boolean;
  /** How long to wait for the processes to exit and the pod to go. */
  confirmSeconds?: number;
  /** Whether the pod is gone (true), still there (false), or cannot be told (undefined: no cluster). */
  podGone?: (pod: { namespace: string; name: string; uid?: string }) => Promise<boolean | undefined>;
  /** The node's container runtime, asked which sandboxes and containers it runs (CRI). */
  runtime?: { knownIds(signal?: AbortSignal): Promise<Set<string>> };
};

type Target = { pid: number; startTicks: number };

/** The agent and every process it descends from: signalling any of them would take the agent down. */
async function ownLineage(): Promise<Set<number>> {
  const lineage = new Set<number>();
  for (let pid = process.pid; pid > 0 && !lineage.has(pid); ) {
    lineage.add(pid);
    pid = (await readStat(pid))?.ppid ?? 0;
  }
  return lineage;
}

export function signalProcess(opts: SignalProcessOptions = {}): Processor {
  const signal = opts.signal ?? 'SIGKILL';
  const allowed = opts.allowedExecutables ?? SHIM_EXECUTABLES;
  const confirmMs = (opts.confirmSeconds ?? 60) * 1000;
  return {
    kind: 'Recoverer',
    ref: { namespace: BUILTIN_NAMESPACE, name: 'signal-process' },
    async run(abnormal, abort) {
      const diagnosis = readEvidence(abnormal, 'diagnosis');
      const targets = (diagnosis?.targets ?? []).filter((t) => Number.isInteger(t?.pid));
      if (targets.length === 0) return failure(Reason.NoTargets, 'the diagnosis names no process to signal (status.context.diagnosis.targets)');

      const lineage = await ownLineage();
      const binaries = await runtimeShimBinaries();
      let runtimeIds: Set<string> | Error | undefined;
      const refusals: string[] = [];
      const live: Array<Target & { exe: string }> = [];
      for (const target of targets) {
        if (target.pid <= 1) refusals.push(`pid ${target.pid} is never signalled`);
        else if (lineage.has(target.pid)) refusals.push(`pid ${target.pid} is the agent itself or one of its parents`);
        if (refusals.length > 0) continue;
        const stat = await readStat(target.pid);
        if (!stat) continue; // already gone: nothing to signal, the symptom is still checked below
        if (stat.startTicks !== target.startTicks) {
          refusals.push(`pid ${target.pid} is no longer the process that was diagnosed (it started at another time: the pid was reused)`);
          continue;
        }
        const exe = (await executableName(target.pid)) ?? '(unknown)';
        if (!allowed.includes(exe)) {
          refusals.push(`pid ${target.pid} runs ${exe}, which is not on the allow-list (${allowed.join(', ')})`);
          continue;
        }
        const proven = await provenShim(target.pid, target.startTicks, binaries);
        if ('refused' in proven) {
          refusals.push(proven.refused);
          continue;
        }
        runtimeIds ??= opts.runtime ? await opts.runtime.knownIds(abort).catch((err: Error) => err) : new Error('no container runtime is configured');
        if (runtimeIds instanceof Error) refusals.push(`the container runtime cannot be asked whether pid ${target.pid} is its shim: ${runtimeIds.message}`);
        else if (!proven.shim.id || !runtimeIds.has(proven.shim.id)) refusals.push(`pid ${target.pid} serves ${proven.shim.id ?? 'no id'}, which the container runtime does not report`);
        else if (diagnosis?.fault === Reason.ShimUnresponsive && !UNRESPONSIVE_STATES.has(stat.state)) {
          refusals.push(`pid ${target.pid} is in state ${stat.state} now: the diagnosis (stopped or in uninterruptible sleep) no longer holds`);
        } else live.push({ ...target, exe });
      }
      if (refusals.length > 0) return failure(Reason.Refused, `nothing was signalled: ${refusals.join('; ')}`);

      const plan = live.map((t) => `${signal} to pid ${t.pid} (${t.exe})`).join(', ');
      if (opts.dryRun) return { ok: true, recovered: false, reason: Reason.DryRun, message: `dry run: would send ${plan || 'nothing (the processes are gone)'}` };
      for (const target of live) {
        try {
          process.kill(target.pid, signal);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ESRCH') return failure(Reason.SignalFailed, `could not send ${signal} to pid ${target.pid}: ${(err as Error).message}`);
        }
      }
      const acted = Date.now();

      // Confirm: the processes exit, then the pod finishes terminating.
      const deadline = acted + confirmMs;
      const stillThere = async () => (await Promise.all(live.map(async (t) => ((await sameProcess(t.pid, t.startTicks)) ? t.pid : undefined)))).filter((p) => p !== undefined);
      let remaining = await stillThere();
      while (remaining.length > 0 && Date.now() < deadline && !abort.aborted) {
        await sleep(200);
        remaining = await stillThere();
      }
      const did = live.length > 0 ? `sent ${plan}` : 'the processes had already exited';
      if (remaining.length > 0) return { ok: true, recovered: false, reason: Reason.ProcessStillRunning, message: `${did}, but pid ${remaining.join(', ')} still runs after ${confirmMs / 1000} s` };
      const pod = subjectOf(abnormal).pod;
      if (!pod?.namespace || !pod.name || !opts.podGone) {
        return { ok: true, recovered: true, reason: Reason.Signalled, message: `${did}; ${live.length > 0 ? 'they exited' : ''}${pod ? ' (whether the pod is gone cannot be checked without a cluster)' : ''}` };
      }
      const named = { namespace: pod.namespace, name: pod.name, uid: pod.uid };
      let gone = await opts.podGone(named).catch(() => false);
      while (gone !== true && Date.now() < deadline && !abort.aborted) {
        await sleep(500);
        gone = await opts.podGone(named).catch(() => false);
      }
      const seconds = ((Date.now() - acted) / 1000).toFixed(1);
      if (gone !== true) return { ok: true, recovered: false, reason: Reason.PodStillTerminating, message: `${did}; they exited, but pod ${pod.namespace}/${pod.name} is still there ${seconds} s later` };
      return { ok: true, recovered: true, reason: Reason.PodTerminated, message: `${did}; they exited and pod ${pod.namespace}/${pod.name} finished terminating ${seconds} s later` };
    },
  };
}
