// Goroutine dumps of container shims: each shim the Abnormal is about (status.context.containerShims,
// or found afresh) is sent SIGUSR1 and its dump is read from where containerd writes it — containerd's
// own log, a journald unit ("journald:containerd.service") or a file — waiting at most a timeout.
// Meanwhile the shim's state is sampled from /proc: a shim that gives no dump and stays stopped (T) or
// in uninterruptible sleep (D) the whole time is what the unresponsive-shim diagnoser looks for.
// Only shims are signalled: SIGUSR1 ends most other processes.
import { open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { BUILTIN_NAMESPACE, type Processor } from '../agent/processors/contract.js';
import { dumpInLogLine, type ShimDump } from '../agent/processors/goroutines.js';
import { readCmdline, sameProcess } from '../agent/processors/procfs.js';
import { parseShimCommand, shimsOf, type Shim } from '../agent/processors/shims.js';

export type GoroutineDumpOptions = {
  /** Where containerd logs: "journald:UNIT" or a file path. */
  containerdLog: string;
  timeoutSeconds: number;
  journalctl?: string;
};

const MAX_DUMP = 128 * 1024;
const POLL_MS = 200;

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
        context: { goroutineDumps: dumps },
        output: dumps.map((d) => `shim pid ${d.pid}: ${d.error ?? (d.dump ? `goroutine dump in ${d.answeredInMs} ms` : `no goroutine dump within ${d.noDumpWithinSeconds} s; states seen: ${d.states.map((s) => s.state).join(' → ')}`)}`).join('\n'),
      };
    },
  };
}

async function dumpOf(shim: Shim, opts: GoroutineDumpOptions, signal: AbortSignal): Promise<ShimDump> {
  const signalledAt = new Date();
  const result: ShimDump = { pid: shim.pid, startTicks: shim.startTicks, signalledAt: signalledAt.toISOString(), states: [] };
  // The pid must still be that shim (same start time, a shim's command line): pids are reused.
  const args = await readCmdline(shim.pid);
  if (!(await sameProcess(shim.pid, shim.startTicks)) || !args || !parseShimCommand(args)) return { ...result, error: 'the shim is gone' };
  const log = await logFollower(opts);
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
    for (const line of await log.newLines()) {
      const dump = dumpInLogLine(line, shim.pid);
      if (dump) return { ...result, dump: dump.length > MAX_DUMP ? `${dump.slice(0, MAX_DUMP)}\n… [cut by nodemedic at ${MAX_DUMP} characters]` : dump, answeredInMs: Date.now() - signalledAt.getTime() };
    }
    if (Date.now() >= deadline || signal.aborted) return { ...result, noDumpWithinSeconds: opts.timeoutSeconds };
    await sleep(POLL_MS);
  }
}

/** Lines containerd logs from now on. */
async function logFollower(opts: GoroutineDumpOptions): Promise<{ newLines(): Promise<string[]> }> {
  if (opts.containerdLog.startsWith('journald:')) {
    const unit = opts.containerdLog.slice('journald:'.length);
    const since = Math.floor(Date.now() / 1000) - 1;
    let seen = 0;
    return {
      async newLines() {
        const out = await execa(opts.journalctl ?? 'journalctl', [`--unit=${unit}`, `--since=@${since}`, '--output=cat', '--no-pager'], { reject: false, timeout: 5000 });
        const lines = out.stdout.split('\n');
        const fresh = lines.slice(seen);
        seen = lines.length;
        return fresh;
      },
    };
  }
  const file = opts.containerdLog;
  let offset = (await stat(file).catch(() => undefined))?.size ?? 0;
  let partial = '';
  return {
    async newLines() {
      const size = (await stat(file).catch(() => undefined))?.size ?? 0;
      if (size < offset) offset = 0; // truncated or replaced: read the new file from its start
      if (size === offset) return [];
      const handle = await open(file, 'r');
      try {
        const buffer = Buffer.alloc(size - offset);
        await handle.read(buffer, 0, buffer.length, offset);
        offset = size;
        const lines = (partial + buffer.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        return lines;
      } finally {
        await handle.close();
      }
    },
  };
}
