// Node conditions as a projection of this node's Abnormals (agent/pipeline/node-conditions.ts): set
// while a permanent rule's Abnormal is open, cleared by its recovery, its end or its deletion; only
// declared (condition, reason) pairs count; every change told once as a Node event. The store and the
// Node are fixtures: plain objects holding what a test gives them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { NodeConditions } from '../../agent/pipeline/node-conditions.js';
import type { AbnormalStore, NodeCondition, NodeReporter } from '../../agent/store/store.js';
import { waitFor } from '../helpers/wait.js';

const made = (name: string, rule: Record<string, string>, extra: Partial<Abnormal['spec']> = {}, phase?: string): Abnormal => ({
  apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal', metadata: { namespace: 'ns', name, creationTimestamp: '2026-12-01T00:00:00Z' as never },
  spec: { source: 'Log', nodeName: 'n', log: { filePath: '/dev/kmsg', logEntry: `line of ${name}` }, context: { rule }, ...extra },
  ...(phase ? { status: { phase } } : {}),
} as Abnormal);
const deadlock = { type: 'permanent', condition: 'KernelDeadlock', reason: 'HardLockup' };

function setup(abnormals: Abnormal[]) {
  const node = new Map<string, NodeCondition>();
  const events: string[] = [];
  let fail = false;
  const calls = { set: 0 };
  const reporter: NodeReporter = {
    async setConditions(conditions) {
      calls.set++;
      if (fail) throw new Error('the apiserver is away');
      for (const c of conditions) node.set(c.type, c);
    },
    async recordNodeEvent(type, reason) {
      events.push(`${type} ${reason}`);
    },
  };
  const store = { listOfNode: async () => abnormals } as unknown as AbnormalStore;
  const conditions = new NodeConditions({
    store, reporter, log: pino({ level: 'silent' }), resyncMs: 3_600_000,
    declared: [{ type: 'KernelDeadlock', reason: 'KernelHasNoDeadlock', message: 'kernel has no deadlock' }, { type: 'ReadonlyFilesystem', reason: 'FilesystemIsNotReadOnly', message: 'fine' }],
    permanentRules: [{ condition: 'KernelDeadlock', reason: 'HardLockup' }, { condition: 'ReadonlyFilesystem', reason: 'FilesystemIsReadOnly' }],
  });
  const sync = async () => {
    conditions.nudge();
    await (conditions as unknown as { syncing?: Promise<void> }).syncing;
  };
  return { node, events, conditions, sync, calls, failNext: (on: boolean) => (fail = on) };
}

test('the defaults are written at start; an open Abnormal of a permanent rule sets its condition; recovery clears it', async () => {
  const abnormals: Abnormal[] = [];
  const { node, events, conditions, sync } = setup(abnormals);
  await conditions.start();
  assert.deepEqual([...node.values()].map((c) => [c.type, c.status, c.reason]), [['KernelDeadlock', 'False', 'KernelHasNoDeadlock'], ['ReadonlyFilesystem', 'False', 'FilesystemIsNotReadOnly']]);
  assert.deepEqual(events, [], 'no event for a default');

  abnormals.push(made('lockup', deadlock, {}, 'Diagnosing'));
  await sync();
  assert.deepEqual(node.get('KernelDeadlock'), { type: 'KernelDeadlock', status: 'True', reason: 'HardLockup', message: 'line of lockup (Abnormal ns/lockup)' });
  abnormals[0] = made('lockup', deadlock, {}, 'Succeeded');
  await sync();
  assert.equal(node.get('KernelDeadlock')?.status, 'False');
  assert.deepEqual(events, ['Warning HardLockup', 'Normal KernelHasNoDeadlock']);
  await conditions.stop();
});

test('a Failed Abnormal keeps its condition until its source says the fault is over, or it is deleted', async () => {
  const abnormals = [made('ro', { type: 'permanent', condition: 'ReadonlyFilesystem', reason: 'FilesystemIsReadOnly' }, {}, 'Failed')];
  const { node, sync } = setup(abnormals);
  await sync();
  assert.equal(node.get('ReadonlyFilesystem')?.status, 'True');
  abnormals[0] = made('ro', abnormals[0]!.spec.context!.rule as Record<string, string>, { occurrences: { count: 2, lastSeen: '2026-12-01T00:00:00Z', endedAt: '2026-12-01T00:01:00Z' } }, 'Failed');
  await sync();
  assert.equal(node.get('ReadonlyFilesystem')?.status, 'False', 'ended');
  abnormals[0] = made('ro', abnormals[0]!.spec.context!.rule as Record<string, string>, { occurrences: { count: 3, lastSeen: '2026-12-01T00:02:00Z', endedAt: '2026-12-01T00:01:00Z' } }, 'Failed');
  await sync();
  assert.equal(node.get('ReadonlyFilesystem')?.status, 'True', 'seen again after it ended');
  abnormals.length = 0;
  await sync();
  assert.equal(node.get('ReadonlyFilesystem')?.status, 'False', 'deleted');
});

test('a hand-made Abnormal cannot set an undeclared condition, nor a declared one with another rule\'s reason', async () => {
  const { node, sync } = setup([
    made('ready', { type: 'permanent', condition: 'Ready', reason: 'HardLockup' }),
    made('wrong-reason', { type: 'permanent', condition: 'KernelDeadlock', reason: 'Whatever' }),
    made('temporary', { type: 'temporary', condition: 'KernelDeadlock', reason: 'HardLockup' }),
  ]);
  await sync();
  assert.deepEqual([...node.keys()].sort(), ['KernelDeadlock', 'ReadonlyFilesystem']);
  assert.equal(node.get('KernelDeadlock')?.status, 'False');
});

test('a write that fails is made again after a backoff, not at every change, and nothing is told before it lands', async () => {
  const abnormals = [made('lockup', deadlock)];
  const { node, events, conditions, sync, calls, failNext } = setup(abnormals);
  failNext(true);
  await sync();
  for (let i = 0; i < 10; i++) await sync(); // ten changes within the backoff
  assert.equal(calls.set, 1, 'one try, not one per change');
  assert.equal(node.size, 0);
  assert.deepEqual(events, []);
  failNext(false);
  await waitFor('the write after the backoff', async () => node.get('KernelDeadlock')?.status === 'True' || undefined);
  assert.deepEqual(events, ['Warning HardLockup']);
  await conditions.stop();
});
