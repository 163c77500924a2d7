// Shim reaper deadlock (the bug containerd fixed in PR 3529): identified only from the shim's own
// goroutine dump (status.context.goroutineDumps), when it shows both halves of the deadlock in one
// package's reaper:
//   - Reap() holding the reaper's lock while blocked sending an exit on a subscriber's channel
//     ("chan send", the top frame Reap in reaper*.go);
//   - the subscriber, in Monitor.Wait → Monitor.Unsubscribe, blocked acquiring that same lock
//     ("semacquire" / "sync.Mutex.Lock"), so it never reads the channel again.
// A hung shim with any other dump is not this fault: no heuristic stands in for the dump.
import { Reason } from '../agent/api/reasons.js';
import { parseGoroutines, splitFunc, type Frame, type Goroutine } from '../agent/node/goroutines.js';
import { BUILTIN_NAMESPACE, type Processor } from '../agent/processors/contract.js';
import { evidence, readEvidence } from '../agent/processors/evidence.js';

const inReaperFile = (frame: Frame) => /(^|\/)reaper(_unix)?\.go$/.test(frame.file);
/** Frames of the goroutine's own code: the runtime's and sync's own frames above them skipped. */
const ownFrames = (g: Goroutine) => g.frames.filter((f) => !/^(runtime|sync)\./.test(f.func));

/** The package of the reaper whose Reap is blocked sending while holding the lock, if any. */
function blockedReap(g: Goroutine): string | undefined {
  if (g.state !== 'chan send') return undefined;
  const top = ownFrames(g)[0];
  if (!top || !inReaperFile(top)) return undefined;
  const [pkg, fn] = splitFunc(top.func);
  return fn === 'Reap' ? pkg : undefined;
}

/** The package of the reaper whose Monitor.Wait → Unsubscribe is blocked on the lock, if any. */
function blockedUnsubscribe(g: Goroutine): string | undefined {
  if (g.state !== 'semacquire' && g.state !== 'sync.Mutex.Lock') return undefined;
  if (!g.frames.some((f) => f.func === 'sync.(*Mutex).Lock')) return undefined;
  const [unsubscribe, wait] = ownFrames(g);
  if (!unsubscribe || !wait || !inReaperFile(unsubscribe) || !inReaperFile(wait)) return undefined;
  const [pkg, fn] = splitFunc(unsubscribe.func);
  const [waitPkg, waitFn] = splitFunc(wait.func);
  return fn === '(*Monitor).Unsubscribe' && waitFn === '(*Monitor).Wait' && waitPkg === pkg ? pkg : undefined;
}

export function findReaperDeadlock(dump: string): { package: string; reap: Goroutine; unsubscribe: Goroutine } | undefined {
  const goroutines = parseGoroutines(dump);
  for (const reap of goroutines) {
    const pkg = blockedReap(reap);
    if (!pkg) continue;
    const unsubscribe = goroutines.find((g) => blockedUnsubscribe(g) === pkg);
    if (unsubscribe) return { package: pkg, reap, unsubscribe };
  }
  return undefined;
}

const describe = (g: Goroutine) => `goroutine ${g.id} [${g.state}${g.minutes !== undefined ? `, ${g.minutes} minutes` : ''}]`;

export const shimReaperDeadlock: Processor = {
  kind: 'Diagnoser',
  ref: { namespace: BUILTIN_NAMESPACE, name: 'shim-reaper-deadlock' },
  async run(abnormal) {
    const withDump = (readEvidence(abnormal, 'goroutineDumps') ?? []).filter((d) => typeof d?.dump === 'string');
    if (withDump.length === 0) return { ok: true, identified: false, message: 'no shim goroutine dump to read' };
    for (const entry of withDump) {
      const found = findReaperDeadlock(entry.dump!);
      if (!found) continue;
      const message = `shim pid ${entry.pid} is deadlocked in its reaper (${found.package}): ${describe(found.reap)} holds the lock sending on a subscriber's channel; ` +
        `${describe(found.unsubscribe)} waits for that lock in Monitor.Wait → Unsubscribe (fixed upstream by containerd PR 3529)`;
      return {
        ok: true, identified: true, reason: Reason.ShimReaperDeadlock, message,
        context: evidence({ diagnosis: { fault: Reason.ShimReaperDeadlock, targets: [{ pid: entry.pid, startTicks: entry.startTicks }], reap: found.reap.id, unsubscribe: found.unsubscribe.id } }),
      };
    }
    return { ok: true, identified: false, message: `the goroutine dump of shim pid ${withDump.map((d) => d.pid).join(', ')} shows no reaper deadlock` };
  },
};
