// The recovery rails on their own: cooldown per fingerprint, rate limit per node, the cluster budget,
// and that the history survives a restart (a new RecoveryRails on the same state directory).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { RecoveryRails, type RecoveryBudget } from '../../agent/pipeline/rails.js';

const log = pino({ level: 'silent' });
const abnormal = (name: string, fingerprint: string) =>
  ({ metadata: { namespace: 'default', name, labels: { 'nodemedic.io/fingerprint': fingerprint } }, spec: { source: 'Custom', nodeName: 'n' } }) as Abnormal;

test('a fault recovered within the cooldown is left to a person; another fault is not held back by it', async (t) => {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'nodemedic-rails-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  let now = 1_000_000;
  const rails = new RecoveryRails({ stateDir, maxPerHour: 10, cooldownSeconds: 600, log, now: () => now });
  assert.equal((await rails.admit(abnormal('a-1', 'fp-a'))).ok, true);
  assert.equal((await rails.admit(abnormal('a-1', 'fp-a'))).ok, true, 'the same Abnormal trying its next recoverer');
  now += 60_000;
  const again = await rails.admit(abnormal('a-2', 'fp-a'));
  assert.ok(!again.ok && !again.wait && again.reason === 'RecoveryCooldown', JSON.stringify(again));
  assert.match(again.message, /recovered on this node 60 s ago \(default\/a-1\)/);
  assert.equal((await rails.admit(abnormal('b-1', 'fp-b'))).ok, true);
  // A restart forgets nothing.
  const restarted = new RecoveryRails({ stateDir, maxPerHour: 10, cooldownSeconds: 600, log, now: () => now });
  assert.equal((await restarted.admit(abnormal('a-3', 'fp-a'))).ok, false);
  now += 600_000;
  assert.equal((await restarted.admit(abnormal('a-3', 'fp-a'))).ok, true, 'after the cooldown');
});

test('past maxPerHour recoveries wait until the oldest leaves the hour', async (t) => {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'nodemedic-rails-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  let now = 1_000_000;
  const rails = new RecoveryRails({ stateDir, maxPerHour: 2, cooldownSeconds: 0, log, now: () => now });
  assert.equal((await rails.admit(abnormal('x', 'fp-x'))).ok, true);
  assert.equal((await rails.admit(abnormal('x', 'fp-x'))).ok, true, 'its next recoverer: the same recovery, counted once');
  now += 1000;
  assert.equal((await rails.admit(abnormal('y', 'fp-y'))).ok, true);
  const third = await rails.admit(abnormal('z', 'fp-z'));
  assert.ok(!third.ok && third.wait && third.reason === 'RecoveryRateLimited', JSON.stringify(third));
  now += 3_600_000 - 1000;
  assert.equal((await rails.admit(abnormal('z', 'fp-z'))).ok, true);
});

test('the cluster budget: no slot → wait; a budget that cannot be read → wait (fail closed); a slot is given back', async (t) => {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'nodemedic-rails-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  let free = 1;
  let broken = false;
  const budget: RecoveryBudget = {
    async take() {
      if (broken) throw new Error('connection refused');
      if (free === 0) return false;
      free--;
      return true;
    },
    async give() {
      free++;
    },
  };
  const rails = new RecoveryRails({ stateDir, maxPerHour: 100, cooldownSeconds: 0, log, budget });
  const first = await rails.admit(abnormal('p', 'fp-p'));
  assert.ok(first.ok);
  const second = await rails.admit(abnormal('q', 'fp-q'));
  assert.ok(!second.ok && second.wait && second.reason === 'RecoveryBudgetExhausted');
  await first.release();
  assert.equal(free, 1);
  broken = true;
  const unreadable = await rails.admit(abnormal('q', 'fp-q'));
  assert.ok(!unreadable.ok && unreadable.wait && unreadable.reason === 'RecoveryBudgetUnavailable' && /connection refused/.test(unreadable.message));
});

test('two admissions at once behind a slow budget: the hourly limit and the history hold (one decision at a time)', async (t) => {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'nodemedic-rails-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  // A budget that answers only when told to (both admissions are in flight at once), until answerAtOnce.
  const pending: Array<() => void> = [];
  let asked = () => {};
  let answerAtOnce = false;
  const slow: RecoveryBudget = {
    take: () => answerAtOnce ? Promise.resolve(true) : new Promise<boolean>((resolve) => {
      pending.push(() => resolve(true));
      asked();
    }),
    async give() {},
  };
  const nextAsk = () => pending.length > 0 ? Promise.resolve() : new Promise<void>((resolve) => { asked = resolve; });
  const rails = new RecoveryRails({ stateDir, maxPerHour: 2, cooldownSeconds: 600, log, budget: slow });
  const first = rails.admit(abnormal('m-1', 'fp-m'));
  const second = rails.admit(abnormal('n-1', 'fp-n'));
  const third = rails.admit(abnormal('m-2', 'fp-m'));
  // Answer each budget call as it comes; a decision waits for the one before it.
  for (let answered = 0; answered < 2; answered++) {
    await nextAsk();
    pending.shift()!();
  }
  const [a, b, c] = await Promise.all([first, second, third]);
  assert.ok(a.ok && b.ok, 'two different faults within the limit');
  assert.ok(!c.ok && c.reason === 'RecoveryCooldown', `the same fault as the first, admitted at the same moment, is cooled down: ${JSON.stringify(c)}`);
  // Both recoveries are on record: a third fault in the hour waits, whatever the budget would say.
  answerAtOnce = true;
  const d = await rails.admit(abnormal('o-1', 'fp-o'));
  assert.ok(!d.ok && d.reason === 'RecoveryRateLimited', `both admissions were recorded: ${JSON.stringify(d)}`);
});
