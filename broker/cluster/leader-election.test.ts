import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PartitionState } from './cluster-metadata.js';
import { electPartition, electTopic } from './leader-election.js';

/** A partition state as the cluster keeps it: isr a non-empty subset of replicas, the leader in isr or -1. */
const partitionState = fc
  .uniqueArray(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 5 })
  .chain((replicas) =>
    fc.record({
      replicas: fc.constant(replicas),
      isr: fc.subarray(replicas, { minLength: 1 }).chain((isr) => fc.shuffledSubarray(isr, { minLength: isr.length })),
      leaderEpoch: fc.nat({ max: 1000 }),
    }),
  )
  .chain(({ replicas, isr, leaderEpoch }) =>
    fc.record({
      replicas: fc.constant(replicas),
      isr: fc.constant(isr),
      leaderEpoch: fc.constant(leaderEpoch),
      leader: fc.oneof(fc.constantFrom(...isr), fc.constant(-1)),
    }),
  );
const liveSet = fc.uniqueArray(fc.integer({ min: 0, max: 6 }), { maxLength: 7 }).map((ids) => new Set(ids));

describe('electPartition', () => {
  it('never chooses a leader outside the in-sync set, nor a dead one, and never empties the in-sync set', () => {
    fc.assert(
      fc.property(partitionState, liveSet, (state: PartitionState, live) => {
        const next = electPartition(state, live);
        expect(next.replicas).toEqual(state.replicas);
        expect(next.isr.length).toBeGreaterThan(0);
        expect(next.isr.every((b) => state.isr.includes(b))).toBe(true);
        if (next.leader !== -1) {
          expect(state.isr).toContain(next.leader);
          expect(state.replicas).toContain(next.leader);
          expect(live.has(next.leader)).toBe(true);
          expect(next.isr).toContain(next.leader);
        }
        const liveIsr = state.isr.filter((b) => live.has(b));
        if (state.leader !== -1 && live.has(state.leader)) {
          // A live leader keeps its leadership and epoch; only dead members leave isr.
          expect(next.leader).toBe(state.leader);
          expect(next.leaderEpoch).toBe(state.leaderEpoch);
          expect(next.isr).toEqual(liveIsr);
        } else if (liveIsr.length === 0) {
          // No unclean election: leaderless, isr kept for the members' return.
          expect(next.leader).toBe(-1);
          expect(next.isr).toEqual(state.isr);
          expect(next.leaderEpoch).toBe(state.leader === -1 ? state.leaderEpoch : state.leaderEpoch + 1);
        } else {
          expect(next.leader).toBe(state.replicas.find((b) => liveIsr.includes(b)));
          expect(next.leaderEpoch).toBe(state.leaderEpoch + 1);
          expect(next.isr).toEqual(liveIsr);
        }
        // A decision is final: deciding again with the same live set changes nothing.
        expect(electPartition(next, live)).toBe(next);
      }),
      { numRuns: 2000 },
    );
  });

  it('elects the first live in-sync replica in replicas order, and leaves a live leader alone', () => {
    const state = { replicas: [3, 1, 2], leader: 3, leaderEpoch: 4, isr: [2, 1, 3] };
    expect(electPartition(state, new Set([1, 2]))).toEqual({ replicas: [3, 1, 2], leader: 1, leaderEpoch: 5, isr: [2, 1] });
    expect(electPartition(state, new Set([1, 2, 3]))).toBe(state);
    expect(electPartition(state, new Set([3, 1]))).toEqual({ ...state, isr: [1, 3] });
    expect(electPartition(state, new Set([]))).toEqual({ ...state, leader: -1, leaderEpoch: 5 });
    // Broker 2 is live but was not in sync: it is not elected.
    expect(electPartition({ ...state, isr: [3] }, new Set([1, 2]))).toEqual({ ...state, isr: [3], leader: -1, leaderEpoch: 5 });
  });
});

describe('electTopic', () => {
  it('returns the topic to write only when a partition changes', () => {
    const topic = {
      topic: { name: 't', id: 'x', partitions: 2, replicationFactor: 2, config: {}, internal: false, createdAt: 0 },
      partitions: [
        { replicas: [1, 2], leader: 1, leaderEpoch: 0, isr: [1, 2] },
        { replicas: [2, 1], leader: 2, leaderEpoch: 0, isr: [2, 1] },
      ],
    };
    expect(electTopic(topic, new Set([1, 2]))).toBeUndefined();
    const next = electTopic(topic, new Set([1]))!;
    expect(next.partitions).toEqual([
      { replicas: [1, 2], leader: 1, leaderEpoch: 0, isr: [1] },
      { replicas: [2, 1], leader: 1, leaderEpoch: 1, isr: [1] },
    ]);
    expect(next.topic).toBe(topic.topic);
  });
});
