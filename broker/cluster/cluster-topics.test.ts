import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { topicKey } from './cluster-metadata.js';
import { assignReplicas, createClusterTopic, deleteClusterTopic } from './cluster-topics.js';
import { MemoryCoordinationStore } from './memory-coordination-store.js';
import type { TopicRecord } from './metadata-store.js';

function record(name: string, partitions: number, replicationFactor: number): TopicRecord {
  return { name, id: `id-${name}`, partitions, replicationFactor, config: {}, internal: false, createdAt: 1 };
}

function counts(assignment: number[][], pick: (replicas: number[]) => number[]): Map<number, number> {
  const c = new Map<number, number>();
  for (const replicas of assignment) for (const b of pick(replicas)) c.set(b, (c.get(b) ?? 0) + 1);
  return c;
}

describe('assignReplicas', () => {
  it('spreads leaders and replicas evenly over the brokers, never twice in one partition', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 100 }), { minLength: 1, maxLength: 7 }),
        fc.integer({ min: 0, max: 6 }),
        fc.nat(),
        fc.nat(),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        (brokers, blocks, extraSeed, rfSeed, r1, r2) => {
          const n = brokers.length;
          const extra = extraSeed % n;
          const partitions = Math.max(1, n * blocks + extra);
          const rf = 1 + (rfSeed % n);
          const randoms = [r1, r2];
          const assignment = assignReplicas(partitions, rf, brokers, () => randoms.shift() ?? 0);
          expect(assignment).toHaveLength(partitions);
          for (const replicas of assignment) {
            expect(replicas).toHaveLength(rf);
            expect(new Set(replicas).size).toBe(rf);
            for (const b of replicas) expect(brokers).toContain(b);
          }
          // Every broker leads partitions/n, rounded down or up.
          const leaders = counts(assignment, (r) => [r[0]!]);
          for (const b of brokers) expect(leaders.get(b) ?? 0).toBeGreaterThanOrEqual(Math.floor(partitions / n));
          for (const b of brokers) expect(leaders.get(b) ?? 0).toBeLessThanOrEqual(Math.ceil(partitions / n));
          // Replicas: exactly even over whole rounds of n partitions; within rf of even otherwise.
          const replicas = counts(assignment, (r) => r);
          const all = brokers.map((b) => replicas.get(b) ?? 0);
          if (partitions % n === 0) expect(new Set(all).size).toBe(1);
          else expect(Math.max(...all) - Math.min(...all)).toBeLessThanOrEqual(rf);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('assigns 12 partitions of replication factor 3 over 3 brokers: 4 leaderships and 12 replicas each', () => {
    const assignment = assignReplicas(12, 3, [3, 1, 2]);
    expect([...counts(assignment, (r) => [r[0]!]).values()]).toEqual([4, 4, 4]);
    expect([...counts(assignment, (r) => r).values()]).toEqual([12, 12, 12]);
  });

  it('starts at a random broker, so small topics do not all lead on one', () => {
    const firstLeaders = new Set<number>();
    for (let i = 0; i < 50; i++) firstLeaders.add(assignReplicas(1, 1, [1, 2, 3])[0]![0]!);
    expect(firstLeaders).toEqual(new Set([1, 2, 3]));
  });

  it('refuses a replication factor above the live brokers, and nonsense counts', () => {
    const err = (() => {
      try {
        assignReplicas(3, 3, [1, 2]);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(KmqError);
    expect((err as KmqError).code).toBe(ErrorCode.InvalidConfig);
    expect((err as KmqError).message).toBe('replication factor 3 exceeds the 2 live brokers');
    expect(() => assignReplicas(0, 1, [1])).toThrow(/partitions/);
    expect(() => assignReplicas(1, 0, [1])).toThrow(/replication factor/);
    expect(() => assignReplicas(1, 1, [])).toThrow(/exceeds the 0 live brokers/);
  });
});

describe('createClusterTopic / deleteClusterTopic', () => {
  it('writes the topic with leaders on the first replica, epoch 0 and every replica in sync, only once', async () => {
    const store = new MemoryCoordinationStore();
    const created = await createClusterTopic(store, record('orders', 6, 2), new Set([1, 2, 3]));
    const stored = await store.get(topicKey('orders'));
    expect(stored?.version).toBe(created.version);
    expect(JSON.parse(stored!.value)).toEqual(created.value);
    expect(created.value.topic).toEqual(record('orders', 6, 2));
    for (const p of created.value.partitions) {
      expect(p.leader).toBe(p.replicas[0]);
      expect(p.leaderEpoch).toBe(0);
      expect(p.isr).toEqual(p.replicas);
    }
    const again = await createClusterTopic(store, record('orders', 1, 1), [1]).catch((e: unknown) => e);
    expect((again as KmqError).code).toBe(ErrorCode.TopicExists);
    expect((await store.get(topicKey('orders')))?.version).toBe(created.version);
  });

  it('places a queue on the anchor replicas, led by the anchor leader; other topics as before', async () => {
    const store = new MemoryCoordinationStore();
    const anchor = { replicas: [1, 2, 3], leader: 3, leaderEpoch: 4, isr: [3, 1] };
    const queue = { ...record('jobs', 3, 1), queue: { maxDeliveries: 5, deadLetterQueue: '', lockTimeoutMs: 30_000, perKeyOrdering: false } };
    const created = await createClusterTopic(store, queue, [1, 2, 3, 4, 5], { anchor });
    expect(created.value.topic).toEqual({ ...queue, replicationFactor: 3 });
    expect(created.value.partitions).toEqual([0, 1, 2].map(() => ({ replicas: [3, 1, 2], leader: 3, leaderEpoch: 0, isr: [3, 1, 2] })));
    expect(JSON.parse((await store.get(topicKey('jobs')))!.value)).toEqual(created.value);
    // Not a queue: the anchor is ignored.
    const plain = await createClusterTopic(store, record('orders', 8, 1), [4, 5], { anchor });
    expect(new Set(plain.value.partitions.map((p) => p.leader))).toEqual(new Set([4, 5]));
    // A queue without an anchor is placed like any topic.
    const early = await createClusterTopic(store, { ...queue, name: 'early', replicationFactor: 2 }, [4, 5]);
    expect(early.value.partitions.every((p) => p.replicas.length === 2 && p.replicas.every((b) => b === 4 || b === 5))).toBe(true);
    await expect(createClusterTopic(store, { ...queue, name: 'none', partitions: 0 }, [1], { anchor })).rejects.toMatchObject({ code: ErrorCode.InvalidPartitions });
  });

  it('writes nothing when the replication factor exceeds the live brokers', async () => {
    const store = new MemoryCoordinationStore();
    await expect(createClusterTopic(store, record('big', 1, 4), [1, 2, 3])).rejects.toThrow('replication factor 4 exceeds the 3 live brokers');
    expect(await store.get(topicKey('big'))).toBeUndefined();
  });

  it('deletes a topic, and refuses an unknown one', async () => {
    const store = new MemoryCoordinationStore();
    await createClusterTopic(store, record('gone', 1, 1), [1]);
    await deleteClusterTopic(store, 'gone');
    expect(await store.get(topicKey('gone'))).toBeUndefined();
    const err = await deleteClusterTopic(store, 'gone').catch((e: unknown) => e);
    expect((err as KmqError).code).toBe(ErrorCode.UnknownTopic);
  });
});
