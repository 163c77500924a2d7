// The built-in processors, one file each under collectors/, diagnosers/ and recoverers/.
import { nodeFacts } from '../../collectors/node-facts.js';
import { probeCollector, type ProbeOptions } from '../../collectors/probe.js';
import { diskUsage } from '../../diagnosers/disk-usage.js';
import type { Processor } from './contract.js';

export function builtinProcessors(probes: ProbeOptions): Processor[] {
  return [nodeFacts, probeCollector(probes), diskUsage];
}
