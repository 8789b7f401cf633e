import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../lib/errors.js';
import type { ClusterTopic, PartitionState } from './cluster-metadata.js';
import { decodeClusterTopic } from './metadata-codec.js';
import { decideTopic, isReassigning, planAssignment, reassignPartition, withTargets } from './reassignment.js';

const live = (...ids: number[]): Set<number> => new Set(ids);

function topic(name: string, partitions: PartitionState[], replicationFactor = partitions[0]?.replicas.length ?? 1): ClusterTopic {
  return { topic: { name, id: `id-${name}`, partitions: partitions.length, replicationFactor, config: {}, internal: false, createdAt: 0 }, partitions };
}

const queueSettings = { maxDeliveries: 0, deadLetterQueue: '', lockTimeoutMs: 30_000, perKeyOrdering: false };

function queue(name: string, partitions: PartitionState[], replicationFactor = partitions[0]?.replicas.length ?? 1): ClusterTopic {
  const t = topic(name, partitions, replicationFactor);
  return { ...t, topic: { ...t.topic, queue: queueSettings } };
}

function settled(replicas: number[], leaderEpoch = 0): PartitionState {
  return { replicas, leader: replicas[0]!, leaderEpoch, isr: [...replicas] };
}

describe('reassignPartition', () => {
  it('adds the target brokers as replicas outside the in-sync set, then completes once they are in sync', () => {
    const s: PartitionState = { ...settled([1, 2, 3], 4), targetReplicas: [3, 4, 5] };
    expect(reassignPartition(s, live(1, 2, 3, 4, 5), false)).toBe(s);
    const started = reassignPartition(s, live(1, 2, 3, 4, 5), true);
    expect(started).toEqual({ replicas: [1, 2, 3, 4, 5], leader: 1, leaderEpoch: 4, isr: [1, 2, 3], targetReplicas: [3, 4, 5] });
    expect(isReassigning(started)).toBe(true);
    // Only broker 4 caught up: waits.
    const partly = { ...started, isr: [1, 2, 3, 4] };
    expect(reassignPartition(partly, live(1, 2, 3, 4, 5), true)).toBe(partly);
    // Every target broker in sync: the target's first leads at the next epoch; the old brokers leave.
    const done = reassignPartition({ ...started, isr: [1, 2, 3, 4, 5] }, live(1, 2, 3, 4, 5), true);
    expect(done).toEqual({ replicas: [3, 4, 5], leader: 3, leaderEpoch: 5, isr: [3, 4, 5] });
    expect('targetReplicas' in done).toBe(false);
  });

  it('keeps the leader and its epoch when the leader stays first in the target', () => {
    const s: PartitionState = { replicas: [1, 2, 3, 4], leader: 1, leaderEpoch: 2, isr: [1, 2, 3, 4], targetReplicas: [1, 2, 4] };
    expect(reassignPartition(s, live(1, 2, 3, 4), false)).toEqual({ replicas: [1, 2, 4], leader: 1, leaderEpoch: 2, isr: [1, 2, 4] });
  });

  it('does not complete while the leader or a target broker is not live', () => {
    const s: PartitionState = { replicas: [1, 2, 3, 4], leader: 1, leaderEpoch: 2, isr: [1, 2, 3, 4], targetReplicas: [2, 3, 4] };
    expect(reassignPartition(s, live(1, 2, 3), true)).toBe(s);
    const leaderless = { ...s, leader: -1 };
    expect(reassignPartition(leaderless, live(1, 2, 3, 4), true)).toBe(leaderless);
  });
});

describe('decideTopic', () => {
  it('starts at most the allowed number of reassignments and counts them', () => {
    const parts = [0, 1, 2, 3].map((): PartitionState => ({ ...settled([1, 2, 3]), targetReplicas: [1, 2, 4] }));
    const d = decideTopic(topic('t', parts), live(1, 2, 3, 4), 2);
    expect(d.reassigning).toBe(2);
    expect(d.next!.partitions.map((p) => p.replicas.length)).toEqual([4, 4, 3, 3]);
    expect(decideTopic(topic('t', parts), live(1, 2, 3, 4), 0).next).toBeUndefined();
  });

  it('elects a new leader and carries the reassignment in one decision', () => {
    const p: PartitionState = { replicas: [1, 2, 3, 4], leader: 1, leaderEpoch: 3, isr: [1, 2, 3, 4], targetReplicas: [2, 3, 4] };
    const d = decideTopic(topic('t', [p]), live(2, 3, 4), 8);
    expect(d.next!.partitions[0]).toEqual({ replicas: [2, 3, 4], leader: 2, leaderEpoch: 4, isr: [2, 3, 4] });
    expect(d.reassigning).toBe(0);
  });

  // Followers catching up at random: whatever happens, leaders come only from the in-sync set,
  // the in-sync set keeps its leader and stays inside the replicas, and the reassignment ends.
  it('keeps the replication invariants and completes every reassignment (property)', () => {
    const brokers = [1, 2, 3, 4, 5];
    const arb = fc.record({
      initial: fc.shuffledSubarray(brokers, { minLength: 3, maxLength: 3 }),
      target: fc.shuffledSubarray(brokers, { minLength: 3, maxLength: 3 }),
      steps: fc.array(fc.record({ join: fc.constantFrom(...brokers), kill: fc.option(fc.constantFrom(...brokers), { nil: undefined }) }), { maxLength: 30 }),
      max: fc.integer({ min: 1, max: 3 }),
    });
    fc.assert(
      fc.property(arb, ({ initial, target, steps, max }) => {
        let t = topic('t', [{ ...settled(initial), targetReplicas: target }, { ...settled(initial), targetReplicas: target }]);
        const check = (before: ClusterTopic, after: ClusterTopic): void => {
          after.partitions.forEach((p, i) => {
            const b = before.partitions[i]!;
            if (p.leader !== -1) expect(p.isr).toContain(p.leader);
            if (p.leader !== b.leader && p.leader !== -1) expect(b.isr).toContain(p.leader);
            for (const x of p.isr) expect(p.replicas).toContain(x);
            if (p.targetReplicas !== undefined && isReassigning(p)) for (const x of p.targetReplicas) expect(p.replicas).toContain(x);
          });
          // A target inside the replicas runs from the outset; the throttle holds back the others.
          const started = after.partitions.filter((p, i) => isReassigning(p) && !isReassigning(before.partitions[i]!)).length;
          if (started > 0) expect(after.partitions.filter(isReassigning).length).toBeLessThanOrEqual(max);
        };
        const up = new Set(brokers);
        const follow = (s: ClusterTopic, join: number): ClusterTopic => ({
          ...s,
          // The leader adds a caught-up follower (a live replica) to the in-sync set.
          partitions: s.partitions.map((p) => (p.leader !== -1 && up.has(join) && p.replicas.includes(join) && !p.isr.includes(join) ? { ...p, isr: [...p.isr, join] } : p)),
        });
        for (const step of steps) {
          if (step.kill !== undefined && up.size > 3) up.delete(step.kill);
          const d = decideTopic(t, up, max);
          if (d.next !== undefined) {
            check(t, d.next);
            t = d.next;
          }
          t = follow(t, step.join);
        }
        // Everyone back and catching up: the reassignments finish.
        for (const b of brokers) up.add(b);
        for (let round = 0; round < 20; round++) {
          const d = decideTopic(t, up, max);
          if (d.next !== undefined) {
            check(t, d.next);
            t = d.next;
          }
          for (const b of brokers) t = follow(t, b);
        }
        for (const p of t.partitions) {
          expect(p.targetReplicas).toBeUndefined();
          expect(p.replicas).toEqual(target);
          // The target's first led when it completed; a later failover may have moved leadership inside it.
          expect(target).toContain(p.leader);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('decideTopic for a queue topic', () => {
  const anchor: PartitionState = { replicas: [1, 2, 3], leader: 2, leaderEpoch: 5, isr: [1, 2, 3] };

  it('moves leadership to the anchor leader once it is in sync, never outside the in-sync set', () => {
    const q = queue('jobs', [settled([1, 2, 3], 4), { ...settled([1, 2, 3], 4), isr: [1, 3] }, settled([2, 3, 1], 4)]);
    const d = decideTopic(q, live(1, 2, 3), 8, anchor);
    expect(d.next!.partitions).toEqual([
      { replicas: [1, 2, 3], leader: 2, leaderEpoch: 5, isr: [1, 2, 3] },
      q.partitions[1],
      q.partitions[2],
    ]);
    expect(d.next!.partitions[1]).toBe(q.partitions[1]);
    expect(d.reassigning).toBe(0);
    // Aligned: nothing more to decide.
    expect(decideTopic(d.next!, live(1, 2, 3), 8, anchor).next).toBeUndefined();
  });

  it('fails over to the anchor leader when the partition leader dies', () => {
    const q = queue('jobs', [settled([1, 3, 2], 4)]);
    const after = decideTopic(q, live(2, 3), 8, anchor).next!.partitions[0]!;
    expect(after.leader).toBe(2);
    expect(after.isr).toEqual([3, 2]);
    expect(after.leaderEpoch).toBeGreaterThan(4);
  });

  it('reassigns a partition on other brokers to the anchor replicas within the throttle, and completes it once in sync', () => {
    const q = queue('jobs', [settled([3, 4, 5]), settled([3, 4, 5])]);
    const d = decideTopic(q, live(1, 2, 3, 4, 5), 1, anchor);
    expect(d.next!.partitions[0]).toEqual({ replicas: [3, 4, 5, 2, 1], leader: 3, leaderEpoch: 0, isr: [3, 4, 5], targetReplicas: [2, 1, 3] });
    // The throttle holds the second back: it waits with its target set.
    expect(d.next!.partitions[1]).toEqual({ ...settled([3, 4, 5]), targetReplicas: [2, 1, 3] });
    expect(d.reassigning).toBe(1);
    const synced = { ...d.next!, partitions: [{ ...d.next!.partitions[0]!, isr: [3, 4, 5, 2, 1] }, d.next!.partitions[1]!] };
    const done = decideTopic(synced, live(1, 2, 3, 4, 5), 1, anchor).next!;
    expect(done.partitions[0]).toEqual({ replicas: [2, 1, 3], leader: 2, leaderEpoch: 1, isr: [3, 2, 1] });
    expect(isReassigning(done.partitions[1]!)).toBe(true);
  });

  it('drops extra replicas at once: a target inside the replicas completes in the same decision', () => {
    const q = queue('jobs', [settled([1, 2, 3, 4], 2)]);
    expect(decideTopic(q, live(1, 2, 3, 4), 0, anchor).next!.partitions[0]).toEqual({ replicas: [2, 1, 3], leader: 2, leaderEpoch: 3, isr: [1, 2, 3] });
  });

  it('leaves queue partitions alone while the anchor reassigns or has no live leader, and other topics always', () => {
    const q = queue('jobs', [settled([3, 4, 5])]);
    expect(decideTopic(q, live(1, 2, 3, 4, 5), 8, { ...anchor, replicas: [1, 2, 3, 4], targetReplicas: [2, 3, 4] }).next).toBeUndefined();
    expect(decideTopic(q, live(1, 3, 4, 5), 8, anchor).next).toBeUndefined();
    expect(decideTopic(q, live(1, 2, 3, 4, 5), 8).next).toBeUndefined();
    expect(decideTopic(topic('orders', [settled([3, 4, 5])]), live(1, 2, 3, 4, 5), 8, anchor).next).toBeUndefined();
  });

  // Whatever the starting replicas and however followers catch up or brokers die for a while,
  // every queue partition ends on the anchor's replicas, led by the anchor's leader.
  it('converges on the anchor, keeping the replication invariants (property)', () => {
    const brokers = [1, 2, 3, 4, 5];
    const arb = fc.record({
      initial: fc.array(fc.shuffledSubarray(brokers, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 3 }),
      anchorReplicas: fc.shuffledSubarray(brokers, { minLength: 1, maxLength: 3 }),
      anchorLeader: fc.nat(),
      steps: fc.array(fc.record({ join: fc.constantFrom(...brokers), kill: fc.option(fc.constantFrom(...brokers), { nil: undefined }) }), { maxLength: 30 }),
      max: fc.integer({ min: 1, max: 3 }),
    });
    fc.assert(
      fc.property(arb, ({ initial, anchorReplicas, anchorLeader, steps, max }) => {
        const a: PartitionState = { ...settled(anchorReplicas), leader: anchorReplicas[anchorLeader % anchorReplicas.length]! };
        let t = queue('jobs', initial.map((r) => settled(r)));
        const up = new Set(brokers);
        const check = (before: ClusterTopic, after: ClusterTopic): void => {
          after.partitions.forEach((p, i) => {
            const b = before.partitions[i]!;
            if (p.leader !== -1) expect(p.isr).toContain(p.leader);
            if (p.leader !== b.leader && p.leader !== -1) expect(b.isr).toContain(p.leader);
            if (p.leader !== b.leader) expect(p.leaderEpoch).toBeGreaterThan(b.leaderEpoch);
            for (const x of p.isr) expect(p.replicas).toContain(x);
          });
        };
        const follow = (s: ClusterTopic, join: number): ClusterTopic => ({
          ...s,
          partitions: s.partitions.map((p) => (p.leader !== -1 && up.has(join) && p.replicas.includes(join) && !p.isr.includes(join) ? { ...p, isr: [...p.isr, join] } : p)),
        });
        const step = (): void => {
          const d = decideTopic(t, up, max, up.has(a.leader) ? a : { ...a, leader: -1 });
          if (d.next !== undefined) {
            check(t, d.next);
            t = d.next;
          }
        };
        for (const s of steps) {
          if (s.kill !== undefined && up.size > 3) up.delete(s.kill);
          step();
          t = follow(t, s.join);
        }
        for (const b of brokers) up.add(b);
        for (let round = 0; round < 30; round++) {
          step();
          for (const b of brokers) t = follow(t, b);
        }
        for (const p of t.partitions) {
          expect(p.targetReplicas).toBeUndefined();
          expect([...p.replicas].sort()).toEqual([...anchorReplicas].sort());
          expect(p.leader).toBe(a.leader);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('planAssignment', () => {
  it('leaves queue topics to the anchor: no targets, and their replicas count for no load', () => {
    const anchorTopic = topic('__share_state', [settled([1, 2, 3])]);
    const orders = topic('orders', [settled([1, 2]), settled([1, 3]), settled([2, 3])]);
    const jobs = queue('jobs', [settled([1, 2, 3]), settled([1, 2, 3]), settled([1, 2, 3]), settled([1, 2, 3])]);
    const withQueue = planAssignment(
      new Map([
        ['__share_state', anchorTopic],
        ['orders', orders],
        ['jobs', jobs],
      ]),
      [1, 2, 3, 4],
    );
    const without = planAssignment(
      new Map([
        ['__share_state', anchorTopic],
        ['orders', orders],
      ]),
      [1, 2, 3, 4],
    );
    expect(withQueue.get('jobs')).toEqual([undefined, undefined, undefined, undefined]);
    expect(withQueue.get('orders')).toEqual(without.get('orders'));
    expect(withQueue.get('__share_state')).toEqual(without.get('__share_state'));
    // The anchor itself is planned like any topic: broker 4 gets a replica somewhere.
    expect([...withQueue.values()].flat().some((t) => t?.includes(4))).toBe(true);
    // A queue topic whose replication factor the brokers cannot hold does not stop the plan either.
    expect(() => planAssignment(new Map([['__share_state', anchorTopic], ['jobs', queue('jobs', [settled([1, 2, 3, 4])])]]), [1, 2, 3])).not.toThrow();
  });

  it('plans queue topics like any other when there is no anchor topic, so nothing waits for it', () => {
    const jobs = queue('jobs', [settled([1, 2, 3]), settled([1, 2, 3]), settled([1, 2, 3]), settled([1, 2, 3])]);
    expect(planAssignment(new Map([['jobs', jobs]]), [1, 2, 3, 4]).get('jobs')!.some((t) => t?.includes(4))).toBe(true);
    // The anchor's name is a parameter.
    const anchorTopic = topic('anchor', [settled([1, 2, 3])]);
    expect(planAssignment(new Map([['anchor', anchorTopic], ['jobs', jobs]]), [1, 2, 3, 4], 'anchor').get('jobs')).toEqual([undefined, undefined, undefined, undefined]);
  });
  const loads = (targets: number[][]): Map<number, number> => {
    const m = new Map<number, number>();
    for (const r of targets) for (const b of r) m.set(b, (m.get(b) ?? 0) + 1);
    return m;
  };
  const applied = (t: ClusterTopic, plan: Array<number[] | undefined>): number[][] => t.partitions.map((p, i) => plan[i] ?? p.targetReplicas ?? p.replicas);

  it('scales 3 brokers out to 5 with the fewest moves, and spreads leadership', () => {
    const t = topic('orders', [[1, 2, 3], [2, 3, 1], [3, 1, 2], [1, 3, 2], [2, 1, 3], [3, 2, 1]].map((r) => settled(r)));
    const plan = planAssignment(new Map([['orders', t]]), [1, 2, 3, 4, 5]).get('orders')!;
    const after = applied(t, plan);
    // 18 replicas over 5 brokers: 4,4,4,3,3 or so; 6 of them move.
    expect([...loads(after).values()].sort()).toEqual([3, 3, 4, 4, 4]);
    const moved = after.reduce((n, r, i) => n + r.filter((b) => !t.partitions[i]!.replicas.includes(b)).length, 0);
    expect(moved).toBe(6);
    const leaders = loads(after.map((r) => [r[0]!]));
    expect(Math.max(...leaders.values()) - Math.min(...[1, 2, 3, 4, 5].map((b) => leaders.get(b) ?? 0))).toBeLessThanOrEqual(1);
  });

  it('decommissioning moves only the leaving broker’s replicas when the others can take them evenly', () => {
    const t = topic('orders', [[1, 2, 3], [2, 3, 4], [3, 4, 1], [4, 1, 2]].map((r) => settled(r)));
    const plan = planAssignment(new Map([['orders', t]]), [1, 2, 3]).get('orders')!;
    const after = applied(t, plan);
    expect(after.every((r) => r.length === 3 && !r.includes(4))).toBe(true);
    const moved = after.reduce((n, r, i) => n + r.filter((b) => !t.partitions[i]!.replicas.includes(b)).length, 0);
    expect(moved).toBe(3);
    // Partition 0 kept its replicas and leader: no target.
    expect(plan[0]).toBeUndefined();
  });

  it('refuses a topic whose replication factor exceeds the brokers that may hold replicas', () => {
    const t = topic('orders', [settled([1, 2, 3])]);
    expect(() => planAssignment(new Map([['orders', t]]), [1, 2])).toThrow(expect.objectContaining({ code: ErrorCode.InvalidConfig }));
  });

  it('plans from a running reassignment’s target, and leaves a target that is still right alone', () => {
    const t = topic('orders', [{ ...settled([1, 2, 3]), replicas: [1, 2, 3, 4], targetReplicas: [4, 2, 3] }, settled([1, 2, 3])], 3);
    const plan = planAssignment(new Map([['orders', t]]), [1, 2, 3, 4]).get('orders')!;
    expect(plan[0]).toBeUndefined();
  });

  it('spreads every topic evenly over the brokers, within one replica per broker; planning again changes nothing (property)', () => {
    const arb = fc
      .record({ brokers: fc.integer({ min: 3, max: 7 }), extra: fc.integer({ min: 0, max: 3 }), topics: fc.array(fc.record({ partitions: fc.integer({ min: 1, max: 12 }), rf: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 4 }), seed: fc.integer() })
      .chain((c) =>
        fc.tuple(
          fc.constant(c),
          fc.array(fc.array(fc.shuffledSubarray(range(c.brokers + c.extra), { minLength: 3, maxLength: 3 }), { minLength: 12, maxLength: 12 }), { minLength: c.topics.length, maxLength: c.topics.length }),
          fc.shuffledSubarray(range(c.brokers + c.extra), { minLength: 3, maxLength: c.brokers + c.extra }),
        ),
      );
    fc.assert(
      fc.property(arb, ([c, assignments, eligible]) => {
        const topics = new Map<string, ClusterTopic>();
        c.topics.forEach((spec, i) => {
          const parts = assignments[i]!.slice(0, spec.partitions).map((r) => settled(r.slice(0, spec.rf)));
          topics.set(`t${i}`, topic(`t${i}`, parts, spec.rf));
        });
        const plan = planAssignment(topics, eligible);
        const next = new Map<string, ClusterTopic>();
        for (const [name, t] of topics) {
          const targets = applied(t, plan.get(name)!);
          for (const r of targets) {
            expect(r.length).toBe(t.topic.replicationFactor);
            expect(new Set(r).size).toBe(r.length);
            for (const b of r) expect(eligible).toContain(b);
          }
          const l = eligible.map((b) => loads(targets).get(b) ?? 0);
          expect(Math.max(...l) - Math.min(...l)).toBeLessThanOrEqual(1);
          // The reassigned topic, settled: planning it again moves nothing.
          next.set(name, topic(name, targets.map((r) => settled(r)), t.topic.replicationFactor));
        }
        for (const targets of planAssignment(next, eligible).values()) expect(targets.every((x) => x === undefined)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('targetReplicas in the store', () => {
  it('round-trips through the codec, and values written before it existed still decode', () => {
    const t = withTargets(topic('t', [settled([1, 2, 3]), settled([2, 3, 1])]), [[1, 2, 4], undefined])!;
    const back = decodeClusterTopic('topics/t', JSON.stringify(t));
    expect(back.partitions[0]!.targetReplicas).toEqual([1, 2, 4]);
    expect(back.partitions[1]!.targetReplicas).toBeUndefined();
    const old = '{"topic":{"name":"t","id":"x","partitions":1,"replicationFactor":1,"config":{},"internal":false,"createdAt":0},"partitions":[{"replicas":[1],"leader":1,"leaderEpoch":0,"isr":[1]}]}';
    expect(decodeClusterTopic('topics/t', old).partitions[0]).toEqual({ replicas: [1], leader: 1, leaderEpoch: 0, isr: [1] });
  });

  it('refuses a malformed target', () => {
    for (const target of ['[]', '[1,1]', '[-1]', '"1"']) {
      const v = `{"topic":{"name":"t"},"partitions":[{"replicas":[1],"leader":1,"leaderEpoch":0,"isr":[1],"targetReplicas":${target}}]}`;
      expect(() => decodeClusterTopic('topics/t', v)).toThrow(expect.objectContaining({ code: ErrorCode.StorageError }));
    }
  });
});

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}
