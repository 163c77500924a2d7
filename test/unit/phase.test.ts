import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PHASES } from '../../agent/api/crds.js';
import { canTransition, isTerminal, setCondition, type ConditionType, type Phase } from '../../agent/api/phase.js';
import type { AbnormalCondition } from '../../agent/api/types.generated.js';

const getCondition = (conditions: AbnormalCondition[], type: ConditionType) => conditions.find((c) => c.type === type);

describe('phase transitions', () => {
  // Every legal move, written out by hand so the table, not the code, is the specification.
  const legal: Array<[Phase | undefined, Phase]> = [
    [undefined, 'InformationCollecting'], [undefined, 'Diagnosing'], [undefined, 'Recovering'], [undefined, 'Succeeded'],
    [undefined, 'Failed'], [undefined, 'Unknown'],
    ['InformationCollecting', 'Diagnosing'], ['InformationCollecting', 'Recovering'], ['InformationCollecting', 'Succeeded'],
    ['InformationCollecting', 'Failed'], ['InformationCollecting', 'Unknown'],
    ['Diagnosing', 'Recovering'], ['Diagnosing', 'Succeeded'], ['Diagnosing', 'Failed'], ['Diagnosing', 'Unknown'],
    ['Recovering', 'Succeeded'], ['Recovering', 'Failed'], ['Recovering', 'Unknown'],
  ];

  test('exactly the forward moves and the moves to Failed or Unknown are legal', () => {
    const key = (from: Phase | undefined, to: Phase) => `${from ?? '(none)'}→${to}`;
    const expected = new Set(legal.map(([f, t]) => key(f, t)));
    for (const from of [undefined, ...PHASES]) {
      for (const to of PHASES) {
        assert.equal(canTransition(from, to), expected.has(key(from, to)), key(from, to));
      }
    }
  });

  test('terminal phases are never left', () => {
    for (const phase of ['Succeeded', 'Failed', 'Unknown'] as const) {
      assert.ok(isTerminal(phase));
      for (const to of PHASES) assert.equal(canTransition(phase, to), false, `${phase}→${to}`);
    }
    assert.equal(isTerminal(undefined), false);
    assert.equal(isTerminal('Recovering'), false);
  });
});

describe('conditions', () => {
  const t1 = new Date('2026-01-01T00:00:00.123Z');
  const t2 = new Date('2026-01-01T00:05:00Z');

  test('a new condition gets the time, in whole seconds as the apiserver stores it', () => {
    const conditions = setCondition(undefined, { type: 'Identified', status: 'False', reason: 'Pending' }, t1);
    assert.deepEqual(conditions, [
      { type: 'Identified', status: 'False', reason: 'Pending', lastTransitionTime: '2026-01-01T00:00:00Z' },
    ]);
  });

  test('lastTransitionTime changes only when status changes', () => {
    const first = setCondition([], { type: 'Identified', status: 'False', reason: 'NoDiagnoserYet' }, t1);
    const sameStatus = setCondition(first, { type: 'Identified', status: 'False', reason: 'Other', message: 'm' }, t2);
    assert.equal(getCondition(sameStatus, 'Identified')?.lastTransitionTime, '2026-01-01T00:00:00Z');
    assert.equal(getCondition(sameStatus, 'Identified')?.reason, 'Other');
    const changed = setCondition(sameStatus, { type: 'Identified', status: 'True', reason: 'ShimDeadlock' }, t2);
    assert.equal(getCondition(changed, 'Identified')?.lastTransitionTime, '2026-01-01T00:05:00Z');
    assert.equal(getCondition(first, 'Identified')?.reason, 'NoDiagnoserYet', 'input not mutated');
  });

  test('other conditions are kept in place', () => {
    let conditions = setCondition([], { type: 'InformationCollected', status: 'True' }, t1);
    conditions = setCondition(conditions, { type: 'Identified', status: 'True' }, t2);
    conditions = setCondition(conditions, { type: 'InformationCollected', status: 'False' }, t2);
    assert.deepEqual(conditions.map((c) => [c.type, c.status]), [['InformationCollected', 'False'], ['Identified', 'True']]);
  });
});
