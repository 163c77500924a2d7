// Shim reaper deadlock (the lock order containerd fixed in PR 3529): identified only from the shim's own
// goroutine dump (status.context.goroutineDumps). In that order Reap() sends each exit to every
// subscriber while holding the reaper's lock, and blocks on a full channel. The dump must show Reap
// blocked sending ("chan send", the top frame Reap in reaper*.go) and, in the same package's reaper,
// what it starves — either of:
//   - a subscriber in Monitor.Wait → Monitor.Unsubscribe blocked acquiring that same lock
//     ("semacquire" / "sync.Mutex.Lock"): it got its exit and will never read its channel again, so
//     the two wait for each other (containerd 1.2's shape, a cycle the dump proves on its own);
//   - a runc command's Monitor.Wait blocked receiving its exit, while Reap has been blocked for a
//     minute or more: the exit sits in Reap's hands, and every runc command after it needs the lock
//     Reap holds (the shape a 1.6 shim with that Reap takes: the channel Reap sends on belongs to the
//     shim's exit loop, itself waiting on a lock a runc command's caller holds). Go marks a goroutine
//     blocked for a minute or more with its minutes, so a moment's congestion is never taken for it.
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

/** A runc command's Monitor.Wait blocked for a minute or more receiving its exit, if so: its package. */
function starvedWait(g: Goroutine): string | undefined {
  if (g.state !== 'chan receive' || (g.minutes ?? 0) < 1) return undefined;
  const top = ownFrames(g)[0];
  if (!top || !inReaperFile(top)) return undefined;
  const [pkg, fn] = splitFunc(top.func);
  return fn === '(*Monitor).Wait' ? pkg : undefined;
}

export type ReaperDeadlock = { package: string; reap: Goroutine; waiter: Goroutine; shape: 'unsubscribe' | 'starved-wait' };

export function findReaperDeadlock(dump: string): ReaperDeadlock | undefined {
  const goroutines = parseGoroutines(dump);
  for (const reap of goroutines) {
    const pkg = blockedReap(reap);
    if (!pkg) continue;
    const unsubscribe = goroutines.find((g) => blockedUnsubscribe(g) === pkg);
    if (unsubscribe) return { package: pkg, reap, waiter: unsubscribe, shape: 'unsubscribe' };
    const starved = (reap.minutes ?? 0) >= 1 ? goroutines.find((g) => starvedWait(g) === pkg) : undefined;
    if (starved) return { package: pkg, reap, waiter: starved, shape: 'starved-wait' };
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
      const waits = found.shape === 'unsubscribe'
        ? `${describe(found.waiter)} waits for that lock in Monitor.Wait → Unsubscribe`
        : `${describe(found.waiter)} waits in Monitor.Wait for an exit Reap holds, and every runc command needs the lock`;
      const message = `shim pid ${entry.pid} is deadlocked in its reaper (${found.package}): ${describe(found.reap)} holds the lock sending an exit on a channel nobody reads; ` +
        `${waits} (the lock order fixed upstream by containerd PR 3529)`;
      return {
        ok: true, identified: true, reason: Reason.ShimReaperDeadlock, message,
        context: evidence({ diagnosis: { fault: Reason.ShimReaperDeadlock, targets: [{ pid: entry.pid, startTicks: entry.startTicks }], reap: found.reap.id, waiter: found.waiter.id } }),
      };
    }
    return { ok: true, identified: false, message: `the goroutine dump of shim pid ${withDump.map((d) => d.pid).join(', ')} shows no reaper deadlock` };
  },
};
