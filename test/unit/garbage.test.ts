// Which finished Abnormals garbage collection takes (agent/pipeline/garbage.ts), as a pure function.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Abnormal, AbnormalStatus } from '../../agent/api/types.generated.js';
import { garbageOf } from '../../agent/pipeline/garbage.js';

const NOW = Date.parse('2026-12-01T00:00:00Z');
const HOUR = 3600_000;
const made = (name: string, phase: AbnormalStatus['phase'] | undefined, agoMs?: number): Abnormal => ({
  apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal', metadata: { namespace: 'default', name },
  spec: { source: 'Custom', nodeName: 'demo' },
  status: {
    ...(phase ? { phase } : {}),
    ...(agoMs === undefined ? {} : { conditions: [{ type: 'Identified', status: 'False', reason: 'NotIdentified', message: 'm', lastTransitionTime: new Date(NOW - agoMs).toISOString() }] }),
  },
} as Abnormal);
const names = (list: Abnormal[]) => list.map((a) => a.metadata?.name);
const ttl = { succeededTTLSeconds: 3600, failedTTLSeconds: 86_400, maxFinished: 100 };

test('expired by their phase\'s time to live, oldest first; unfinished ones never', () => {
  const all = [made('ok-old', 'Succeeded', 2 * HOUR), made('ok-new', 'Succeeded', 0), made('failed-2h', 'Failed', 2 * HOUR),
    made('unknown-2d', 'Unknown', 48 * HOUR), made('running-2d', 'Diagnosing', 48 * HOUR), made('new', undefined, 48 * HOUR)];
  assert.deepEqual(names(garbageOf(all, NOW, ttl)), ['unknown-2d', 'ok-old']);
});

test('beyond the cap, the oldest finished go', () => {
  const all = [made('a', 'Failed', 3 * 60_000), made('b', 'Failed', 2 * 60_000), made('c', 'Failed', 60_000), made('d', 'Diagnosing', 10 * 60_000)];
  assert.deepEqual(names(garbageOf(all, NOW, { ...ttl, maxFinished: 1 })), ['a', 'b']);
});

test('one whose end cannot be told counts as just finished: kept, and last in line for the cap', () => {
  const all = [made('unknown-end', 'Succeeded'), made('old', 'Succeeded', 30 * 60_000)];
  assert.deepEqual(names(garbageOf(all, NOW, ttl)), []);
  assert.deepEqual(names(garbageOf(all, NOW, { ...ttl, maxFinished: 1 })), ['old']);
});
