import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assignPartitions } from './sticky-assignor.js';
import type { AssignorMember, TargetAssignment } from './sticky-assignor.js';

function owners(assignment: TargetAssignment, topic: string, count: number): Array<string | undefined> {
  const arr = new Array<string | undefined>(count).fill(undefined);
  for (const [id, topics] of assignment) for (const p of topics.get(topic) ?? []) arr[p] = id;
  return arr;
}

function counts(assignment: TargetAssignment, topic: string): number[] {
  return [...assignment.values()].map((t) => t.get(topic)?.length ?? 0);
}

describe('assignPartitions', () => {
  it('spreads partitions evenly over the subscribers', () => {
    const members = ['a', 'b', 'c'].map((id) => ({ id, topics: ['orders'] }));
    const out = assignPartitions({ members, partitionCounts: new Map([['orders', 10]]), currentOwners: new Map() });
    expect(counts(out, 'orders').sort()).toEqual([3, 3, 4]);
    expect(owners(out, 'orders', 10).every((o) => o !== undefined)).toBe(true);
  });

  it('keeps partitions with their owners when a member joins', () => {
    const members: AssignorMember[] = [{ id: 'a', topics: ['t'] }];
    const first = assignPartitions({ members, partitionCounts: new Map([['t', 6]]), currentOwners: new Map() });
    expect(first.get('a')?.get('t')).toEqual([0, 1, 2, 3, 4, 5]);
    const second = assignPartitions({
      members: [...members, { id: 'b', topics: ['t'] }],
      partitionCounts: new Map([['t', 6]]),
      currentOwners: new Map([['t', owners(first, 't', 6)]]),
    });
    expect(second.get('a')?.get('t')).toEqual([0, 1, 2]);
    expect(second.get('b')?.get('t')).toEqual([3, 4, 5]);
  });

  it('moves only the departed member partitions when a member leaves', () => {
    const all = ['a', 'b', 'c'].map((id) => ({ id, topics: ['t'] }));
    const before = assignPartitions({ members: all, partitionCounts: new Map([['t', 9]]), currentOwners: new Map() });
    const after = assignPartitions({
      members: all.filter((m) => m.id !== 'b'),
      partitionCounts: new Map([['t', 9]]),
      currentOwners: new Map([['t', owners(before, 't', 9)]]),
    });
    for (const id of ['a', 'c']) for (const p of before.get(id)?.get('t') ?? []) expect(after.get(id)?.get('t')).toContain(p);
  });

  it('spreads one-partition topics over members instead of stacking them', () => {
    const topics = ['t1', 't2', 't3', 't4'];
    const members = ['a', 'b'].map((id) => ({ id, topics }));
    const out = assignPartitions({ members, partitionCounts: new Map(topics.map((t) => [t, 1])), currentOwners: new Map() });
    const total = (id: string) => [...(out.get(id)?.values() ?? [])].reduce((n, ps) => n + ps.length, 0);
    expect(total('a')).toBe(2);
    expect(total('b')).toBe(2);
  });

  it('gives a topic only to its subscribers and nothing for unknown topics', () => {
    const out = assignPartitions({
      members: [
        { id: 'a', topics: ['x', 'ghost'] },
        { id: 'b', topics: ['y'] },
      ],
      partitionCounts: new Map([
        ['x', 2],
        ['y', 3],
      ]),
      currentOwners: new Map(),
    });
    expect(out.get('a')).toEqual(new Map([['x', [0, 1]]]));
    expect(out.get('b')).toEqual(new Map([['y', [0, 1, 2]]]));
  });

  it('is balanced, complete, sticky within balance and deterministic for any input', () => {
    const memberIds = fc.uniqueArray(fc.constantFrom('m0', 'm1', 'm2', 'm3', 'm4', 'm5'), { minLength: 1 });
    fc.assert(
      fc.property(memberIds, fc.integer({ min: 0, max: 20 }), fc.array(fc.option(fc.constantFrom('m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'gone')), { maxLength: 20 }), (ids, count, prev) => {
        const members = ids.map((id) => ({ id, topics: ['t'] }));
        const current = Array.from({ length: count }, (_, p) => prev[p] ?? undefined);
        const input = { members, partitionCounts: new Map([['t', count]]), currentOwners: new Map([['t', current]]) };
        const out = assignPartitions(input);
        expect(assignPartitions({ ...input, members: [...members].reverse() })).toEqual(out);
        const own = owners(out, 't', count);
        expect(own.every((o) => o !== undefined)).toBe(true);
        const c = counts(out, 't');
        expect(c.reduce((a, b) => a + b, 0)).toBe(count);
        expect(Math.max(...c) - Math.min(...c)).toBeLessThanOrEqual(1);
        // Sticky: a member loses partitions only when it held more than its new share.
        for (const id of ids) {
          const had = current.filter((o) => o === id).length;
          const kept = current.filter((o, p) => o === id && own[p] === id).length;
          const share = out.get(id)?.get('t')?.length ?? 0;
          expect(kept).toBe(Math.min(had, share));
        }
      }),
    );
  });
});
