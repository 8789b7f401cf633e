import { KmqError } from '../lib/errors.js';
import type { Condition } from './api/v1alpha1/index.js';

/** The condition types every kmq kind reports. */
export const ConditionType = { Ready: 'Ready', Degraded: 'Degraded' } as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

/** A condition to set: what it says now, without the bookkeeping fields. */
export interface ConditionUpdate {
  type: string;
  status: Condition['status'];
  /** CamelCase, stable for programs. */
  reason: string;
  message: string;
}

/**
 * The conditions with `update` set, as a new array (the input is not changed).
 * `lastTransitionTime` moves to `now` only when the status changes; reason, message
 * and observedGeneration are always updated. Other types keep their place; a new
 * type is appended.
 */
export function setCondition(conditions: readonly Condition[] | undefined, update: ConditionUpdate, observedGeneration: number | undefined, now: Date): Condition[] {
  const list = conditions ?? [];
  const previous = list.find((c) => c.type === update.type);
  const next: Condition = {
    type: update.type,
    status: update.status,
    ...(observedGeneration === undefined ? {} : { observedGeneration }),
    lastTransitionTime: previous !== undefined && previous.status === update.status ? previous.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    reason: update.reason,
    message: update.message,
  };
  return previous === undefined ? [...list, next] : list.map((c) => (c === previous ? next : c));
}

/** The conditions without the one of `type`. */
export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Ready=True and no Degraded. */
export function markReady(conditions: readonly Condition[] | undefined, reason: string, message: string, observedGeneration: number | undefined, now: Date): Condition[] {
  return removeCondition(setCondition(conditions, { type: ConditionType.Ready, status: 'True', reason, message }, observedGeneration, now), ConditionType.Degraded);
}

/** Ready=False and Degraded=True, both with the same reason and message. */
export function markDegraded(conditions: readonly Condition[] | undefined, reason: string, message: string, observedGeneration: number | undefined, now: Date): Condition[] {
  const ready = setCondition(conditions, { type: ConditionType.Ready, status: 'False', reason, message }, observedGeneration, now);
  return setCondition(ready, { type: ConditionType.Degraded, status: 'True', reason, message }, observedGeneration, now);
}

/** True when the two condition lists say the same (order ignored); a status write can be skipped. */
export function sameConditions(a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  if (x.length !== y.length) return false;
  return x.every((c) => {
    const d = y.find((o) => o.type === c.type);
    return d !== undefined && d.status === c.status && d.reason === c.reason && d.message === c.message && d.observedGeneration === c.observedGeneration && d.lastTransitionTime === c.lastTransitionTime;
  });
}

const REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;

/**
 * The condition reason of an error: the `context.reason` of a KmqError when it has one
 * (operator/apply.ts sets it), else the error code in CamelCase (`BROKER_NOT_AVAILABLE`
 * → `BrokerNotAvailable`), else `Error`.
 */
export function reasonOf(err: unknown): string {
  if (err instanceof KmqError) {
    const r = err.context.reason;
    if (typeof r === 'string' && REASON.test(r)) return r;
    const camel = err.code
      .toLowerCase()
      .split('_')
      .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
      .join('');
    if (REASON.test(camel)) return camel;
  }
  return 'Error';
}
