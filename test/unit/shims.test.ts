// The shim helpers and diagnosers on fixed input: command lines, log lines, goroutine dumps.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { dumpInLogLine, foldRepeatedGoroutines, goUnquote, parseGoroutines } from '../../agent/node/goroutines.js';
import { parseShimCommand } from '../../agent/node/shims.js';
import { subjectOf } from '../../agent/processors/evidence.js';
import { findReaperDeadlock, shimReaperDeadlock } from '../../diagnosers/shim-reaper-deadlock.js';
import { REPO_ROOT } from '../cluster/cluster.js';
import { DEADLOCKED_SHIM_DUMP, REAP_BLOCKED_ONLY_DUMP } from '../fixtures/goroutine-dumps.js';

test('shim command lines: containerd shim v2, the v1 shim Docker runs, the oldest docker-containerd-shim; anything else is not a shim', () => {
  assert.deepEqual(parseShimCommand(['/usr/bin/containerd-shim-runc-v2', '-namespace', 'k8s.io', '-id', 'fa32', '-address', '/run/containerd/containerd.sock']),
    { executable: 'containerd-shim-runc-v2', namespace: 'k8s.io', id: 'fa32', address: '/run/containerd/containerd.sock' });
  assert.deepEqual(parseShimCommand(['docker-containerd-shim', '-namespace', 'moby', '-workdir', '/var/lib/docker/containerd/daemon/io.containerd.runtime.v1.linux/moby/9c1e',
    '-address', '/var/run/docker/containerd/docker-containerd.sock', '-containerd-binary', '/usr/bin/docker-containerd', '-runtime-root', '/var/run/docker/runtime-runc']),
  { executable: 'docker-containerd-shim', namespace: 'moby', id: '9c1e', address: '/var/run/docker/containerd/docker-containerd.sock' });
  assert.deepEqual(parseShimCommand(['docker-containerd-shim', '77ab', '/var/run/docker/libcontainerd/77ab', 'docker-runc']), { executable: 'docker-containerd-shim', id: '77ab' });
  assert.equal(parseShimCommand(['/usr/bin/containerd', '--config', 'x']), undefined);
  assert.equal(parseShimCommand(['/tmp/evil-containerd-shim-runc-v2x']), undefined);
});

test('what an Abnormal is about: the stuck-pod source\'s pod, container ids, pids; junk is ignored', () => {
  const about = (context: Record<string, unknown>) => subjectOf({ spec: { source: 'Custom', nodeName: 'n', context } } as Abnormal);
  assert.deepEqual(about({ pod: { namespace: 'a', name: 'b', uid: 'u1', containers: [{ containerID: 'containerd://c1' }, { name: 'x' }] } }),
    { pod: { namespace: 'a', name: 'b', uid: 'u1', containerIDs: ['containerd://c1'] }, pids: [] });
  assert.deepEqual(about({ pids: [12, -1, 'x', 1.5, 0] }), { pod: undefined, pids: [12] });
  assert.deepEqual(about({ pod: 'nonsense' }), { pod: undefined, pids: [] });
});

test('a goroutine dump is found in containerd\'s log line for that pid only, in text and JSON form', () => {
  const quoted = JSON.stringify(`=== BEGIN goroutine stack dump ===\n${DEADLOCKED_SHIM_DUMP}\n=== END goroutine stack dump ===`);
  const text = `time="2026-11-23T09:36:58.751168248Z" level=info msg=${quoted} namespace=k8s.io path=/run/x pid=4242 runtime=io.containerd.runc.v2`;
  assert.ok(dumpInLogLine(text, 4242)?.includes('goroutine 42 [semacquire, 14 minutes]:\nsync.runtime_SemacquireMutex'));
  assert.equal(dumpInLogLine(text, 424), undefined, 'another pid');
  assert.equal(dumpInLogLine(text.replace('pid=4242', 'pid=1'), 4242), undefined);
  // "pid=4242" inside the message is not the field.
  assert.equal(dumpInLogLine(`level=info msg="=== BEGIN goroutine stack dump ===\\n pid=4242 " pid=7`, 4242), undefined);
  const json = JSON.stringify({ level: 'info', msg: `=== BEGIN goroutine stack dump ===\n${DEADLOCKED_SHIM_DUMP}`, pid: 4242 });
  assert.ok(dumpInLogLine(json, 4242)?.includes('(*Monitor).Unsubscribe'));
  assert.equal(goUnquote('a\\tb\\x41\\u00e9\\101\\"'), 'a\tbAéA"');
});

test('goroutines and frames are read from Go\'s dump format', () => {
  const goroutines = parseGoroutines(DEADLOCKED_SHIM_DUMP);
  assert.deepEqual(goroutines.map((g) => [g.id, g.state, g.minutes]), [[1, 'select', 14], [18, 'chan send', 14], [42, 'semacquire', 14]]);
  assert.deepEqual(goroutines[2]!.frames[2], { func: 'github.com/containerd/containerd/runtime/v2/shim.(*Monitor).Unsubscribe', file: 'github.com/containerd/containerd/runtime/v2/shim/reaper_unix.go', line: 107 });
  assert.equal(goroutines[1]!.createdBy, 'github.com/containerd/containerd/runtime/v2/shim.handleSignals');
});

test('the reaper deadlock is identified from both halves in one package, never from one half or lookalikes', async () => {
  assert.equal(findReaperDeadlock(DEADLOCKED_SHIM_DUMP)?.package, 'github.com/containerd/containerd/runtime/v2/shim');
  assert.equal(findReaperDeadlock(REAP_BLOCKED_ONLY_DUMP), undefined);
  // The lock held in another package's Monitor: not the same lock.
  assert.equal(findReaperDeadlock(DEADLOCKED_SHIM_DUMP.replace(/shim\.\(\*Monitor\)/g, 'other.(*Monitor)')), undefined);
  // Reap running, not blocked sending: no deadlock.
  assert.equal(findReaperDeadlock(DEADLOCKED_SHIM_DUMP.replace('[chan send, 14 minutes]', '[runnable]')), undefined);
  // Go ≥ 1.20 names the wait on a mutex after it.
  assert.ok(findReaperDeadlock(DEADLOCKED_SHIM_DUMP.replace('[semacquire, 14 minutes]', '[sync.Mutex.Lock, 14 minutes]')));

  const withDumps = (dumps: unknown[]) => ({ spec: { source: 'Custom', nodeName: 'n' }, status: { context: { goroutineDumps: dumps } } }) as Abnormal;
  const yes = await shimReaperDeadlock.run(withDumps([{ pid: 4242, startTicks: 9, dump: DEADLOCKED_SHIM_DUMP }]), new AbortController().signal);
  assert.ok(yes.ok && yes.identified);
  assert.deepEqual(yes.ok && yes.context?.diagnosis, { fault: 'ShimReaperDeadlock', targets: [{ pid: 4242, startTicks: 9 }], reap: 18, waiter: 42 });
  const no = await shimReaperDeadlock.run(withDumps([{ pid: 4242, startTicks: 9, noDumpWithinSeconds: 5 }]), new AbortController().signal);
  assert.ok(no.ok && !no.identified, 'no dump: no diagnosis, whatever else is known');
});

test('a dump too large to keep whole keeps every distinct stack: repeated goroutines are folded and counted', () => {
  const alike = (id: number) => `goroutine ${id} [chan receive]:\ngithub.com/containerd/containerd/pkg/process.(*execProcess).Wait(0xc000${id}?)\n\tgithub.com/containerd/containerd/pkg/process/exec.go:65 +0x25`;
  const dump = [DEADLOCKED_SHIM_DUMP.trimEnd(), ...Array.from({ length: 150 }, (_, i) => alike(100 + i))].join('\n\n');
  const folded = foldRepeatedGoroutines(dump);
  assert.deepEqual(parseGoroutines(folded).map((g) => g.id), [1, 18, 42, 100], 'one of the 150 alike, every other one');
  assert.match(folded, /folded by nodemedic: goroutines alike in state and stack, the first of each kept above: goroutine 100 ×150$/);
  assert.ok(findReaperDeadlock(folded), 'the deadlock is still there to see');
  assert.equal(foldRepeatedGoroutines(DEADLOCKED_SHIM_DUMP), DEADLOCKED_SHIM_DUMP, 'nothing repeated: unchanged');
});

// A real dump (test/fixtures/shim-1.6-deadlock-dump.txt, kept by node-shim-deadlock.test.ts): Debian's
// containerd 1.6.20 shim with 1.2's Reap, deadlocked on the test node, as the agent kept it (folded).
test('a real 1.6 shim\'s dump: Reap blocked for a minute starving a runc command\'s Wait is the deadlock; the same at once is not yet', async () => {
  const dump = await readFile(path.join(REPO_ROOT, 'test/fixtures/shim-1.6-deadlock-dump.txt'), 'utf8');
  const found = findReaperDeadlock(dump);
  assert.deepEqual(found && [found.package, found.shape, found.reap.id, found.reap.state, found.waiter.state], ['github.com/containerd/containerd/sys/reaper', 'starved-wait', 1, 'chan send', 'chan receive']);
  assert.equal(findReaperDeadlock(dump.replace(/, \d+ minutes\]/g, ']')), undefined, 'blocked for less than a minute: maybe congestion, not proven');
});
