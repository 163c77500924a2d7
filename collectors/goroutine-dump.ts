// Goroutine dumps of container shims: each shim the Abnormal is about (the container-shims evidence,
// or found afresh) is sent SIGUSR1 and its dump is read from where containerd writes it — containerd's
// own log, a journald unit ("journald:containerd.service") or a file — followed with the same log
// followers the log sources use (agent/node), waiting at most a timeout. Meanwhile the shim's state is
// sampled from /proc: a shim that gives no dump and stays stopped (T) or in uninterruptible sleep (D)
// the whole time is what the unresponsive-shim diagnoser looks for.
// Only proven shims are signalled — the node's container runtime's own shim binary, by device and
// inode, not a process merely named like one: SIGUSR1 ends most other processes.
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { FileReader } from '../agent/node/file-reader.js';
import { dumpInLogLine, foldRepeatedGoroutines, type ShimDump } from '../agent/node/goroutines.js';
import { JournaldReader } from '../agent/node/journald.js';
import type { LineReader } from '../agent/node/line-reader.js';
import { sameProcess } from '../agent/node/procfs.js';
import { provenShim, type Shim } from '../agent/node/shims.js';
import { BUILTIN_NAMESPACE, type Processor } from '../agent/processors/contract.js';
import { evidence, shimsOf } from '../agent/processors/evidence.js';

export type GoroutineDumpOptions = {
  /** Where containerd logs: "journald:UNIT" or a file path. */
  containerdLog: string;
  timeoutSeconds: number;
  journalctl?: string;
  /** The journal to read for journald:UNIT: a journal directory (sources.journalDirectory), or the system journal. */
  journalDirectory?: string;
  log?: Logger;
};

const MAX_DUMP = 128 * 1024;
/**
 * The longest log line read for a dump: containerd logs a shim's whole dump as one line, and a shim
 * with many processes dumps hundreds of KiB (a 1.6 shim with 150 execs: about 300 KiB, escaped).
 * Longer lines are cut, and a cut dump is not recognised.
 */
const MAX_DUMP_LINE = 4 * 1024 * 1024;
/** How often the shim's state is sampled while its dump is awaited. */
const SAMPLE_MS = 200;

export function goroutineDump(opts: GoroutineDumpOptions): Processor {
  return {
    kind: 'InformationCollector',
    ref: { namespace: BUILTIN_NAMESPACE, name: 'goroutine-dump' },
    async run(abnormal, signal) {
      const shims = await shimsOf(abnormal);
      if (shims.length === 0) return { ok: true };
      const dumps = await Promise.all(shims.map((shim) => dumpOf(shim, opts, signal)));
      return {
        ok: true,
        context: evidence({ goroutineDumps: dumps }),
        output: dumps.map((d) => `shim pid ${d.pid}: ${d.error ?? (d.dump ? `goroutine dump in ${d.answeredInMs} ms` : `no goroutine dump within ${d.noDumpWithinSeconds} s; states seen: ${d.states.map((s) => s.state).join(' → ')}`)}`).join('\n'),
      };
    },
  };
}

/** A follower of containerd's log from now on, with no position kept: a dump is news or nothing. */
function containerdLog(opts: GoroutineDumpOptions): LineReader {
  const log = opts.log ?? pino({ level: 'silent' });
  if (!opts.containerdLog.startsWith('journald:')) return new FileReader({ file: opts.containerdLog, pollMs: SAMPLE_MS, maxLineBytes: MAX_DUMP_LINE, log });
  const unit = opts.containerdLog.slice('journald:'.length);
  // From a second back: journalctl's --since is whole seconds, and the dump must not fall before it.
  return new JournaldReader({
    units: [unit], identifiers: [], since: Math.floor(Date.now() / 1000) - 1, journalctl: opts.journalctl, log, maxLineBytes: MAX_DUMP_LINE,
    ...(opts.journalDirectory ? { directory: opts.journalDirectory } : {}),
  });
}

async function dumpOf(shim: Shim, opts: GoroutineDumpOptions, signal: AbortSignal): Promise<ShimDump> {
  const signalledAt = new Date();
  const result: ShimDump = { pid: shim.pid, startTicks: shim.startTicks, signalledAt: signalledAt.toISOString(), states: [] };
  // The pid must still be that process (pids are reused), and a shim of the node's runtime.
  const proven = await provenShim(shim.pid, shim.startTicks);
  if ('refused' in proven) return { ...result, error: `not signalled: ${proven.refused}` };
  let dump: string | undefined;
  const follower = containerdLog(opts);
  await follower.start((line) => (dump ??= dumpInLogLine(line, shim.pid)));
  try {
    try {
      process.kill(shim.pid, 'SIGUSR1');
    } catch (err) {
      return { ...result, error: `could not signal it: ${(err as Error).message}` };
    }
    const deadline = signalledAt.getTime() + opts.timeoutSeconds * 1000;
    for (;;) {
      const now = new Date();
      const stat = await sameProcess(shim.pid, shim.startTicks);
      if (!stat) return { ...result, error: 'the shim exited while its dump was awaited' };
      const last = result.states.at(-1);
      if (last?.state === stat.state) last.to = now.toISOString();
      else result.states.push({ state: stat.state, from: now.toISOString(), to: now.toISOString() });
      if (dump !== undefined) {
        // Too large: repeated goroutines folded first (every distinct stack kept), then cut if need be.
        const kept = dump.length > MAX_DUMP ? foldRepeatedGoroutines(dump) : dump;
        return { ...result, dump: kept.length > MAX_DUMP ? `${kept.slice(0, MAX_DUMP)}\n… [cut by nodemedic at ${MAX_DUMP} characters]` : kept, answeredInMs: Date.now() - signalledAt.getTime() };
      }
      if (Date.now() >= deadline || signal.aborted) return { ...result, noDumpWithinSeconds: opts.timeoutSeconds };
      await sleep(SAMPLE_MS);
    }
  } finally {
    await follower.stop();
  }
}
