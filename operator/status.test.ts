import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../lib/errors.js';
import type { Condition } from './api/v1alpha1/index.js';
import { findCondition, markDegraded, markReady, reasonOf, removeCondition, sameConditions, setCondition } from './status.js';

const t0 = new Date('2026-01-01T10:00:00.123Z');
const t1 = new Date('2026-01-01T11:00:00.000Z');

describe('setCondition', () => {
  it('adds a condition with lastTransitionTime in whole seconds and observedGeneration', () => {
    expect(setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Creating', message: 'creating' }, 1, t0)).toEqual([
      { type: 'Ready', status: 'False', observedGeneration: 1, lastTransitionTime: '2026-01-01T10:00:00Z', reason: 'Creating', message: 'creating' },
    ]);
  });

  it('keeps lastTransitionTime when the status does not change, updates reason, message and generation', () => {
    const a = setCondition([], { type: 'Ready', status: 'False', reason: 'Creating', message: 'm1' }, 1, t0);
    const b = setCondition(a, { type: 'Ready', status: 'False', reason: 'BrokerUnavailable', message: 'm2' }, 2, t1);
    expect(b).toEqual([{ type: 'Ready', status: 'False', observedGeneration: 2, lastTransitionTime: '2026-01-01T10:00:00Z', reason: 'BrokerUnavailable', message: 'm2' }]);
  });

  it('moves lastTransitionTime when the status changes', () => {
    const a = setCondition([], { type: 'Ready', status: 'False', reason: 'Creating', message: '' }, 1, t0);
    const b = setCondition(a, { type: 'Ready', status: 'True', reason: 'Ready', message: '' }, 1, t1);
    expect(b[0]!.lastTransitionTime).toBe('2026-01-01T11:00:00Z');
  });

  it('does not change its input and keeps the place of other conditions', () => {
    const input: Condition[] = [
      { type: 'Ready', status: 'True', lastTransitionTime: '2026-01-01T09:00:00Z', reason: 'Ready', message: '' },
      { type: 'Degraded', status: 'False', lastTransitionTime: '2026-01-01T09:00:00Z', reason: 'Fine', message: '' },
    ];
    const copy = structuredClone(input);
    const out = setCondition(input, { type: 'Ready', status: 'False', reason: 'Down', message: 'x' }, undefined, t0);
    expect(input).toEqual(copy);
    expect(out.map((c) => c.type)).toEqual(['Ready', 'Degraded']);
    expect(out[0]).not.toHaveProperty('observedGeneration');
    expect(out[1]).toBe(input[1]);
  });
});

describe('markReady / markDegraded', () => {
  it('degraded sets Ready=False and Degraded=True with the reason; ready clears Degraded', () => {
    const degraded = markDegraded(undefined, 'Forbidden', 'no permission', 4, t0);
    expect(findCondition(degraded, 'Ready')).toMatchObject({ status: 'False', reason: 'Forbidden', message: 'no permission', observedGeneration: 4 });
    expect(findCondition(degraded, 'Degraded')).toMatchObject({ status: 'True', reason: 'Forbidden' });
    const ready = markReady(degraded, 'BrokersReady', '3 of 3 brokers ready', 5, t1);
    expect(ready).toEqual([{ type: 'Ready', status: 'True', observedGeneration: 5, lastTransitionTime: '2026-01-01T11:00:00Z', reason: 'BrokersReady', message: '3 of 3 brokers ready' }]);
  });

  it('removeCondition drops one type', () => {
    expect(removeCondition(markDegraded([], 'X', '', 1, t0), 'Degraded').map((c) => c.type)).toEqual(['Ready']);
    expect(removeCondition(undefined, 'Ready')).toEqual([]);
  });
});

describe('sameConditions', () => {
  it('compares every field, not the order', () => {
    const a = markDegraded([], 'X', 'm', 1, t0);
    expect(sameConditions(a, [...a].reverse())).toBe(true);
    expect(sameConditions(a, markDegraded(a, 'X', 'm', 1, t1))).toBe(true);
    expect(sameConditions(a, markDegraded(a, 'X', 'm', 2, t0))).toBe(false);
    expect(sameConditions(a, markDegraded(a, 'Y', 'm', 1, t0))).toBe(false);
    expect(sameConditions(a, a.slice(1))).toBe(false);
    expect(sameConditions(undefined, [])).toBe(true);
  });
});

describe('reasonOf', () => {
  it('prefers context.reason, then the code in CamelCase, else Error', () => {
    expect(reasonOf(new KmqError(ErrorCode.Unknown, 'x', { reason: 'Conflict' }))).toBe('Conflict');
    expect(reasonOf(new KmqError(ErrorCode.BrokerNotAvailable, 'x'))).toBe('BrokerNotAvailable');
    expect(reasonOf(new KmqError(ErrorCode.Unknown, 'x', { reason: 'not a reason!' }))).toBe('Unknown');
    expect(reasonOf(new Error('plain'))).toBe('Error');
    expect(reasonOf('text')).toBe('Error');
  });
});
