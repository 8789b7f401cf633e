import { describe, expect, it } from 'vitest';
import { LeaderState } from './leader-state.js';

describe('LeaderState', () => {
  it('holds the high watermark at the lowest in-sync log end, unknown until every in-sync follower fetched', () => {
    const s = new LeaderState(1, 4, [1, 2, 3], [1, 2, 3], 0, 0);
    expect(s.highWatermark(10)).toBeUndefined();
    s.onFetch(2, 10, 10, 0, 1);
    expect(s.highWatermark(10)).toBeUndefined();
    s.onFetch(3, 6, 10, 0, 1);
    expect(s.highWatermark(10)).toBe(6);
    s.onFetch(3, 10, 12, 6, 2);
    expect(s.highWatermark(12)).toBe(10);
    // A follower outside the in-sync set does not hold it back.
    s.setIsr([1, 2]);
    s.onFetch(2, 12, 12, 10, 3);
    expect(s.highWatermark(12)).toBe(12);
    s.setIsr([1]);
    expect(s.highWatermark(15)).toBe(15);
  });

  it('reports followers that have not caught up within the lag time, counting from the election', () => {
    const s = new LeaderState(1, 0, [1, 2, 3], [1, 2, 3], 0, 1_000);
    expect(s.lagging(5_000, 10_000)).toEqual([]);
    expect(s.lagging(11_001, 10_000)).toEqual([2, 3]);
    // Follower 2 reaches the log end; follower 3 keeps fetching but always behind the end of its previous fetch.
    s.onFetch(2, 50, 50, 0, 11_000);
    s.onFetch(3, 10, 50, 0, 11_000);
    s.onFetch(3, 20, 60, 0, 12_000);
    expect(s.lagging(20_500, 10_000)).toEqual([3]);
    // Follower 3 fetches from where the leader ended at its previous fetch: caught up as of that fetch.
    s.onFetch(3, 60, 70, 0, 22_000);
    expect(s.lagging(22_000, 10_000)).toEqual([2]);
  });

  it('lets a follower join the in-sync set only at or past the high watermark and the epoch start', () => {
    const s = new LeaderState(1, 3, [1, 2, 3], [1, 2], 40, 0);
    expect(s.onFetch(3, 30, 60, 45, 1)).toBe(false);
    expect(s.onFetch(3, 44, 60, 45, 2)).toBe(false);
    expect(s.onFetch(3, 45, 60, 45, 3)).toBe(true);
    expect(s.onFetch(2, 60, 60, 45, 3)).toBe(false);
    expect(s.onFetch(9, 60, 60, 45, 3)).toBe(false);
    const fresh = new LeaderState(1, 3, [1, 2], [1], 40, 0);
    expect(fresh.onFetch(2, 39, 60, 30, 1)).toBe(false);
    expect(fresh.onFetch(2, 40, 60, 30, 1)).toBe(true);
  });
});

describe('LeaderState replica changes', () => {
  it('tracks followers added by a reassignment from unknown, and forgets removed ones', () => {
    const s = new LeaderState(1, 0, [1, 2], [1, 2], 0, 0);
    s.onFetch(2, 10, 10, 0, 1);
    s.setReplicas([1, 2, 4], 2);
    expect(s.replicas).toEqual([1, 2, 4]);
    expect(s.progress()).toEqual(new Map([[2, 10], [4, -1]]));
    // Not in the in-sync set yet, so it does not hold the high watermark back, and joins once caught up.
    expect(s.highWatermark(10)).toBe(10);
    expect(s.onFetch(4, 10, 10, 10, 3)).toBe(true);
    s.setReplicas([1, 4], 4);
    expect(s.isReplica(2)).toBe(false);
    expect(s.onFetch(2, 10, 10, 10, 5)).toBe(false);
  });
});

describe('LeaderState joining followers', () => {
  it('counts a follower for the high watermark from the moment it qualifies to join, before the store holds it', () => {
    const s = new LeaderState(1, 0, [1, 2, 3], [1, 2], 0, 0);
    s.onFetch(2, 20, 20, 0, 1);
    expect(s.highWatermark(20)).toBe(20);
    // Follower 3 reaches the high watermark: it joins, so records it lacks are not acknowledged any more.
    expect(s.onFetch(3, 20, 30, 20, 2)).toBe(true);
    s.onFetch(2, 30, 30, 20, 2);
    expect(s.highWatermark(30)).toBe(20);
    s.onFetch(3, 30, 30, 20, 3);
    expect(s.highWatermark(30)).toBe(30);
    // The store refused it: it no longer holds the high watermark back.
    s.abandonJoin(3);
    s.onFetch(2, 40, 40, 30, 4);
    expect(s.highWatermark(40)).toBe(40);
  });

  it('stops counting a joining follower once it is in the stored set, or when it lags', () => {
    const s = new LeaderState(1, 0, [1, 2, 3], [1, 2], 0, 0);
    s.onFetch(2, 10, 10, 0, 1);
    expect(s.onFetch(3, 10, 10, 10, 1)).toBe(true);
    s.setIsr([1, 2, 3]);
    expect(s.isr).toEqual(new Set([1, 2, 3]));
    const t = new LeaderState(1, 0, [1, 2, 3], [1, 2], 0, 0);
    t.onFetch(2, 10, 10, 0, 1);
    expect(t.onFetch(3, 10, 10, 10, 1)).toBe(true);
    expect(t.highWatermark(12)).toBe(10);
    // Follower 3 stops fetching: after the lag time it no longer holds the high watermark.
    t.onFetch(2, 12, 12, 10, 20_000);
    expect(t.lagging(20_000, 10_000)).toEqual([]);
    expect(t.highWatermark(12)).toBe(12);
  });
});
