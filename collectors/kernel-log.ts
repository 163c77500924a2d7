// Kernel log lines around the time of the symptom: the records of /dev/kmsg from `beforeSeconds`
// before the symptom was first seen (spec.occurrences.firstSeen, else when the Abnormal was created)
// to when this runs, at most the last MAX_LINES. Read with a descriptor of its own, so the kernel-log
// source's position is not touched. Writes status.context.kernelLog.
import { closeSync, constants, openSync, readSync } from 'node:fs';
import os from 'node:os';
import { BUILTIN_NAMESPACE, failure, type Processor } from '../agent/processors/contract.js';
import { parseKmsgRecord } from '../agent/sources/kmsg.js';

const MAX_LINES = 200;

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
      let fd: number;
      try {
        fd = openSync(device, constants.O_RDONLY | constants.O_NONBLOCK);
      } catch (err) {
        return failure('KernelLogUnreadable', `cannot open ${device}: ${(err as Error).message}`);
      }
      const lines: string[] = [];
      const buffer = Buffer.alloc(16 * 1024);
      try {
        for (;;) {
          let n: number;
          try {
            n = readSync(fd, buffer, 0, buffer.length, null);
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (code === 'EPIPE') continue; // overwritten while reading: go on with the next
            if (code === 'EAGAIN') break; // the end
            throw err;
          }
          const record = parseKmsgRecord(buffer.toString('utf8', 0, n));
          if (!record || !(record.usec >= fromUsec)) continue;
          lines.push(`[${new Date(bootedAt + record.usec / 1000).toISOString()}] ${record.message}`);
          if (lines.length > MAX_LINES) lines.shift();
        }
      } finally {
        closeSync(fd);
      }
      return { ok: true, context: { kernelLog: { from: new Date(symptomAt - beforeSeconds * 1000).toISOString(), lines } } };
    },
  };
}
