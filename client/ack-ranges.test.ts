import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AckType } from '../protocol/gen/kmq/broker/v1/queues.js';
import { mergeAckRanges } from './ack-ranges.js';
import type { AckOp } from './ack-ranges.js';

const op = (partition: number, offset: number, type = AckType.ACK_ACCEPT, delayMs = 0, reason = ''): AckOp => ({ partition, offset, type, delayMs, reason });

describe('mergeAckRanges', () => {
  it('merges consecutive offsets of one partition and type into one range', () => {
    expect(mergeAckRanges([op(0, 5), op(0, 6), op(0, 7), op(0, 9)])).toEqual([
      { partition: 0, firstOffset: 5, lastOffset: 7, type: AckType.ACK_ACCEPT, delayMs: 0, reason: '' },
      { partition: 0, firstOffset: 9, lastOffset: 9, type: AckType.ACK_ACCEPT, delayMs: 0, reason: '' },
    ]);
  });

  it('keeps partitions, types, delays and reasons apart, whatever the issue order', () => {
    const ranges = mergeAckRanges([
      op(1, 3),
      op(0, 2, AckType.ACK_RELEASE, 100),
      op(0, 1),
      op(1, 2),
      op(0, 3, AckType.ACK_RELEASE, 200),
      op(0, 4, AckType.ACK_REJECT, 0, 'bad'),
      op(0, 5, AckType.ACK_REJECT, 0, 'worse'),
      op(0, 0),
    ]);
    expect(ranges.map((r) => [r.partition, r.firstOffset, r.lastOffset, r.type, r.delayMs, r.reason])).toEqual([
      [0, 0, 1, AckType.ACK_ACCEPT, 0, ''],
      [0, 2, 2, AckType.ACK_RELEASE, 100, ''],
      [0, 3, 3, AckType.ACK_RELEASE, 200, ''],
      [0, 4, 4, AckType.ACK_REJECT, 0, 'bad'],
      [0, 5, 5, AckType.ACK_REJECT, 0, 'worse'],
      [1, 2, 3, AckType.ACK_ACCEPT, 0, ''],
    ]);
  });

  it('sends a repeated op once and leaves its input alone', () => {
    const input = [op(0, 2), op(0, 1), op(0, 2)];
    expect(mergeAckRanges(input)).toEqual([{ partition: 0, firstOffset: 1, lastOffset: 2, type: AckType.ACK_ACCEPT, delayMs: 0, reason: '' }]);
    expect(input.map((o) => o.offset)).toEqual([2, 1, 2]);
    expect(mergeAckRanges([])).toEqual([]);
  });

  it('covers exactly the ops given, with disjoint non-adjacent ranges per kind (property)', () => {
    const opArb = fc.record({
      partition: fc.integer({ min: 0, max: 3 }),
      offset: fc.integer({ min: 0, max: 60 }),
      type: fc.constantFrom(AckType.ACK_ACCEPT, AckType.ACK_RELEASE, AckType.ACK_REJECT, AckType.ACK_RENEW),
      delayMs: fc.constantFrom(0, 50),
      reason: fc.constantFrom('', 'x'),
    });
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
        const ranges = mergeAckRanges(ops);
        const kindOf = (o: { partition: number; type: number; delayMs: number; reason: string }): string => `${o.partition}/${o.type}/${o.delayMs}/${o.reason}`;
        const expected = new Set(ops.map((o) => `${kindOf(o)}@${o.offset}`));
        const covered = new Set<string>();
        const byKind = new Map<string, Array<[number, number]>>();
        for (const r of ranges) {
          expect(r.firstOffset).toBeLessThanOrEqual(r.lastOffset);
          for (let o = r.firstOffset; o <= r.lastOffset; o++) covered.add(`${kindOf(r)}@${o}`);
          const list = byKind.get(kindOf(r)) ?? [];
          list.push([r.firstOffset, r.lastOffset]);
          byKind.set(kindOf(r), list);
        }
        expect(covered).toEqual(expected);
        // Maximal merging: ranges of one kind neither overlap nor touch.
        for (const list of byKind.values()) {
          for (let i = 1; i < list.length; i++) expect(list[i]![0]).toBeGreaterThan(list[i - 1]![1] + 1);
        }
        let size = 0;
        for (const r of ranges) size += r.lastOffset - r.firstOffset + 1;
        expect(size).toBe(expected.size);
      }),
    );
  });
});
