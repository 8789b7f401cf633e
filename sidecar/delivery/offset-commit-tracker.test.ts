import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ErrorCode } from '../../lib/errors.js';
import { OffsetCommitTracker } from './offset-commit-tracker.js';

function tracker(position = 0, extra: { maxCount?: number; intervalMs?: number; clock?: () => number } = {}): OffsetCommitTracker {
  return new OffsetCommitTracker({ topic: 'orders', partition: 3, position, clock: () => 0, ...extra });
}

describe('OffsetCommitTracker', () => {
  it('starts at the given position', () => {
    const t = tracker(42);
    expect(t.committable()).toBe(42);
    expect(t.committed).toBe(42);
    expect(t.hasUncommitted).toBe(false);
  });

  it('commits only up to the first unacknowledged record', () => {
    const t = tracker(10);
    for (let o = 10; o < 15; o++) t.delivered(o);
    expect(t.committable()).toBe(10);
    t.acked(12);
    t.acked(11);
    expect(t.committable()).toBe(10);
    t.acked(10);
    expect(t.committable()).toBe(13);
    t.acked(14);
    expect(t.committable()).toBe(13);
    t.acked(13);
    expect(t.committable()).toBe(15);
    expect(t.inFlight).toBe(0);
  });

  it('treats compaction gaps and skipped records as acknowledged', () => {
    const t = tracker(100);
    t.delivered(105);
    expect(t.committable()).toBe(105);
    t.skipped(107);
    t.delivered(110);
    t.acked(105);
    expect(t.committable()).toBe(110);
    t.acked(110);
    expect(t.committable()).toBe(111);
    t.skipped(120);
    expect(t.committable()).toBe(121);
  });

  it('ignores a repeated ack and refuses one for an offset never delivered', () => {
    const t = tracker(0);
    t.delivered(0);
    t.delivered(5);
    t.delivered(6);
    expect(t.acked(5)).toBe(true);
    expect(t.acked(5)).toBe(false);
    expect(t.acked(0)).toBe(true);
    expect(t.acked(0)).toBe(false);
    t.delivered(9);
    expect(() => t.acked(7)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidDelivery, context: expect.objectContaining({ topic: 'orders', partition: 3, offset: 7 }) }));
    expect(() => t.acked(10)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidDelivery }));
  });

  it('refuses deliveries out of offset order', () => {
    const t = tracker(10);
    expect(() => t.delivered(9)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidDelivery }));
    t.delivered(10);
    expect(() => t.delivered(10)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidDelivery }));
    expect(() => t.skipped(3)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidDelivery }));
  });

  it('refuses a commit past an unacknowledged record, and keeps the highest commit', () => {
    const t = tracker(0);
    t.delivered(0);
    t.delivered(1);
    t.acked(0);
    expect(() => t.markCommitted(2)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidRequest }));
    t.markCommitted(1);
    t.markCommitted(0);
    expect(t.committed).toBe(1);
  });

  it('grows past its initial capacity with a long-unacknowledged head', () => {
    const t = tracker(0);
    for (let o = 0; o < 5_000; o += 2) t.delivered(o);
    for (let o = 4_998; o > 0; o -= 2) t.acked(o);
    expect(t.committable()).toBe(0);
    expect(t.inFlight).toBe(1);
    t.acked(0);
    expect(t.committable()).toBe(4_999);
  });

  describe('batching', () => {
    it('commits after maxCount acks', () => {
      const t = tracker(0, { maxCount: 3, intervalMs: 60_000 });
      for (let o = 0; o < 10; o++) t.delivered(o);
      t.acked(0);
      t.acked(1);
      expect(t.shouldCommit(1)).toBe(false);
      t.acked(2);
      expect(t.shouldCommit(1)).toBe(true);
      t.markCommitted(t.committable(), 1);
      expect(t.shouldCommit(2)).toBe(false);
    });

    it('commits after intervalMs when there is something new, and not otherwise', () => {
      let now = 1_000;
      const t = tracker(0, { maxCount: 1_000, intervalMs: 500, clock: () => now });
      t.delivered(0);
      t.delivered(1);
      now = 2_000;
      expect(t.shouldCommit()).toBe(false);
      t.acked(1);
      expect(t.shouldCommit()).toBe(false);
      t.acked(0);
      expect(t.shouldCommit()).toBe(true);
      t.markCommitted(2);
      expect(t.shouldCommit()).toBe(false);
      t.delivered(2);
      t.acked(2);
      now = 2_499;
      expect(t.shouldCommit()).toBe(false);
      now = 2_500;
      expect(t.shouldCommit()).toBe(true);
    });
  });

  it('property: under random delivery, skips, gaps and ack orders, committable() is the first unacknowledged offset, and the end once all are acked', () => {
    const scenario = fc.record({
      position: fc.integer({ min: 0, max: 1_000_000 }),
      records: fc.array(fc.record({ gap: fc.nat({ max: 3 }), skip: fc.boolean() }), { minLength: 1, maxLength: 400 }),
      picks: fc.array(fc.nat(), { minLength: 1, maxLength: 400 }),
      maxCount: fc.integer({ min: 1, max: 50 }),
    });
    fc.assert(
      fc.property(scenario, ({ position, records, picks, maxCount }) => {
        const t = tracker(position, { maxCount, intervalMs: 1_000_000 });
        const pending: number[] = [];
        let next = position;
        let last = position - 1;
        let p = 0;
        const pick = (): number => picks[p++ % picks.length]!;
        const check = (): void => {
          const firstUnacked = pending.length > 0 ? Math.min(...pending) : last + 1;
          expect(t.committable()).toBe(firstUnacked);
          expect(t.committed).toBeLessThanOrEqual(firstUnacked);
          expect(t.inFlight).toBe(pending.length);
          if (t.shouldCommit()) t.markCommitted(t.committable());
        };
        const ackOne = (): void => {
          const [offset] = pending.splice(pick() % pending.length, 1);
          expect(t.acked(offset!)).toBe(true);
          check();
        };
        for (const r of records) {
          const offset = next + r.gap;
          next = offset + 1;
          last = offset;
          if (r.skip) t.skipped(offset);
          else {
            t.delivered(offset);
            pending.push(offset);
          }
          check();
          for (let k = pick() % 3; k > 0 && pending.length > 0; k--) ackOne();
        }
        while (pending.length > 0) ackOne();
        expect(t.committable()).toBe(last + 1);
        t.markCommitted(t.committable());
        expect(t.committed).toBe(last + 1);
      }),
      { numRuns: 300 },
    );
  });
});
