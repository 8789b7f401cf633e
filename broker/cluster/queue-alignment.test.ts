import { describe, expect, it } from 'vitest';
import type { ClusterTopic, PartitionState } from './cluster-metadata.js';
import { QUEUE_ANCHOR_TOPIC, alignWithAnchor, anchorReplicas, followsAnchor, queueAnchor } from './queue-alignment.js';

const live = (...ids: number[]): Set<number> => new Set(ids);

function state(replicas: number[], leader: number, isr: number[] = [...replicas], leaderEpoch = 3): PartitionState {
  return { replicas, leader, leaderEpoch, isr };
}

function topic(name: string, queue: boolean): ClusterTopic {
  return {
    topic: {
      name,
      id: `id-${name}`,
      partitions: 1,
      replicationFactor: 3,
      config: {},
      internal: false,
      createdAt: 0,
      ...(queue ? { queue: { maxDeliveries: 0, deadLetterQueue: '', lockTimeoutMs: 30_000, perKeyOrdering: false } } : {}),
    },
    partitions: [state([1, 2, 3], 1)],
  };
}

describe('alignWithAnchor', () => {
  const anchor = state([1, 2, 3], 2);

  it('moves leadership to the anchor leader when it is in the in-sync set, at the next epoch, the in-sync set unchanged', () => {
    const p = state([3, 1, 2], 3, [3, 2, 1], 7);
    expect(alignWithAnchor(p, anchor, live(1, 2, 3))).toEqual({ replicas: [3, 1, 2], leader: 2, leaderEpoch: 8, isr: [3, 2, 1] });
  });

  it('keeps the leader while the anchor leader is not in the in-sync set', () => {
    const p = state([1, 2, 3], 1, [1, 3]);
    expect(alignWithAnchor(p, anchor, live(1, 2, 3))).toBe(p);
  });

  it('gives a partition on other brokers the anchor replicas as its target, the anchor leader first', () => {
    const p = state([1, 3, 4], 4);
    expect(alignWithAnchor(p, anchor, live(1, 2, 3, 4))).toEqual({ ...p, targetReplicas: [2, 1, 3] });
    // A subset or a superset differs too.
    expect(alignWithAnchor(state([1, 2], 1), anchor, live(1, 2, 3)).targetReplicas).toEqual([2, 1, 3]);
    expect(alignWithAnchor(state([1, 2, 3, 4], 1), anchor, live(1, 2, 3, 4)).targetReplicas).toEqual([2, 1, 3]);
  });

  it('changes nothing for an aligned partition, the same set in another order included', () => {
    const p = state([3, 2, 1], 2);
    expect(alignWithAnchor(p, anchor, live(1, 2, 3))).toBe(p);
  });

  it('waits while the anchor reassigns or has no live leader, sets no target while an anchor replica is dead, and leaves a partition with a target alone', () => {
    const p = state([4, 5, 6], 4);
    const l = live(1, 2, 3, 4, 5, 6);
    expect(alignWithAnchor(p, { ...anchor, replicas: [1, 2, 3, 4], targetReplicas: [2, 3, 4] }, l)).toBe(p);
    expect(alignWithAnchor(p, { ...anchor, targetReplicas: [2, 3, 4] }, l)).toBe(p);
    expect(alignWithAnchor(p, { ...anchor, leader: -1 }, l)).toBe(p);
    expect(alignWithAnchor(p, anchor, live(1, 3, 4, 5, 6))).toBe(p);
    // A dead anchor follower: no reassignment that could not complete; leadership still follows.
    expect(alignWithAnchor(p, anchor, live(1, 2, 4, 5, 6))).toBe(p);
    expect(alignWithAnchor(state([1, 2, 3], 1, [1, 2]), anchor, live(1, 2))).toMatchObject({ leader: 2, leaderEpoch: 4 });
    const moving = { ...p, targetReplicas: [4, 5, 1] };
    expect(alignWithAnchor(moving, anchor, l)).toBe(moving);
    expect(alignWithAnchor(p, undefined, l)).toBe(p);
  });
});

describe('anchor helpers', () => {
  it('orders the anchor replicas leader first', () => {
    expect(anchorReplicas(state([1, 2, 3], 3))).toEqual([3, 1, 2]);
    expect(anchorReplicas(state([1, 2, 3], -1))).toEqual([1, 2, 3]);
  });

  it('finds the anchor, and lets queue topics follow it only while it exists', () => {
    const anchorTopic = topic(QUEUE_ANCHOR_TOPIC, false);
    const q = topic('jobs', true);
    const t = topic('orders', false);
    const withAnchor = new Map([
      [QUEUE_ANCHOR_TOPIC, anchorTopic],
      ['jobs', q],
      ['orders', t],
    ]);
    expect(queueAnchor(withAnchor)).toBe(anchorTopic.partitions[0]);
    expect(queueAnchor(new Map([['jobs', q]]))).toBeUndefined();
    expect(followsAnchor('jobs', q, withAnchor)).toBe(true);
    expect(followsAnchor('orders', t, withAnchor)).toBe(false);
    expect(followsAnchor('jobs', q, new Map([['jobs', q]]))).toBe(false);
    expect(followsAnchor('jobs', q, new Map([['anchor', t]]), 'anchor')).toBe(true);
  });
});
