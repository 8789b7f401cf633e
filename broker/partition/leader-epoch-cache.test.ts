import { describe, expect, it } from 'vitest';
import { LeaderEpochCache } from './leader-epoch-cache.js';

describe('LeaderEpochCache', () => {
  it('keeps the first offset of each newer epoch only', () => {
    const c = new LeaderEpochCache();
    c.assign(-1, 0);
    c.assign(0, 0);
    c.assign(0, 5);
    c.assign(2, 10);
    c.assign(1, 12);
    expect(c.snapshot()).toEqual([
      { epoch: 0, startOffset: 0 },
      { epoch: 2, startOffset: 10 },
    ]);
    expect(c.latestEpoch).toBe(2);
    expect(c.startOffsetOf(2)).toBe(10);
    expect(c.startOffsetOf(1)).toBe(-1);
  });

  it('answers where an epoch ends: the next epoch start, the log end for the latest, the largest epoch below an unknown one', () => {
    const c = new LeaderEpochCache();
    c.assign(0, 0);
    c.assign(2, 10);
    c.assign(5, 30);
    expect(c.endOf(0, 40)).toEqual({ epoch: 0, endOffset: 10 });
    expect(c.endOf(1, 40)).toEqual({ epoch: 0, endOffset: 10 });
    expect(c.endOf(2, 40)).toEqual({ epoch: 2, endOffset: 30 });
    expect(c.endOf(5, 40)).toEqual({ epoch: 5, endOffset: 40 });
    expect(c.endOf(9, 40)).toEqual({ epoch: 5, endOffset: 40 });
    const late = new LeaderEpochCache();
    late.assign(3, 100);
    expect(late.endOf(2, 120)).toEqual({ epoch: -1, endOffset: -1 });
  });

  it('forgets epochs that start at or after a truncation point', () => {
    const c = new LeaderEpochCache();
    c.assign(0, 0);
    c.assign(2, 10);
    c.assign(5, 30);
    c.truncateFrom(30);
    expect(c.latestEpoch).toBe(2);
    c.truncateFrom(11);
    expect(c.latestEpoch).toBe(2);
    c.truncateFrom(10);
    expect(c.latestEpoch).toBe(0);
    c.clear();
    expect(c.latestEpoch).toBe(-1);
  });
});
