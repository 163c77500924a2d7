// Kernel log lines around the time of the symptom: the records of /dev/kmsg from `beforeSeconds`
// before the symptom was first seen (spec.occurrences.firstSeen, else when the Abnormal was created)
// to `afterSeconds` after it, at most MAX_LINES — the ones nearest the symptom, so an Abnormal looked at
// long after its symptom still shows the lines around it, not the latest ones. A message repeated
// back to back is one line, "(repeated N times)". Read with a descriptor of its own, kept open for the
// runs that follow within seconds (KmsgHistory, agent/node/kmsg.ts), so the kernel-log source's
// position is not touched. Writes the kernelLog evidence.
import os from 'node:os';
import { Reason } from '../agent/api/reasons.js';
import { KmsgHistory, type KmsgRecord } from '../agent/node/kmsg.js';
import { BUILTIN_NAMESPACE, failure, type Processor } from '../agent/processors/contract.js';
import { evidence } from '../agent/processors/evidence.js';

const MAX_LINES = 200;

type Line = { usec: number; message: string; repeats: number };

export function kernelLog(opts: { device?: string; beforeSeconds?: number; afterSeconds?: number } = {}): Processor {
  const device = opts.device ?? '/dev/kmsg';
  const beforeSeconds = opts.beforeSeconds ?? 300;
  const afterSeconds = opts.afterSeconds ?? 60;
  // Shared by this collector's runs: a burst of Abnormals reads the kernel's buffer once, not once each.
  const history = new KmsgHistory(device);
  return {
    kind: 'InformationCollector',
    ref: { namespace: BUILTIN_NAMESPACE, name: 'kernel-log' },
    async run(abnormal) {
      const seen = abnormal.spec.occurrences?.firstSeen ?? abnormal.metadata?.creationTimestamp;
      const symptomAt = seen ? new Date(seen).getTime() : Date.now();
      const bootedAt = Date.now() - os.uptime() * 1000;
      const symptomUsec = (symptomAt - bootedAt) * 1000;
      const fromUsec = symptomUsec - beforeSeconds * 1e6;
      const toUsec = symptomUsec + afterSeconds * 1e6;
      let records: readonly KmsgRecord[];
      try {
        records = await history.read(fromUsec);
      } catch (err) {
        return failure(Reason.KernelLogUnreadable, `cannot read ${device}: ${(err as Error).message}`);
      }
      // Before the symptom, the last MAX_LINES (older ones drop out); after it, the first MAX_LINES.
      const before: Line[] = [];
      const after: Line[] = [];
      for (const { usec, message } of records) {
        if (usec < fromUsec) continue;
        if (usec > toUsec || after.length >= MAX_LINES) break;
        const side = usec < symptomUsec ? before : after;
        const last = side.at(-1) ?? (side === after ? before.at(-1) : undefined);
        if (last?.message === message) last.repeats++;
        else side.push({ usec, message, repeats: 1 });
        if (before.length > MAX_LINES) before.shift();
      }
      const lines = nearest(before, after, MAX_LINES).map(({ usec, message, repeats }) =>
        `[${new Date(bootedAt + usec / 1000).toISOString()}] ${message}${repeats > 1 ? ` (repeated ${repeats} times)` : ''}`);
      return { ok: true, context: evidence({ kernelLog: { from: new Date(fromUsec / 1000 + bootedAt).toISOString(), lines } }) };
    },
  };
}

/** At most `max` lines, in order: the ones nearest the symptom, half from each side where both have enough. */
function nearest(before: Line[], after: Line[], max: number): Line[] {
  const fromAfter = Math.min(after.length, Math.max(Math.ceil(max / 2), max - before.length));
  const fromBefore = Math.min(before.length, max - fromAfter);
  return [...before.slice(before.length - fromBefore), ...after.slice(0, fromAfter)];
}
