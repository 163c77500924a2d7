// The built-in processors, one file each under collectors/, diagnosers/ and recoverers/, with their
// options from the configuration. Part of the wiring: the built-ins import the contract, and this file
// imports the built-ins, so the processor layer never imports them back.
import type { Logger } from 'pino';
import { containerShims } from '../collectors/container-shims.js';
import { goroutineDump, type GoroutineDumpOptions } from '../collectors/goroutine-dump.js';
import { kernelLog } from '../collectors/kernel-log.js';
import { nodeFacts } from '../collectors/node-facts.js';
import { probeCollector, type ProbeOptions } from '../collectors/probe.js';
import { processTree } from '../collectors/process-tree.js';
import { diskUsage } from '../diagnosers/disk-usage.js';
import { shimReaperDeadlock } from '../diagnosers/shim-reaper-deadlock.js';
import { unresponsiveShim } from '../diagnosers/unresponsive-shim.js';
import { signalProcess, type SignalProcessOptions } from '../recoverers/signal-process.js';
import type { Processor } from './processors/contract.js';

export type BuiltinOptions = {
  probes: ProbeOptions;
  shims?: Partial<GoroutineDumpOptions> & { unresponsiveSeconds?: number };
  recovery?: SignalProcessOptions;
  log?: Logger;
};

export function builtinProcessors(opts: BuiltinOptions): Processor[] {
  return [
    containerShims,
    goroutineDump({ containerdLog: 'journald:containerd.service', timeoutSeconds: 5, ...opts.shims, ...(opts.log ? { log: opts.log } : {}) }),
    kernelLog(),
    nodeFacts(),
    probeCollector(opts.probes),
    processTree,
    diskUsage,
    shimReaperDeadlock,
    unresponsiveShim({ thresholdSeconds: opts.shims?.unresponsiveSeconds ?? 10 }),
    signalProcess(opts.recovery),
  ];
}
