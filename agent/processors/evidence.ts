// The evidence built-in processors hand each other in status.context, typed: one key per kind of
// evidence, the shape it holds, who writes it, and the one way to write and read it. A collector writes
// with `evidence({...})`; a diagnoser or recoverer reads with `readEvidence(abnormal, key)`.
//
// Status can be written by anyone who may write an Abnormal's status, not only by this agent, so a read
// checks the shape and a reader treats what it gets as a claim to confirm on the node, never as proof.
import type { Abnormal } from '../api/types.generated.js';
import type { ShimDump } from '../node/goroutines.js';
import type { ProcStat } from '../node/procfs.js';
import { shimsOfSubject, type PodRef, type Shim, type Subject } from '../node/shims.js';

/** A process as found in /proc, with its children (process-tree). */
export type ProcessDetails = ProcStat & { exe?: string; cmdline?: string[]; wchan?: string; children: ProcessDetails[] };

/** What a diagnoser identified and the processes a recoverer may act on (pid plus start time: pids are reused). */
export type Diagnosis = { fault: string; targets: Array<{ pid: number; startTicks: number }>; [detail: string]: unknown };

export type Evidence = {
  /** container-shims: the shims serving the Abnormal's pod, containers or pids. */
  containerShims: Shim[];
  /** goroutine-dump: each shim's answer to SIGUSR1, or how it behaved when it gave none. */
  goroutineDumps: ShimDump[];
  /** process-tree: the processes the Abnormal is about, two levels of children deep. */
  processes: ProcessDetails[];
  /** kernel-log: the kernel's lines from shortly before the symptom until the collector ran. */
  kernelLog: { from: string; lines: string[] };
  /** node-facts: kernel, runtime versions, load, memory, root disk. */
  nodeFacts: Record<string, unknown>;
  /** probe: the result of spec.nodeProbe / spec.podProbe. */
  probe: { healthy: boolean; detail: string; durationMs: number };
  /** disk-usage: how full the filesystem is. */
  diskUsage: { path: string; usedPercent: number; thresholdPercent: number; availableBytes: number };
  /** A diagnoser's finding: what the fault is and which processes it concerns. */
  diagnosis: Diagnosis;
};

export type EvidenceKey = keyof Evidence;

const isObject = (value: unknown) => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The shape a stored value must have to be read as that evidence at all. */
const SHAPES: { [K in EvidenceKey]: (value: unknown) => boolean } = {
  containerShims: Array.isArray,
  goroutineDumps: Array.isArray,
  processes: Array.isArray,
  kernelLog: isObject,
  nodeFacts: isObject,
  probe: isObject,
  diskUsage: isObject,
  diagnosis: (value) => isObject(value) && Array.isArray((value as { targets?: unknown }).targets),
};

/** status.context entries for an Outcome, typed by key. */
export const evidence = (found: Partial<Evidence>): Record<string, unknown> => found;

/** The evidence stored under `key`, or undefined when there is none or it has not that shape. */
export function readEvidence<K extends EvidenceKey>(abnormal: Abnormal, key: K): Evidence[K] | undefined {
  const value = abnormal.status?.context?.[key];
  return SHAPES[key](value) ? (value as Evidence[K]) : undefined;
}

/** What an Abnormal asks about, from its spec (spec.context.pod as the stuck-pod source writes it, spec.context.containerIDs, spec.context.pids). */
export function subjectOf(abnormal: Abnormal): Subject {
  const context = abnormal.spec.context ?? {};
  const pod = context.pod as (PodRef & { containers?: Array<{ containerID?: string }> }) | undefined;
  const containerIDs = [
    ...(Array.isArray(pod?.containers) ? pod!.containers.map((c) => c?.containerID).filter((id): id is string => typeof id === 'string') : []),
    ...(Array.isArray(context.containerIDs) ? (context.containerIDs as unknown[]).filter((id): id is string => typeof id === 'string') : []),
  ];
  const pids = Array.isArray(context.pids) ? (context.pids as unknown[]).filter((p): p is number => Number.isInteger(p) && (p as number) > 0) : [];
  const named = pod && typeof pod === 'object' && (typeof pod.uid === 'string' || containerIDs.length > 0);
  return { pod: named || containerIDs.length > 0 ? { uid: pod?.uid, namespace: pod?.namespace, name: pod?.name, containerIDs } : undefined, pids };
}

/** The shims an Abnormal is about: as the container-shims collector recorded them, else found afresh. */
export async function shimsOf(abnormal: Abnormal): Promise<Shim[]> {
  return readEvidence(abnormal, 'containerShims') ?? shimsOfSubject(subjectOf(abnormal));
}
