import { describe, expect, it } from 'vitest';
import type { DLQPolicy, Subscription } from '../api/v1alpha1/index.js';
import type { AnyKmqObject, JsonPatchOp, KmqObjectClient } from './common/index.js';
import { DLQPolicyReconciler, subscriptionsUsing, validateDlqPolicy } from './dlq-policy.js';

const NOW = new Date('2026-03-01T10:00:00Z');

function policy(spec: DLQPolicy['spec'] = {}, status?: DLQPolicy['status']): DLQPolicy {
  return { apiVersion: 'kmq.dev/v1alpha1', kind: 'DLQPolicy', metadata: { name: 'standard', namespace: 'shop', generation: 3 }, spec, ...(status === undefined ? {} : { status }) };
}

function sub(name: string, dlqPolicy: string | undefined, dlqDepth?: number, namespace = 'shop'): Subscription {
  return {
    apiVersion: 'kmq.dev/v1alpha1',
    kind: 'Subscription',
    metadata: { name, namespace },
    spec: { topic: 'orders', ...(dlqPolicy === undefined ? {} : { dlqPolicy }) },
    ...(dlqDepth === undefined ? {} : { status: { dlqDepth } }),
  };
}

class FakeKube implements KmqObjectClient {
  readonly statuses: unknown[] = [];
  async patch(): Promise<void> {}
  async patchStatus(_plural: string, _obj: AnyKmqObject, ops: JsonPatchOp[]): Promise<void> {
    this.statuses.push(ops[0]?.value);
  }
  async namespaceTerminating(): Promise<boolean> {
    return false;
  }
}

describe('validateDlqPolicy', () => {
  it('accepts the defaults and a full valid policy', () => {
    expect(validateDlqPolicy({})).toEqual([]);
    expect(validateDlqPolicy({ maxAttempts: 3, backoff: { initial: '200ms', max: '30s', multiplier: 2, jitter: 0.2 }, handlerTimeout: '30s' })).toEqual([]);
  });

  it('names every field that is wrong', () => {
    const problems = validateDlqPolicy({ maxAttempts: 0, backoff: { initial: '1m', max: '10s', multiplier: 0.5, jitter: 2 }, handlerTimeout: 'soon' });
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).toMatch(/maxAttempts[\s\S]*backoff.initial \(1m\) must not be greater than backoff.max[\s\S]*multiplier[\s\S]*jitter[\s\S]*handlerTimeout/);
    expect(validateDlqPolicy({ handlerTimeout: '0s' })).toEqual(['handlerTimeout must be greater than 0']);
  });
});

describe('DLQPolicyReconciler', () => {
  it('counts the Subscriptions of its namespace that name it and sums their dead letters', async () => {
    const subs = [sub('billing', 'standard', 4), sub('audit', 'standard', 1), sub('emails', 'strict', 9), sub('plain', undefined), sub('billing', 'standard', 7, 'other')];
    expect(subscriptionsUsing(policy(), subs).map((s) => s.metadata.name)).toEqual(['billing', 'audit']);
    const kube = new FakeKube();
    const p = policy();
    const r = new DLQPolicyReconciler({ policies: { get: () => p }, subscriptions: { list: (ns) => subs.filter((s) => ns === undefined || s.metadata.namespace === ns) }, kube, now: () => NOW });
    await r.reconcile('shop/standard');
    expect(kube.statuses).toEqual([
      {
        subscriptions: 2,
        dlqDepth: 5,
        observedGeneration: 3,
        conditions: [{ type: 'Ready', status: 'True', reason: 'Valid', message: 'Valid; used by audit, billing', observedGeneration: 3, lastTransitionTime: '2026-03-01T10:00:00Z' }],
      },
    ]);
    // Nothing changed: nothing written.
    p.status = kube.statuses[0] as DLQPolicy['status'];
    await r.reconcile('shop/standard');
    expect(kube.statuses).toHaveLength(1);
  });

  it('an invalid policy is Degraded InvalidSpec with the problems in the message', async () => {
    const kube = new FakeKube();
    const r = new DLQPolicyReconciler({ policies: { get: () => policy({ maxAttempts: 0 }) }, subscriptions: { list: () => [] }, kube, now: () => NOW });
    await r.reconcile('shop/standard');
    const status = kube.statuses[0] as DLQPolicy['status'];
    expect(status?.subscriptions).toBe(0);
    expect(status?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'InvalidSpec', message: expect.stringContaining('maxAttempts') });
  });
});
