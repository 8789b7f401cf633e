import { describe, expect, it } from 'vitest';
import type { Admin, CommittedOffset } from '../../client/admin.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import type { BrokerCluster, DLQPolicy, Subscription, SubscriptionStatus } from '../api/v1alpha1/index.js';
import type { BrokerObjectContext } from './common/index.js';
import { SubscriptionHandler, deadLetterTopic, parseResetTarget, pendingReset, subscriptionMode, totalLag } from './subscription.js';

// Unit tests on a fake admin API; test/operator/operator.test.ts resets a real broker's group.

function sub(spec: Subscription['spec'], status?: SubscriptionStatus): Subscription {
  return { apiVersion: 'kmq.dev/v1alpha1', kind: 'Subscription', metadata: { name: 'billing', namespace: 'shop', uid: 'u1', generation: 1 }, spec, ...(status === undefined ? {} : { status }) };
}

function offset(partition: number, committed: number, end: number, lag: number): CommittedOffset {
  return { topic: 'shop.orders', partition, offset: committed, metadata: '', logEndOffset: end, lag };
}

/** A broker with one topic shop.orders (two partitions, 5 records each) and a group. */
class FakeAdmin {
  members = 0;
  committed = [5, 5];
  resets: Array<{ group: string; topic: string; strategy: string; value?: number }> = [];
  topics = new Set(['shop.orders']);
  deadLetterQueue: string | undefined;

  async listOffsets(topic: string, spec: 'earliest' | 'latest'): Promise<Map<number, number>> {
    if (!this.topics.has(topic)) throw new KmqError(ErrorCode.UnknownTopic, `Unknown topic ${topic}`);
    return new Map([[0, spec === 'latest' ? 5 : 0], [1, spec === 'latest' ? 5 : 0]]);
  }

  async describeGroup(group: string) {
    return { errorCode: 0, errorMessage: '', group, state: this.members > 0 ? 'Stable' : 'Empty', generation: 1, topics: [], members: Array.from({ length: this.members }, (_, i) => ({ memberId: `m${i}`, clientId: 'c', host: 'h', assignment: [], owned: [] })), offsets: [] };
  }

  async fetchOffsets(): Promise<CommittedOffset[]> {
    return this.committed.map((c, p) => offset(p, c, 5, c < 0 ? 5 : 5 - c));
  }

  async resetOffsets(group: string, topic: string, strategy: string, value?: number): Promise<CommittedOffset[]> {
    if (this.members > 0) throw new KmqError(ErrorCode.GroupNotEmpty, `Group ${group} still has members`);
    this.resets.push({ group, topic, strategy, ...(value === undefined ? {} : { value }) });
    this.committed = strategy === 'latest' ? [5, 5] : [0, 0];
    return [];
  }

  async describeQueue(name: string) {
    if (name === 'shop.emails-dead') return { name, config: undefined, depth: { ready: 4, inFlight: 1, delayed: 2 }, consumers: 0, redeliveries: 0, deadLettered: 0, logStartOffset: 0, logEndOffset: 7 };
    if (name !== 'shop.emails') throw new KmqError(ErrorCode.UnknownQueue, `Unknown queue ${name}`);
    const config = this.deadLetterQueue === undefined ? undefined : { deadLetterQueue: this.deadLetterQueue };
    return { name, config, depth: { ready: 7, inFlight: 2, delayed: 0 }, consumers: 3, redeliveries: 0, deadLettered: 0, logStartOffset: 0, logEndOffset: 9 };
  }
}

function setup(options: { stored?: SubscriptionStatus; policies?: string[] } = {}) {
  const admin = new FakeAdmin();
  const policies = new Set(options.policies ?? ['standard']);
  const handler = new SubscriptionHandler({
    dlqPolicies: { get: (key) => (policies.has(key.split('/')[1]!) ? ({} as DLQPolicy) : undefined) },
    readStatus: async () => options.stored,
  });
  const ctx = (s: Subscription): BrokerObjectContext<Subscription> => ({
    obj: s,
    brokerName: 'shop.billing',
    cluster: { ok: true, ref: { namespace: 'shop', name: 'main' }, cluster: {} as BrokerCluster },
    admin: admin as unknown as Admin,
    log: silentLogger(),
    signal: new AbortController().signal,
  });
  return { admin, handler, ctx };
}

describe('Subscription helpers', () => {
  it('parses reset targets: earliest, latest and RFC 3339 timestamps only', () => {
    expect(parseResetTarget('earliest')).toEqual({ strategy: 'earliest' });
    expect(parseResetTarget('latest')).toEqual({ strategy: 'latest' });
    expect(parseResetTarget('2026-01-31T00:00:00Z')).toEqual({ strategy: 'timestamp', value: Date.parse('2026-01-31T00:00:00Z') });
    expect(parseResetTarget('2026-01-31T01:00:00.5+01:00')).toEqual({ strategy: 'timestamp', value: Date.parse('2026-01-31T00:00:00.5Z') });
    for (const bad of ['', 'yesterday', '2026-01-31', '12345', '2026-13-45T99:00:00Z']) expect(parseResetTarget(bad)).toBeUndefined();
  });

  it('a reset is pending only for a requestId not applied last', () => {
    const s = sub({ topic: 'orders', reset: { to: 'earliest', requestId: 'r1' } });
    expect(pendingReset(s, undefined)).toEqual({ requestId: 'r1', to: 'earliest' });
    expect(pendingReset(s, 'r0')).toEqual({ requestId: 'r1', to: 'earliest' });
    expect(pendingReset(s, 'r1')).toBeUndefined();
    expect(pendingReset(sub({ topic: 'orders' }), 'r1')).toBeUndefined();
  });

  it('lag counts uncommitted partitions from where the group starts', () => {
    const offsets = [offset(0, 3, 10, 7), offset(1, -1, 10, 10), offset(2, 0, -1, -1)];
    expect(totalLag(offsets, 'earliest')).toBe(17);
    expect(totalLag(offsets, 'latest')).toBe(7);
  });

  it('mode and dead-letter topic follow the sidecar defaults', () => {
    expect(subscriptionMode(sub({ topic: 'orders' }))).toBe('ordered');
    expect(subscriptionMode(sub({ queue: 'emails' }))).toBe('shared');
    expect(subscriptionMode(sub({ topic: 'orders', mode: 'shared' }))).toBe('shared');
    expect(deadLetterTopic(sub({ topic: 'orders' }))).toBe('shop.billing.dlq');
    expect(deadLetterTopic(sub({ topic: 'orders', deadLetterTopic: 'orders-dead' }))).toBe('shop.orders-dead');
  });
});

describe('SubscriptionHandler', () => {
  it('reports lag, consumers and DLQ depth of an ordered subscription', async () => {
    const { handler, ctx, admin } = setup();
    admin.committed = [2, -1];
    const out = await handler.ensure(ctx(sub({ topic: 'orders', dlqPolicy: 'standard' })));
    expect(out.problem).toBeUndefined();
    expect(out.status).toEqual({ mode: 'ordered', brokerGroup: 'shop.billing', lag: 8, consumers: 0, dlqDepth: 0 });
  });

  it('reports queue depth and consumers of a queue subscription, and the depth of its dead-letter queue', async () => {
    const { handler, ctx, admin } = setup();
    const out = await handler.ensure(ctx(sub({ queue: 'emails' })));
    expect(out.status).toEqual({ mode: 'shared', brokerGroup: 'shop.billing', lag: 7, consumers: 3 });
    admin.deadLetterQueue = 'shop.emails-dead';
    expect((await handler.ensure(ctx(sub({ queue: 'emails' })))).status).toEqual({ mode: 'shared', brokerGroup: 'shop.billing', lag: 7, consumers: 3, dlqDepth: 7 });
    admin.deadLetterQueue = 'shop.gone';
    expect((await handler.ensure(ctx(sub({ queue: 'emails' })))).status.dlqDepth).toBe(0);
  });

  it('a missing topic, queue or DLQPolicy is a condition, not an error', async () => {
    const { handler, ctx, admin } = setup();
    admin.topics.clear();
    expect((await handler.ensure(ctx(sub({ topic: 'orders' })))).problem).toMatchObject({ reason: 'SourceNotFound', degraded: false });
    expect((await handler.ensure(ctx(sub({ queue: 'other' })))).problem).toMatchObject({ reason: 'SourceNotFound' });
    admin.topics.add('shop.orders');
    expect((await handler.ensure(ctx(sub({ topic: 'orders', dlqPolicy: 'missing' })))).problem).toMatchObject({ reason: 'DLQPolicyNotFound', degraded: true });
  });

  it('applies a reset once per requestId and records it in lastReset', async () => {
    const { handler, ctx, admin } = setup();
    const s = sub({ topic: 'orders', reset: { to: 'earliest', requestId: 'r1' } });
    const first = await handler.ensure(ctx(s));
    expect(admin.resets).toEqual([{ group: 'shop.billing', topic: 'shop.orders', strategy: 'earliest' }]);
    expect(first.status.lastReset).toMatchObject({ requestId: 'r1', to: 'earliest' });
    expect(first.status.lag).toBe(10);

    // The status was written: the next pass sees lastReset r1 and resets nothing.
    admin.committed = [5, 5];
    const second = await handler.ensure(ctx(sub(s.spec, { lastReset: first.status.lastReset! })));
    expect(admin.resets).toHaveLength(1);
    expect(second.status.lastReset).toEqual(first.status.lastReset);

    // A new requestId, to a timestamp.
    await handler.ensure(ctx(sub({ topic: 'orders', reset: { to: '2026-01-31T00:00:00Z', requestId: 'r2' } }, { lastReset: first.status.lastReset! })));
    expect(admin.resets[1]).toEqual({ group: 'shop.billing', topic: 'shop.orders', strategy: 'timestamp', value: Date.parse('2026-01-31T00:00:00Z') });
  });

  it('does not reset again when the cache has not seen its own status write yet', async () => {
    const { handler, ctx, admin } = setup();
    const s = sub({ topic: 'orders', reset: { to: 'earliest', requestId: 'r1' } });
    const first = await handler.ensure(ctx(s));
    // The same stale object (no lastReset) comes back: the reset this process applied is remembered.
    const again = await handler.ensure(ctx(structuredClone(s)));
    expect(admin.resets).toHaveLength(1);
    expect(again.status.lastReset).toEqual(first.status.lastReset);
  });

  it('asks the API server before resetting: another replica may have applied the requestId already', async () => {
    const stored = { lastReset: { requestId: 'r1', to: 'earliest', time: '2026-03-01T00:00:00Z' } };
    const { handler, ctx, admin } = setup({ stored });
    const out = await handler.ensure(ctx(sub({ topic: 'orders', reset: { to: 'earliest', requestId: 'r1' } })));
    expect(admin.resets).toEqual([]);
    expect(out.status.lastReset).toEqual(stored.lastReset);
  });

  it('waits while the group has members: Degraded GroupActive, retried soon, applied once they left', async () => {
    const { handler, ctx, admin } = setup();
    admin.members = 2;
    const s = sub({ topic: 'orders', reset: { to: 'latest', requestId: 'r1' } }, { lastReset: { requestId: 'r0', to: 'earliest', time: '2026-01-01T00:00:00Z' } });
    const waiting = await handler.ensure(ctx(s));
    expect(waiting.problem).toMatchObject({ reason: 'GroupActive', degraded: true });
    expect(waiting.problem?.message).toContain('2 members');
    expect(waiting.requeueAfterMs).toBeGreaterThan(0);
    expect(waiting.status.lastReset?.requestId).toBe('r0');
    expect(waiting.status.consumers).toBe(2);
    expect(admin.resets).toEqual([]);

    admin.members = 0;
    const done = await handler.ensure(ctx(s));
    expect(done.problem).toBeUndefined();
    expect(admin.resets).toEqual([{ group: 'shop.billing', topic: 'shop.orders', strategy: 'latest' }]);
    expect(done.status.lastReset?.requestId).toBe('r1');
  });

  it('an invalid reset target is Degraded InvalidReset and resets nothing', async () => {
    const { handler, ctx, admin } = setup();
    const out = await handler.ensure(ctx(sub({ topic: 'orders', reset: { to: 'yesterday', requestId: 'r1' } })));
    expect(out.problem).toMatchObject({ reason: 'InvalidReset', degraded: true });
    expect(admin.resets).toEqual([]);
  });
});
