// The built-in processors, one file each under collectors/, diagnosers/ and recoverers/.
import { nodeFacts } from '../../collectors/node-facts.js';
import { diskUsage } from '../../diagnosers/disk-usage.js';
import type { Processor } from './contract.js';

export const BUILTINS: readonly Processor[] = [nodeFacts, diskUsage];
