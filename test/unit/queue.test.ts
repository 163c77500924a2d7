import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkQueue } from '../../agent/pipeline/queue.js';
import { waitFor } from '../helpers/wait.js';

/** Workers park here until the test lets them go: what runs at once is then decided by the queue, not by timing. */
function gate() {
  const parked: Array<() => void> = [];
  return {
    parked,
    park: () => new Promise<void>((resolve) => parked.push(resolve)),
    releaseAll: () => parked.splice(0).forEach((resolve) => resolve()),
  };
}

test('never more than `concurrency` at once, and never two workers on one key', async () => {
  const running = new Set<string>();
  let max = 0;
  const done: string[] = [];
  const workers = gate();
  const queue = new WorkQueue<string>(3, async (key) => {
    assert.ok(!running.has(key), `two workers on ${key}`);
    running.add(key);
    max = Math.max(max, running.size);
    await workers.park();
    running.delete(key);
    done.push(key);
  }, (key, err) => assert.fail(`${key}: ${err}`));
  for (let i = 0; i < 20; i++) queue.add(`k${i % 10}`);
  const idle = queue.idle();
  let finished = false;
  void idle.then(() => (finished = true));
  // Round by round: once every running worker is parked, let them all go.
  while (!finished) {
    await waitFor('the running workers to park', async () => finished || (workers.parked.length > 0 && workers.parked.length === queue.size.running) || undefined);
    workers.releaseAll();
  }
  assert.equal(max, 3);
  const runs = (key: string) => done.filter((k) => k === key).length;
  // k0..k2 started at once, so their second add came while they ran: one more run each.
  // k3..k9 were still waiting when added again: one run each.
  assert.deepEqual([0, 1, 2].map((i) => runs(`k${i}`)), [2, 2, 2]);
  assert.deepEqual([3, 4, 5, 6, 7, 8, 9].map((i) => runs(`k${i}`)), [1, 1, 1, 1, 1, 1, 1]);
});

test('a key added while its worker runs is run once more afterwards', async () => {
  const runs: number[] = [];
  let release!: () => void;
  const queue = new WorkQueue<string>(2, async () => {
    runs.push(Date.now());
    if (runs.length === 1) await new Promise<void>((r) => (release = r));
  }, () => {});
  queue.add('a');
  assert.equal(runs.length, 1, 'a worker starts at once, up to its first wait');
  queue.add('a');
  queue.add('a'); // still once more, not twice
  release();
  await queue.idle();
  assert.equal(runs.length, 2);
});

test('a failing worker is reported and the queue goes on', async () => {
  const errors: string[] = [];
  const queue = new WorkQueue<string>(1, async (key) => {
    if (key === 'bad') throw new Error('boom');
  }, (key, err) => errors.push(`${key}: ${(err as Error).message}`));
  queue.add('bad');
  queue.add('good');
  await queue.idle();
  assert.deepEqual(errors, ['bad: boom']);
});

test('stop() lets the work in flight finish and takes no more', async () => {
  const done: string[] = [];
  const workers = gate();
  const queue = new WorkQueue<string>(1, async (key) => {
    await workers.park();
    done.push(key);
  }, () => {});
  queue.add('first'); // running, parked
  queue.add('second'); // pending
  const stopped = queue.stop();
  queue.add('third');
  workers.releaseAll();
  await stopped;
  await queue.idle();
  assert.deepEqual(done, ['first']);
  assert.equal(workers.parked.length, 0, 'nothing else started');
});
