import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { errorCodeToWire } from '../../protocol/error-codes.js';
import { ResetStrategy } from '../../protocol/gen/kmq/broker/v1/broker.js';
import type { TopicPartitions } from '../../protocol/gen/kmq/broker/v1/broker.js';
import { GroupCoordinator } from './group-coordinator.js';
import type { GroupCoordinatorOptions } from './coordinator-options.js';
import type { GroupStateStore } from './group-state-store.js';
import { decodeOffsetKey } from './offset-record.js';
import type { TopicView } from './topic-view.js';

/** The store interface over an array, as the compacted topic would hold it. */
class MemoryStore implements GroupStateStore {
  readonly records: Array<{ key: Buffer; value: Buffer | null }> = [];
  failNext = false;

  async append(key: Buffer, value: Buffer | null): Promise<void> {
    await Promise.resolve();
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    this.records.push({ key: Buffer.from(key), value: value === null ? null : Buffer.from(value) });
  }

  async *load(): AsyncIterable<{ key: Buffer; value: Buffer | null }> {
    for (const r of this.records) yield r;
  }
}

/** Topics whose partitions hold offsets [start, end), the record at offset o stamped o * 10 ms. */
class FakeTopics implements TopicView {
  readonly topics = new Map<string, { count: number; start: number; end: number }>();

  set(topic: string, count: number, start = 0, end = 100): this {
    this.topics.set(topic, { count, start, end });
    return this;
  }
  partitionCount(topic: string): number | undefined {
    return this.topics.get(topic)?.count;
  }
  logStartOffset(topic: string): number {
    return this.topics.get(topic)?.start ?? 0;
  }
  logEndOffset(topic: string): number {
    return this.topics.get(topic)?.end ?? 0;
  }
  offsetForTimestamp(topic: string, _p: number, ts: number): number {
    const t = this.topics.get(topic);
    if (t === undefined) return 0;
    return Math.min(t.end, Math.max(t.start, Math.ceil(ts / 10)));
  }
}

interface Harness {
  coordinator: GroupCoordinator;
  store: MemoryStore;
  topics: FakeTopics;
  now: { t: number };
}

async function harness(opts: { topics?: FakeTopics; store?: MemoryStore; options?: GroupCoordinatorOptions } = {}): Promise<Harness> {
  const now = { t: 1_000_000 };
  const topics = opts.topics ?? new FakeTopics().set('orders', 6);
  const store = opts.store ?? new MemoryStore();
  let n = 0;
  const coordinator = new GroupCoordinator({
    topics,
    store,
    clock: () => now.t,
    randomId: () => `member-${++n}`,
    options: opts.options,
  });
  await coordinator.start();
  return { coordinator, store, topics, now };
}

function join(c: GroupCoordinator, group: string, topics: string[] = ['orders'], memberId = '', sessionTimeoutMs = 3000) {
  return c.join({ group, memberId, topics, sessionTimeoutMs, clientId: 'test' }, 'host-1');
}

function parts(assignment: TopicPartitions[], topic = 'orders'): number[] {
  return assignment.find((tp) => tp.topic === topic)?.partitions ?? [];
}

function tp(partitions: number[], topic = 'orders'): TopicPartitions[] {
  return [{ topic, partitions }];
}

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof KmqError ? err.code : 'not a KmqError';
  }
  return undefined;
}

async function asyncErrorCode(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
  } catch (err) {
    return err instanceof KmqError ? err.code : 'not a KmqError';
  }
  return undefined;
}

function commit(c: GroupCoordinator, group: string, memberId: string, offsets: Array<[number, number]>, topic = 'orders') {
  return c.commitOffsets({ group, memberId, offsets: offsets.map(([partition, offset]) => ({ topic, partition, offset, metadata: 'm' })) });
}

describe('GroupCoordinator membership', () => {
  it('gives the first member every partition and a heartbeat interval of a third of its session', async () => {
    const { coordinator } = await harness();
    const res = join(coordinator, 'g');
    expect(res.memberId).toBe('member-1');
    expect(res.generation).toBe(1);
    expect(parts(res.assignment)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(res.heartbeatIntervalMs).toBe(1000);
    expect(coordinator.describeGroup({ group: 'g' }).state).toBe('Stable');
  });

  it('never hands out a heartbeat interval under 100 ms', async () => {
    const { coordinator } = await harness({ options: { minSessionTimeoutMs: 100 } });
    expect(join(coordinator, 'g', ['orders'], '', 150).heartbeatIntervalMs).toBe(100);
  });

  it('refuses bad joins with a clear error', async () => {
    const { coordinator } = await harness();
    expect(errorCode(() => join(coordinator, ''))).toBe(ErrorCode.InvalidRequest);
    expect(errorCode(() => join(coordinator, 'g', ['orders'], '', 10))).toBe(ErrorCode.InvalidRequest);
    expect(errorCode(() => join(coordinator, 'g', ['orders'], 'made-up'))).toBe(ErrorCode.UnknownMember);
    expect(errorCode(() => coordinator.heartbeat({ group: 'g', memberId: 'made-up', owned: [] }))).toBe(ErrorCode.UnknownMember);
  });

  it('refuses requests until the offsets are loaded', () => {
    const c = new GroupCoordinator({ topics: new FakeTopics(), store: new MemoryStore() });
    const err = (() => {
      try {
        join(c, 'g');
      } catch (e) {
        return e as KmqError;
      }
      return undefined;
    })();
    expect(err?.code).toBe(ErrorCode.BrokerNotAvailable);
    expect(err?.retriable).toBe(true);
  });

  it('hands a partition to its new owner only after the old owner stops reporting it', async () => {
    const { coordinator } = await harness();
    const a = join(coordinator, 'g');
    coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: a.assignment });

    const b = join(coordinator, 'g');
    expect(b.generation).toBe(2);
    expect(parts(b.assignment)).toEqual([]);
    expect(coordinator.describeGroup({ group: 'g' }).state).toBe('Reconciling');

    // A learns of the revocation but still consumes everything.
    const a2 = coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: tp([0, 1, 2, 3, 4, 5]) });
    expect(parts(a2.assignment)).toEqual([0, 1, 2]);
    expect(parts(coordinator.heartbeat({ group: 'g', memberId: b.memberId, owned: [] }).assignment)).toEqual([]);

    // A has committed and released 3 and 4, but still consumes 5.
    coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: tp([0, 1, 2, 5]) });
    expect(parts(coordinator.heartbeat({ group: 'g', memberId: b.memberId, owned: [] }).assignment)).toEqual([3, 4]);

    coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: tp([0, 1, 2]) });
    const b2 = coordinator.heartbeat({ group: 'g', memberId: b.memberId, owned: tp([3, 4]) });
    expect(parts(b2.assignment)).toEqual([3, 4, 5]);
    expect(b2.generation).toBe(2);
    coordinator.heartbeat({ group: 'g', memberId: b.memberId, owned: tp([3, 4, 5]) });
    expect(coordinator.describeGroup({ group: 'g' }).state).toBe('Stable');
  });

  it('keeps every partition with its owner when balance allows, and balances per topic', async () => {
    const topics = new FakeTopics().set('orders', 10);
    const { coordinator } = await harness({ topics });
    const ids = [join(coordinator, 'g'), join(coordinator, 'g'), join(coordinator, 'g')].map((r) => r.memberId);
    const settle = () => {
      for (let round = 0; round < 3; round++) {
        for (const id of ids) {
          const current = coordinator.describeGroup({ group: 'g' }).members.find((m) => m.memberId === id);
          coordinator.heartbeat({ group: 'g', memberId: id, owned: current?.assignment ?? [] });
        }
      }
    };
    settle();
    const before = new Map(coordinator.describeGroup({ group: 'g' }).members.map((m) => [m.memberId, parts(m.assignment)]));
    expect([...before.values()].map((p) => p.length).sort()).toEqual([3, 3, 4]);

    coordinator.leave({ group: 'g', memberId: ids[2] as string });
    ids.pop();
    settle();
    const after = coordinator.describeGroup({ group: 'g' });
    expect(after.state).toBe('Stable');
    for (const m of after.members) {
      expect(parts(m.assignment).length).toBe(5);
      for (const p of before.get(m.memberId) ?? []) expect(parts(m.assignment)).toContain(p);
    }
  });

  it('expires a silent member: generation bump, its partitions free at once, UnknownMember afterwards', async () => {
    const { coordinator, now } = await harness();
    const a = join(coordinator, 'g');
    coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: a.assignment });
    const b = join(coordinator, 'g');
    coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: a.assignment });
    expect(parts(coordinator.heartbeat({ group: 'g', memberId: b.memberId, owned: [] }).assignment)).toEqual([]);

    // B keeps its session alive; A falls silent.
    now.t += 2000;
    coordinator.heartbeat({ group: 'g', memberId: b.memberId, owned: [] });
    now.t += 999;
    coordinator.tick();
    expect(coordinator.describeGroup({ group: 'g' }).members).toHaveLength(2);
    now.t += 1;
    coordinator.tick();
    const d = coordinator.describeGroup({ group: 'g' });
    expect(d.members.map((m) => m.memberId)).toEqual([b.memberId]);
    expect(d.generation).toBe(3);

    const b2 = coordinator.heartbeat({ group: 'g', memberId: b.memberId, owned: [] });
    expect(parts(b2.assignment)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(errorCode(() => coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: a.assignment }))).toBe(ErrorCode.UnknownMember);
  });

  it('expires lazily on a request even when tick is never called', async () => {
    const { coordinator, now } = await harness();
    const a = join(coordinator, 'g');
    now.t += 3000;
    expect(errorCode(() => coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: [] }))).toBe(ErrorCode.UnknownMember);
    expect(coordinator.listGroups().groups).toEqual([]);
  });

  it('frees a leaving member partitions at once', async () => {
    const { coordinator } = await harness();
    const a = join(coordinator, 'g');
    coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: a.assignment });
    const b = join(coordinator, 'g');
    coordinator.leave({ group: 'g', memberId: a.memberId });
    const b2 = coordinator.heartbeat({ group: 'g', memberId: b.memberId, owned: [] });
    expect(parts(b2.assignment)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(b2.generation).toBe(3);
    expect(errorCode(() => coordinator.leave({ group: 'g', memberId: a.memberId }))).toBe(ErrorCode.UnknownMember);
  });

  it('re-targets when a subscribed topic appears or grows', async () => {
    const topics = new FakeTopics();
    const { coordinator } = await harness({ topics });
    const a = join(coordinator, 'g', ['later']);
    expect(a.assignment).toEqual([]);
    topics.set('later', 2);
    const a2 = coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: [] });
    expect(a2.generation).toBe(2);
    expect(parts(a2.assignment, 'later')).toEqual([0, 1]);
    topics.set('later', 3);
    expect(parts(coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: a2.assignment }).assignment, 'later')).toEqual([0, 1, 2]);
  });

  it('lists groups with their state', async () => {
    const { coordinator } = await harness();
    const a = join(coordinator, 'busy');
    coordinator.heartbeat({ group: 'busy', memberId: a.memberId, owned: a.assignment });
    join(coordinator, 'busy');
    join(coordinator, 'calm');
    await commit(coordinator, 'idle', '', [[0, 1]]);
    expect(coordinator.listGroups().groups).toEqual([
      { group: 'busy', state: 'Reconciling', members: 2 },
      { group: 'calm', state: 'Stable', members: 1 },
      { group: 'idle', state: 'Empty', members: 0 },
    ]);
    expect(coordinator.describeGroup({ group: 'nobody' }).state).toBe('Dead');
  });
});

describe('GroupCoordinator offsets', () => {
  it('accepts commits only for partitions the member holds, including ones being handed over', async () => {
    const { coordinator } = await harness();
    const a = join(coordinator, 'g');
    coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: a.assignment });
    const b = join(coordinator, 'g');
    coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: a.assignment });

    // Partition 5 is revoked from A but not released: A commits its final position.
    const res = await commit(coordinator, 'g', a.memberId, [
      [0, 10],
      [5, 50],
    ]);
    expect(res.results.map((r) => r.errorCode)).toEqual([0, 0]);
    const byB = await commit(coordinator, 'g', b.memberId, [[5, 99]]);
    expect(byB.results[0]?.errorCode).toBe(errorCodeToWire(ErrorCode.NotPartitionOwner));

    // A releases 3..5; now B owns them and A does not.
    coordinator.heartbeat({ group: 'g', memberId: a.memberId, owned: tp([0, 1, 2]) });
    coordinator.heartbeat({ group: 'g', memberId: b.memberId, owned: [] });
    expect((await commit(coordinator, 'g', a.memberId, [[5, 51]])).results[0]?.errorCode).toBe(errorCodeToWire(ErrorCode.NotPartitionOwner));
    expect((await commit(coordinator, 'g', b.memberId, [[5, 60]])).results[0]?.errorCode).toBe(0);
    expect(coordinator.fetchOffsets({ group: 'g', partitions: tp([0, 5]) }).offsets.map((o) => o.offset)).toEqual([10, 60]);
  });

  it('accepts a commit without a member id only while the group has no members', async () => {
    const { coordinator } = await harness();
    expect((await commit(coordinator, 'g', '', [[1, 7]])).results[0]?.errorCode).toBe(0);
    const a = join(coordinator, 'g');
    expect((await commit(coordinator, 'g', '', [[1, 8]])).results[0]?.errorCode).toBe(errorCodeToWire(ErrorCode.NotPartitionOwner));
    coordinator.leave({ group: 'g', memberId: a.memberId });
    expect((await commit(coordinator, 'g', '', [[1, 9]])).results[0]?.errorCode).toBe(0);
    expect(coordinator.fetchOffsets({ group: 'g', partitions: [] }).offsets[0]?.offset).toBe(9);
  });

  it('reports per-partition errors for unknown partitions and bad offsets, and UnknownMember for the request', async () => {
    const { coordinator } = await harness();
    const res = await coordinator.commitOffsets({
      group: 'g',
      memberId: '',
      offsets: [
        { topic: 'nope', partition: 0, offset: 1, metadata: '' },
        { topic: 'orders', partition: 6, offset: 1, metadata: '' },
        { topic: 'orders', partition: 0, offset: -1, metadata: '' },
        { topic: 'orders', partition: 1, offset: 1, metadata: 'x'.repeat(5000) },
        { topic: 'orders', partition: 2, offset: 1, metadata: '' },
      ],
    });
    expect(res.results.map((r) => r.errorCode)).toEqual([
      errorCodeToWire(ErrorCode.UnknownTopic),
      errorCodeToWire(ErrorCode.UnknownPartition),
      errorCodeToWire(ErrorCode.InvalidRequest),
      errorCodeToWire(ErrorCode.InvalidRequest),
      0,
    ]);
    expect(res.errorCode).toBe(0);
    expect(await asyncErrorCode(() => commit(coordinator, 'g', 'ghost', [[0, 1]]))).toBe(ErrorCode.UnknownMember);
  });

  it('turns a failed store append into a retriable StorageError and keeps the previous offset', async () => {
    const { coordinator, store } = await harness();
    await commit(coordinator, 'g', '', [[0, 5]]);
    store.failNext = true;
    const err = await commit(coordinator, 'g', '', [[0, 6]]).catch((e: unknown) => e as KmqError);
    expect(err).toBeInstanceOf(KmqError);
    expect((err as KmqError).code).toBe(ErrorCode.StorageError);
    expect((err as KmqError).retriable).toBe(true);
    expect(coordinator.fetchOffsets({ group: 'g', partitions: [] }).offsets[0]?.offset).toBe(5);
  });

  it('keeps the last issued commit when concurrent commits land', async () => {
    const { coordinator } = await harness();
    await Promise.all([commit(coordinator, 'g', '', [[0, 1]]), commit(coordinator, 'g', '', [[0, 2]]), commit(coordinator, 'g', '', [[0, 3]])]);
    expect(coordinator.fetchOffsets({ group: 'g', partitions: [] }).offsets[0]?.offset).toBe(3);
  });

  it('fetches and describes offsets with log end and lag', async () => {
    const topics = new FakeTopics().set('orders', 3, 20, 100);
    const { coordinator } = await harness({ topics });
    await commit(coordinator, 'g', '', [
      [0, 40],
      [1, 5],
    ]);
    const fetched = coordinator.fetchOffsets({ group: 'g', partitions: [{ topic: 'orders', partitions: [] }] }).offsets;
    expect(fetched).toEqual([
      { topic: 'orders', partition: 0, offset: 40, metadata: 'm', logEndOffset: 100, lag: 60 },
      { topic: 'orders', partition: 1, offset: 5, metadata: 'm', logEndOffset: 100, lag: 80 },
      { topic: 'orders', partition: 2, offset: -1, metadata: '', logEndOffset: 100, lag: 80 },
    ]);
    expect(coordinator.fetchOffsets({ group: 'g', partitions: [] }).offsets).toHaveLength(2);

    join(coordinator, 'g');
    const d = coordinator.describeGroup({ group: 'g' });
    expect(d.topics).toEqual(['orders']);
    expect(d.members[0]?.host).toBe('host-1');
    expect(d.offsets.map((o) => [o.partition, o.offset, o.lag])).toEqual([
      [0, 40, 60],
      [1, 5, 80],
      [2, -1, 80],
    ]);
    expect(coordinator.lagSnapshot()).toEqual([
      { group: 'g', topic: 'orders', partition: 0, lag: 60 },
      { group: 'g', topic: 'orders', partition: 1, lag: 80 },
      { group: 'g', topic: 'orders', partition: 2, lag: 80 },
    ]);
  });

  it('resets offsets by each strategy, clamps, and writes nothing on a dry run', async () => {
    const topics = new FakeTopics().set('orders', 2, 20, 100);
    const { coordinator, store } = await harness({ topics });
    const reset = (strategy: ResetStrategy, value: number, dryRun = false, partitions: number[] = []) =>
      coordinator.resetOffsets({ group: 'g', topic: 'orders', partitions, strategy, value, dryRun });
    const offsetsOf = (r: Awaited<ReturnType<typeof reset>>) => r.offsets.map((o) => o.offset);

    expect(offsetsOf(await reset(ResetStrategy.RESET_EARLIEST, 0))).toEqual([20, 20]);
    expect(offsetsOf(await reset(ResetStrategy.RESET_LATEST, 0))).toEqual([100, 100]);
    expect(offsetsOf(await reset(ResetStrategy.RESET_OFFSET, 50))).toEqual([50, 50]);
    expect(offsetsOf(await reset(ResetStrategy.RESET_OFFSET, 5))).toEqual([20, 20]);
    expect(offsetsOf(await reset(ResetStrategy.RESET_OFFSET, 500))).toEqual([100, 100]);
    expect(offsetsOf(await reset(ResetStrategy.RESET_TIMESTAMP, 301))).toEqual([31, 31]);
    expect(offsetsOf(await reset(ResetStrategy.RESET_OFFSET, 42, false, [1]))).toEqual([42]);

    const written = store.records.length;
    const dry = await reset(ResetStrategy.RESET_EARLIEST, 0, true);
    expect(offsetsOf(dry)).toEqual([20, 20]);
    expect(dry.offsets[0]?.lag).toBe(80);
    expect(store.records.length).toBe(written);
    expect(coordinator.fetchOffsets({ group: 'g', partitions: [] }).offsets.map((o) => o.offset)).toEqual([31, 42]);

    expect(await asyncErrorCode(() => reset(ResetStrategy.RESET_EARLIEST, 0, false, [2]))).toBe(ErrorCode.UnknownPartition);
    expect(await asyncErrorCode(() => coordinator.resetOffsets({ group: 'g', topic: 'nope', partitions: [], strategy: ResetStrategy.RESET_EARLIEST, value: 0, dryRun: false }))).toBe(
      ErrorCode.UnknownTopic,
    );
    join(coordinator, 'g');
    expect(await asyncErrorCode(() => reset(ResetStrategy.RESET_EARLIEST, 0))).toBe(ErrorCode.GroupNotEmpty);
    expect(await asyncErrorCode(() => reset(ResetStrategy.RESET_EARLIEST, 0, true))).toBe(ErrorCode.GroupNotEmpty);
  });

  it('deletes only empty groups, writing tombstones', async () => {
    const { coordinator, store } = await harness();
    expect(await asyncErrorCode(() => coordinator.deleteGroup({ group: 'g' }))).toBe(ErrorCode.UnknownGroup);
    const a = join(coordinator, 'g');
    await commit(coordinator, 'g', '', []);
    expect(await asyncErrorCode(() => coordinator.deleteGroup({ group: 'g' }))).toBe(ErrorCode.GroupNotEmpty);
    coordinator.leave({ group: 'g', memberId: a.memberId });
    await commit(coordinator, 'g', '', [
      [0, 1],
      [1, 2],
    ]);
    await coordinator.deleteGroup({ group: 'g' });
    expect(store.records.filter((r) => r.value === null).map((r) => decodeOffsetKey(r.key).partition)).toEqual([0, 1]);
    expect(coordinator.listGroups().groups).toEqual([]);
    expect(coordinator.fetchOffsets({ group: 'g', partitions: [] }).offsets).toEqual([]);
  });

  it('sees committed offsets and deletions after a restart over the same store', async () => {
    const store = new MemoryStore();
    const topics = new FakeTopics().set('orders', 4);
    const first = await harness({ store, topics });
    await commit(first.coordinator, 'kept', '', [
      [0, 10],
      [1, 11],
    ]);
    await commit(first.coordinator, 'kept', '', [[0, 12]]);
    await commit(first.coordinator, 'gone', '', [[2, 3]]);
    await first.coordinator.deleteGroup({ group: 'gone' });
    const a = join(first.coordinator, 'kept');

    const second = await harness({ store, topics });
    expect(second.coordinator.fetchOffsets({ group: 'kept', partitions: [] }).offsets.map((o) => [o.partition, o.offset, o.metadata])).toEqual([
      [0, 12, 'm'],
      [1, 11, 'm'],
    ]);
    expect(second.coordinator.listGroups().groups).toEqual([{ group: 'kept', state: 'Empty', members: 0 }]);
    // Membership is not persisted: the old member rejoins.
    expect(errorCode(() => second.coordinator.heartbeat({ group: 'kept', memberId: a.memberId, owned: [] }))).toBe(ErrorCode.UnknownMember);
  });

  it('skips records of other key versions on load', async () => {
    const store = new MemoryStore();
    store.records.push({ key: Buffer.from([0, 7, 1, 2, 3]), value: Buffer.from('later format') });
    const { coordinator } = await harness({ store });
    expect(coordinator.listGroups().groups).toEqual([]);
  });
});

/**
 * Clients that follow the protocol: report what they consume, start only partitions
 * their latest response assigned, keep consuming revoked ones for a while, and stop
 * everything once their session may have run out.
 */
describe('GroupCoordinator cooperative handover (property)', () => {
  const SESSION = 3000;
  const SLOTS = 5;
  const topicCounts: Array<[string, number]> = [
    ['a', 5],
    ['b', 3],
  ];

  type Action =
    | { kind: 'join'; slot: number; topics: string[] }
    | { kind: 'heartbeat'; slot: number; drop: number; start: number; adopt: number }
    | { kind: 'leave'; slot: number }
    | { kind: 'commit'; slot: number; pick: number; simple: boolean }
    | { kind: 'advance'; ms: number }
    | { kind: 'tick' };

  const slot = fc.integer({ min: 0, max: SLOTS - 1 });
  const mask = fc.integer({ min: 0, max: 255 });
  const action: fc.Arbitrary<Action> = fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('join' as const), slot, topics: fc.subarray(['a', 'b'], { minLength: 1 }) }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('heartbeat' as const), slot, drop: mask, start: mask, adopt: mask }), weight: 6 },
    { arbitrary: fc.record({ kind: fc.constant('leave' as const), slot }), weight: 1 },
    { arbitrary: fc.record({ kind: fc.constant('commit' as const), slot, pick: mask, simple: fc.boolean() }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: SESSION + 500 }) }), weight: 1 },
    { arbitrary: fc.constant({ kind: 'tick' as const }), weight: 1 },
  );

  interface Client {
    memberId: string;
    topics: string[];
    lastContact: number;
    assignment: Set<string>;
    consuming: Set<string>;
  }

  const key = (topic: string, p: number) => `${topic}:${p}`;
  const toSet = (tps: TopicPartitions[]) => new Set(tps.flatMap((t) => t.partitions.map((p) => key(t.topic, p))));
  const toWire = (set: Set<string>): TopicPartitions[] => {
    const by = new Map<string, number[]>();
    for (const k of set) {
      const [t, p] = k.split(':') as [string, string];
      by.set(t, [...(by.get(t) ?? []), Number(p)]);
    }
    return [...by].map(([topic, partitions]) => ({ topic, partitions }));
  };
  const bits = <T>(items: Iterable<T>, m: number) => [...items].filter((_, i) => ((m >> i % 8) & 1) === 1);

  it('never lets two members consume a partition, and converges to one owner per partition', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action, { maxLength: 60 }), async (actions) => {
        const topics = new FakeTopics();
        for (const [t, n] of topicCounts) topics.set(t, n);
        const { coordinator, now } = await harness({ topics });
        const clients: Array<Client | undefined> = new Array(SLOTS).fill(undefined);

        const failed = (c: Client, err: unknown) => {
          expect((err as KmqError).code).toBe(ErrorCode.UnknownMember);
          c.consuming.clear();
          c.assignment.clear();
          c.memberId = '';
        };
        const doJoin = (i: number, topicList: string[]) => {
          const c = clients[i] ?? { memberId: '', topics: topicList, lastContact: 0, assignment: new Set<string>(), consuming: new Set<string>() };
          clients[i] = c;
          c.topics = topicList;
          try {
            const res = coordinator.join({ group: 'g', memberId: c.memberId, topics: topicList, sessionTimeoutMs: SESSION, clientId: `c${i}` });
            c.memberId = res.memberId;
            c.lastContact = now.t;
            c.assignment = toSet(res.assignment);
          } catch (err) {
            failed(c, err);
          }
        };
        const doHeartbeat = (c: Client, drop: number, start: number, adopt: number) => {
          // Before reporting: stop some revoked partitions, lazily start some assigned ones.
          for (const k of bits([...c.consuming].filter((k) => !c.assignment.has(k)), drop)) c.consuming.delete(k);
          for (const k of bits(c.assignment, start)) c.consuming.add(k);
          try {
            const res = coordinator.heartbeat({ group: 'g', memberId: c.memberId, owned: toWire(c.consuming) });
            c.lastContact = now.t;
            c.assignment = toSet(res.assignment);
            for (const k of bits(c.assignment, adopt)) c.consuming.add(k);
          } catch (err) {
            failed(c, err);
          }
        };
        const checkExclusive = () => {
          const consumers = new Map<string, number>();
          for (const c of clients) for (const k of c?.consuming ?? []) consumers.set(k, (consumers.get(k) ?? 0) + 1);
          for (const [k, n] of consumers) expect(n, `consumers of ${k}`).toBe(1);
          const claimed = new Map<string, number>();
          for (const m of coordinator.describeGroup({ group: 'g' }).members) {
            for (const k of new Set([...toSet(m.assignment), ...toSet(m.owned)])) claimed.set(k, (claimed.get(k) ?? 0) + 1);
          }
          for (const [k, n] of claimed) expect(n, `members assigned or reporting ${k}`).toBe(1);
        };

        for (const a of actions) {
          const c = a.kind === 'advance' || a.kind === 'tick' ? undefined : clients[a.slot];
          switch (a.kind) {
            case 'join':
              doJoin(a.slot, a.topics);
              break;
            case 'heartbeat':
              if (c?.memberId) doHeartbeat(c, a.drop, a.start, a.adopt);
              break;
            case 'leave':
              if (c?.memberId) {
                c.consuming.clear();
                try {
                  coordinator.leave({ group: 'g', memberId: c.memberId });
                } catch (err) {
                  expect((err as KmqError).code).toBe(ErrorCode.UnknownMember);
                }
                c.memberId = '';
                c.assignment.clear();
              }
              break;
            case 'commit': {
              const memberId = a.simple || c === undefined ? '' : c.memberId;
              const picked = bits(
                topicCounts.flatMap(([t, n]) => Array.from({ length: n }, (_, p) => key(t, p))),
                a.pick,
              );
              const hasMembers = coordinator.describeGroup({ group: 'g' }).members.length > 0;
              let res;
              try {
                res = await coordinator.commitOffsets({
                  group: 'g',
                  memberId,
                  offsets: picked.map((k) => ({ topic: k.split(':')[0] as string, partition: Number(k.split(':')[1]), offset: 1, metadata: '' })),
                });
              } catch (err) {
                if (c !== undefined) failed(c, err);
                break;
              }
              res.results.forEach((r, idx) => {
                if (r.errorCode !== 0) return;
                if (memberId === '') {
                  expect(hasMembers).toBe(false);
                  return;
                }
                // An accepted commit comes from the only member that may consume the partition.
                const k = picked[idx] as string;
                for (const other of clients) if (other !== c && other !== undefined) expect(other.consuming.has(k)).toBe(false);
              });
              break;
            }
            case 'advance':
              now.t += a.ms;
              // A client stops consuming once its session may have run out, before the broker frees its partitions.
              for (const cl of clients) {
                if (cl !== undefined && now.t - cl.lastContact >= SESSION) {
                  cl.consuming.clear();
                  cl.assignment.clear();
                }
              }
              break;
            case 'tick':
              coordinator.tick();
              break;
          }
          checkExclusive();
        }

        // Settle: rejoin whoever was expired, then well-behaved heartbeats with no time passing.
        for (const [i, c] of clients.entries()) {
          if (c === undefined) continue;
          if (c.memberId) doHeartbeat(c, 255, 255, 255);
          if (!c.memberId) doJoin(i, c.topics);
        }
        for (let round = 0; round < 3; round++) {
          for (const c of clients) {
            if (c === undefined) continue;
            doHeartbeat(c, 255, 255, 255);
            expect(c.memberId).not.toBe('');
            checkExclusive();
          }
        }

        const live = clients.filter((c): c is Client => c !== undefined);
        if (live.length > 0) expect(coordinator.describeGroup({ group: 'g' }).state).toBe('Stable');
        for (const [t, n] of topicCounts) {
          const subs = live.filter((c) => c.topics.includes(t));
          const counts = subs.map((c) => [...c.assignment].filter((k) => k.startsWith(`${t}:`)).length);
          const all = subs.flatMap((c) => [...c.assignment].filter((k) => k.startsWith(`${t}:`)));
          if (subs.length === 0) continue;
          expect(all.sort()).toEqual(Array.from({ length: n }, (_, p) => key(t, p)).sort());
          expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 300 },
    );
  });
});
