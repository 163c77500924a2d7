// The built-in processors, one file each under collectors/, diagnosers/ and recoverers/.
import { nodeFacts } from '../../collectors/node-facts.js';
import { probeCollector } from '../../collectors/probe.js';
import { diskUsage } from '../../diagnosers/disk-usage.js';
import type { Processor } from './contract.js';

export function builtinProcessors(options: { allowExecProbes: boolean }): Processor[] {
  return [nodeFacts, probeCollector({ allowExec: options.allowExecProbes }), diskUsage];
}
