// The log readers, registered by name as node-problem-detector registers its log watchers: a rule
// set's `plugin` names the reader that feeds it lines. Adding a reader is one entry here (and its
// follower under agent/node).
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { FileReader } from '../node/file-reader.js';
import { JournaldReader } from '../node/journald.js';
import { KmsgDevice, KmsgReader } from '../node/kmsg.js';
import type { LineReader, PositionSync } from '../node/line-reader.js';
import type { RuleSet, RuleSetSpec } from './rules.js';

/** `sync`: how every reader keeps its position in step with the sink's symptom journal. */
export type ReaderContext = { config: Config; log: Logger; sync?: PositionSync };

/**
 * Makes the reader for the rule sets that read one log (`set` stands for them all, with the longest of
 * their lookbacks); undefined (after saying why in the log) when it cannot read here.
 */
type ReaderFactory = (set: RuleSet, context: ReaderContext) => Promise<LineReader | undefined>;

const readable = (file: string) => access(file, constants.R_OK).then(() => true, () => false);

/**
 * Why the kernel log device cannot be opened, or undefined if it can. Only opening it tells: with
 * kernel.dmesg_restrict=1 a reader without CAP_SYSLOG is refused (EPERM) though the mode says readable.
 */
function cannotOpen(device: string): string | undefined {
  try {
    new KmsgDevice(device).close();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export const READERS: Record<RuleSetSpec['plugin'], ReaderFactory> = {
  /** The kernel log device; where it cannot be opened, the kernel log file (sources.kernelLogFallback). */
  async kmsg(set, { config, log, sync }) {
    const device = set.logPath || '/dev/kmsg';
    const why = cannotOpen(device);
    if (!why) return new KmsgReader({ device, stateDir: config.stateDir, log, sync, lookbackMs: set.lookbackMs });
    const fallback = config.sources.kernelLogFallback;
    if (fallback && (await readable(fallback))) {
      log.warn({ device, why, fallback }, 'cannot read the kernel log device; reading the kernel log file instead');
      return new FileReader({ file: fallback, stateDir: config.stateDir, log, sync });
    }
    log.error({ device, why, fallback }, 'cannot read the kernel log: neither the device nor the fallback file is readable');
    return undefined;
  },
  async file(set, { config, log, sync }) {
    // A lookback needs the lines' own timestamps (NPD's filelog translator) to skip the older ones.
    return new FileReader({ file: set.logPath, stateDir: config.stateDir, log, sync, fromStartOnFirstRead: set.lookbackMs !== undefined && set.translate !== undefined });
  },
  async journald(set, { config, log, sync }) {
    return new JournaldReader({
      directory: set.journalDirectory ?? (config.sources.journalDirectory || undefined),
      units: set.units ?? [],
      identifiers: set.identifiers ?? [],
      stateDir: config.stateDir,
      log,
      sync,
      ...(set.lookbackMs !== undefined ? { since: Math.floor((Date.now() - set.lookbackMs) / 1000) } : {}),
    });
  },
};
