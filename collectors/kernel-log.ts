// Kernel log lines around the time of the symptom: the records of /dev/kmsg from `beforeSeconds`
// before the symptom was first seen (spec.occurrences.firstSeen, else when the Abnormal was created)
// to when this runs, at most the last MAX_LINES. Read with a descriptor of its own (agent/node/kmsg.ts),
// so the kernel-log source's position is not touched. Writes the kernelLog evidence.
import os from 'node:os';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Reason } from '../agent/api/reasons.js';
import { KmsgDevice } from '../agent/node/kmsg.js';
import { BUILTIN_NAMESPACE, failure, type Processor } from '../agent/processors/contract.js';
import { evidence } from '../agent/processors/evidence.js';

const MAX_LINES = 200;
/** Records read at most: the kernel's buffer holds far fewer, unless it is written as fast as it is read. */
const MAX_RECORDS = 100_000;
/** Records read in one turn of the event loop: a few milliseconds, so that a full buffer read for each of many Abnormals at once never holds the agent up. */
const RECORDS_PER_TURN = 1000;

export function kernelLog(opts: { device?: string; beforeSeconds?: number } = {}): Processor {
  const device = opts.device ?? '/dev/kmsg';
  const beforeSeconds = opts.beforeSeconds ?? 300;
  return {
    kind: 'InformationCollector',
    ref: { namespace: BUILTIN_NAMESPACE, name: 'kernel-log' },
    async run(abnormal) {
      const seen = abnormal.spec.occurrences?.firstSeen ?? abnormal.metadata?.creationTimestamp;
      const symptomAt = seen ? new Date(seen).getTime() : Date.now();
      const bootedAt = Date.now() - os.uptime() * 1000;
      const fromUsec = (symptomAt - beforeSeconds * 1000 - bootedAt) * 1000;
      let kmsg: KmsgDevice;
      try {
        kmsg = new KmsgDevice(device);
      } catch (err) {
        return failure(Reason.KernelLogUnreadable, `cannot open ${device}: ${(err as Error).message}`);
      }
      const lines: string[] = [];
      try {
        for (let read = 0; read < MAX_RECORDS; read += RECORDS_PER_TURN) {
          const got = kmsg.readAvailable((record) => {
            lines.push(`[${new Date(bootedAt + record.usec / 1000).toISOString()}] ${record.message}`);
            if (lines.length > MAX_LINES) lines.shift();
          }, RECORDS_PER_TURN, fromUsec);
          if (got < RECORDS_PER_TURN) break;
          await nextTurn();
        }
      } finally {
        kmsg.close();
      }
      return { ok: true, context: evidence({ kernelLog: { from: new Date(symptomAt - beforeSeconds * 1000).toISOString(), lines } }) };
    },
  };
}
