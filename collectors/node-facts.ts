// Node facts: kernel, uptime, load, memory and CPUs of the node the agent runs on — the first thing
// anyone asks when reading an Abnormal. Read from the kernel through Node's os module; never fails.
import os from 'node:os';
import { BUILTIN_NAMESPACE, type Processor } from '../agent/processors/contract.js';

export const nodeFacts: Processor = {
  kind: 'InformationCollector',
  ref: { namespace: BUILTIN_NAMESPACE, name: 'node-facts' },
  async run() {
    const [load1, load5, load15] = os.loadavg();
    return {
      ok: true,
      context: {
        nodeFacts: {
          hostname: os.hostname(),
          kernel: `${os.type()} ${os.release()}`,
          uptimeSeconds: Math.round(os.uptime()),
          load: { load1, load5, load15 },
          cpus: os.cpus().length,
          memory: { totalBytes: os.totalmem(), freeBytes: os.freemem() },
          collectedAt: new Date().toISOString(),
        },
      },
    };
  },
};
