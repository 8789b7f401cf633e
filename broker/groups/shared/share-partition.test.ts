import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../../lib/errors.js';
import type { SharedGroupOptions } from './share-options.js';
import type { AcquireResult, SharePartition } from './share-partition.js';
import { RecordState } from './share-state-record.js';
import { SharedGroupCoordinator } from './shared-group-coordinator.js';
import { MemoryJournal } from './test-journal.js';

const LOCK = 30_000;
const T0 = 1_000_000;

async function setup(options?: SharedGroupOptions, journal = new MemoryJournal()) {
  const now = { t: T0 };
  const c = new SharedGroupCoordinator({ journal, clock: () => now.t, options });
  await c.start();
  const p = c.partition('g', 'orders', 0);
  return { c, p, now, journal };
}

function acquire(p: SharePartition, member: string, max: number, now: number, logEndOffset = 100, keyOf?: (o: number) => string | undefined) {
  return p.acquire(member, max, now, { lockTimeoutMs: LOCK, logEndOffset, ...(keyOf === undefined ? {} : { keyOf }) });
}

function offsetsOf(r: AcquireResult): number[] {
  const out: number[] = [];
  for (const x of r.acquired) for (let o = x.firstOffset; o <= x.lastOffset; o++) out.push(o);
  return out;
}

function snapshot(p: SharePartition, upTo: number): unknown {
  const out: unknown[] = [p.startOffset, p.endOffset];
  for (let o = 0; o < upTo; o++) out.push(p.recordAt(o));
  return out;
}

describe('SharePartition', () => {
  it('hands each new record to one member, as contiguous ranges with delivery count 1', async () => {
    const { p, now } = await setup();
    const a = await acquire(p, 'a', 5, now.t, 8);
    expect(a.acquired).toEqual([{ firstOffset: 0, lastOffset: 4, deliveryCount: 1 }]);
    const b = await acquire(p, 'b', 5, now.t, 8);
    expect(b.acquired).toEqual([{ firstOffset: 5, lastOffset: 7, deliveryCount: 1 }]);
    expect((await acquire(p, 'c', 5, now.t, 8)).acquired).toEqual([]);
    expect(p.endOffset).toBe(8);
    expect(p.recordAt(6)).toMatchObject({ state: RecordState.Acquired, memberId: 'b', deliveryCount: 1, deadline: T0 + LOCK });
  });

  it('acks move the start offset over a contiguous done prefix', async () => {
    const { p, now } = await setup();
    await acquire(p, 'a', 6, now.t, 6);
    expect(await p.ack('a', [1, 2])).toEqual([null, null]);
    expect(p.startOffset).toBe(0);
    expect(await p.ack('a', [0])).toEqual([null]);
    expect(p.startOffset).toBe(3);
    expect(p.recordAt(4).state).toBe(RecordState.Acquired);
  });

  it('refuses acks, releases, rejects and renewals of records the member does not hold, changing nothing', async () => {
    const { p, now, journal } = await setup();
    await acquire(p, 'a', 3, now.t, 10);
    await acquire(p, 'b', 1, now.t, 10);
    await p.ack('a', [0]);
    await p.release('b', [3], 60_000);
    await acquire(p, 'a', 1, now.t, 10); // offset 4
    await new Promise((r) => setImmediate(r));
    const before = snapshot(p, 10);
    const appends = journal.appends;
    // 0 acked, 3 not acquired (released), 4 held by a, 9 never read, 1.5 not an offset, 2 held by a but asked by b, 99 beyond the log.
    const bad = [0, 3, 9, 1.5, -1, 99];
    for (const member of ['a', 'nobody']) {
      expect(await p.ack(member, bad)).toEqual(bad.map(() => ErrorCode.InvalidDelivery));
      expect(await p.release(member, bad)).toEqual(bad.map(() => ErrorCode.InvalidDelivery));
      expect((await p.reject(member, bad, 'poison')).results).toEqual(bad.map(() => ErrorCode.InvalidDelivery));
      expect(p.renew(member, bad, now.t, LOCK)).toEqual(bad.map(() => ErrorCode.InvalidDelivery));
    }
    expect(await p.ack('b', [1, 2, 4])).toEqual([ErrorCode.InvalidDelivery, ErrorCode.InvalidDelivery, ErrorCode.InvalidDelivery]);
    await new Promise((r) => setImmediate(r));
    expect(snapshot(p, 10)).toEqual(before);
    expect(journal.appends).toBe(appends);
    // A duplicate within one call: the first applies, the second is refused.
    expect(await p.ack('a', [1, 1])).toEqual([null, ErrorCode.InvalidDelivery]);
    expect(p.recordAt(1).state).toBe(RecordState.Acked);
    expect(journal.appends).toBe(appends + 1);
  });

  it('refuses an ack once the lock has expired, even before a tick', async () => {
    const { p, now } = await setup();
    await acquire(p, 'a', 1, now.t, 1);
    now.t += LOCK;
    expect(await p.ack('a', [0])).toEqual([ErrorCode.InvalidDelivery]);
    expect(p.recordAt(0).state).toBe(RecordState.Acquired);
  });

  it('redelivers a record whose lock expired with delivery count + 1, and refuses the old holder', async () => {
    const { c, p, now } = await setup();
    await acquire(p, 'a', 2, now.t, 2);
    now.t += LOCK - 1;
    expect(c.tick(now.t).expiredLocks).toBe(0);
    now.t += 1;
    expect(c.tick(now.t).expiredLocks).toBe(2);
    expect(p.recordAt(0)).toMatchObject({ state: RecordState.Available, deliveryCount: 1, firstFailureAt: now.t, lastFailureAt: now.t });
    expect(c.heldBy('a')).toBe(0);
    const b = await acquire(p, 'b', 10, now.t, 2);
    expect(b.acquired).toEqual([{ firstOffset: 0, lastOffset: 1, deliveryCount: 2 }]);
    expect(await p.ack('a', [0])).toEqual([ErrorCode.InvalidDelivery]);
    expect(await p.ack('b', [0, 1])).toEqual([null, null]);
    expect(p.startOffset).toBe(2);
    expect(p.stats).toMatchObject({ delivered: 4, redelivered: 2, lockExpired: 2, acked: 2 });
  });

  it('renew extends a lock', async () => {
    const { c, p, now } = await setup();
    await acquire(p, 'a', 1, now.t, 1);
    now.t += LOCK - 10;
    expect(p.renew('a', [0], now.t, LOCK)).toEqual([null]);
    now.t += LOCK - 1;
    expect(c.tick(now.t).expiredLocks).toBe(0);
    expect(await p.ack('a', [0])).toEqual([null]);
  });

  it('release makes a record available at once, a failure with history', async () => {
    const { p, now } = await setup();
    await acquire(p, 'a', 3, now.t, 3);
    now.t += 5;
    expect(await p.release('a', [1])).toEqual([null]);
    expect(p.recordAt(1)).toMatchObject({ state: RecordState.Available, deliveryCount: 1, firstFailureAt: T0 + 5, lastFailureAt: T0 + 5 });
    const b = await acquire(p, 'b', 10, now.t, 3);
    expect(b.acquired).toEqual([{ firstOffset: 1, lastOffset: 1, deliveryCount: 2 }]);
    now.t += 5;
    await p.release('b', [1]);
    expect(p.recordAt(1)).toMatchObject({ deliveryCount: 2, firstFailureAt: T0 + 5, lastFailureAt: T0 + 10 });
  });

  it('delayed release: the record waits, counts as delayed, then is redelivered', async () => {
    const { p, now } = await setup();
    await acquire(p, 'a', 2, now.t, 5);
    await p.release('a', [0], 1000);
    expect(p.depth(5, now.t)).toEqual({ ready: 3, inFlight: 1, delayed: 1 });
    const early = await acquire(p, 'b', 10, now.t + 999, 5);
    expect(offsetsOf(early)).toEqual([2, 3, 4]);
    const due = await acquire(p, 'b', 10, now.t + 1000, 5);
    expect(due.acquired).toEqual([{ firstOffset: 0, lastOffset: 0, deliveryCount: 2 }]);
  });

  it('reject archives the record and returns its history for the dead-letter topic', async () => {
    const { p, now } = await setup();
    await acquire(p, 'a', 2, now.t, 2);
    await p.release('a', [0]);
    await acquire(p, 'a', 1, now.t + 10, 2);
    const r = await p.reject('a', [0], 'bad payload', now.t + 20);
    expect(r.results).toEqual([null]);
    expect(r.deadLetters).toEqual([{ offset: 0, deliveryCount: 2, reason: 'bad payload', firstFailureAt: T0, lastFailureAt: T0 + 20 }]);
    expect(p.recordAt(0).state).toBe(RecordState.Acked); // below start: done
    expect(p.startOffset).toBe(1);
    expect(offsetsOf(await acquire(p, 'b', 10, now.t + 30, 2))).toEqual([]);
    expect(p.stats.rejected).toBe(1);
  });

  it('maxDeliveries: the next acquisition dead-letters the record instead, with its history', async () => {
    const { p, now } = await setup({ maxDeliveries: 2 });
    await acquire(p, 'a', 2, now.t, 2);
    await p.release('a', [0, 1]);
    await acquire(p, 'a', 2, now.t + 100, 2);
    await p.ack('a', [1]);
    now.t += LOCK + 100;
    const r = await acquire(p, 'b', 10, now.t, 2);
    expect(r.acquired).toEqual([]);
    expect(r.deadLetters).toEqual([{ offset: 0, deliveryCount: 2, reason: 'max-deliveries', firstFailureAt: T0, lastFailureAt: now.t }]);
    expect(p.startOffset).toBe(2);
    expect(p.stats.deadLettered).toBe(1);
  });

  it('per-key ordering: one acquired record per key, in offset order per key', async () => {
    const { p, now } = await setup();
    const keys = ['x', 'y', 'x', undefined, 'y', 'x', 'z', undefined];
    const keyOf = (o: number) => keys[o];
    const a = await acquire(p, 'a', 10, now.t, 8, keyOf);
    expect(offsetsOf(a)).toEqual([0, 1, 3, 6, 7]);
    expect(p.endOffset).toBe(8);
    expect(p.depth(8, now.t)).toEqual({ ready: 3, inFlight: 5, delayed: 0 });
    expect(offsetsOf(await acquire(p, 'b', 10, now.t, 8, keyOf))).toEqual([]);
    await p.ack('a', [0]);
    expect(offsetsOf(await acquire(p, 'b', 10, now.t, 8, keyOf))).toEqual([2]);
    // y's next record waits while offset 1 is released with a delay, not just while acquired.
    await p.release('a', [1], 500);
    expect(offsetsOf(await acquire(p, 'b', 10, now.t, 8, keyOf))).toEqual([]);
    expect(offsetsOf(await acquire(p, 'b', 10, now.t + 500, 8, keyOf))).toEqual([1]);
    await p.ack('b', [1, 2]);
    expect(offsetsOf(await acquire(p, 'c', 10, now.t + 500, 8, keyOf))).toEqual([4, 5]);
  });

  it('prefetch: heldBy counts held records over partitions', async () => {
    const { c, p, now } = await setup();
    const q = c.partition('g', 'orders', 1);
    const prefetch = 5;
    await acquire(p, 'a', prefetch - c.heldBy('a'), now.t, 100);
    expect(c.heldBy('a')).toBe(5);
    expect((await acquire(q, 'a', prefetch - c.heldBy('a'), now.t, 100)).acquired).toEqual([]);
    await p.ack('a', [0, 1]);
    await p.release('a', [2]);
    expect(c.heldBy('a')).toBe(2);
    expect(offsetsOf(await acquire(q, 'a', prefetch - c.heldBy('a'), now.t, 100))).toEqual([0, 1, 2]);
    expect(c.heldBy('a')).toBe(5);
    expect(p.heldBy('a')).toBe(2);
    expect(q.heldBy('a')).toBe(3);
  });

  it('depth counts ready (including unread), in flight and delayed records', async () => {
    const { p, now } = await setup();
    expect(p.depth(50, now.t)).toEqual({ ready: 50, inFlight: 0, delayed: 0 });
    await acquire(p, 'a', 10, now.t, 50);
    await p.ack('a', [0, 1, 2]);
    await p.release('a', [3]);
    await p.release('a', [4], 100);
    await p.reject('a', [5], 'no');
    expect(p.depth(50, now.t)).toEqual({ ready: 40 + 1, inFlight: 4, delayed: 1 });
    expect(p.depth(50, now.t + 100)).toEqual({ ready: 42, inFlight: 4, delayed: 0 });
  });

  it('never tracks more than maxInFlightRecords beyond the start offset', async () => {
    const { p, now } = await setup({ maxInFlightRecords: 300 });
    expect(offsetsOf(await acquire(p, 'a', 1000, now.t, 1000)).length).toBe(300);
    expect(offsetsOf(await acquire(p, 'b', 1000, now.t, 1000))).toEqual([]);
    await p.ack('a', [1]);
    expect(offsetsOf(await acquire(p, 'b', 1000, now.t, 1000))).toEqual([]);
    await p.ack('a', [0]);
    expect(offsetsOf(await acquire(p, 'b', 1000, now.t, 1000))).toEqual([300, 301]);
    expect(p.depth(1000, now.t)).toEqual({ ready: 698, inFlight: 300, delayed: 0 });
  });

  it('grows its ring past the initial size and keeps every record', async () => {
    const { p, now } = await setup();
    await acquire(p, 'a', 200, now.t, 5000);
    await p.release('a', [7, 150], 0);
    const r = await acquire(p, 'b', 5000, now.t, 5000);
    expect(r.acquired[0]).toEqual({ firstOffset: 7, lastOffset: 7, deliveryCount: 2 });
    expect(r.acquired[1]).toEqual({ firstOffset: 150, lastOffset: 150, deliveryCount: 2 });
    expect(r.acquired[2]).toEqual({ firstOffset: 200, lastOffset: 4999, deliveryCount: 1 });
    expect(p.recordAt(8)).toMatchObject({ state: RecordState.Acquired, memberId: 'a', deliveryCount: 1 });
  });

  it('memberGone releases the member records at once; tick ends silent members', async () => {
    const { c, p, now } = await setup({ sessionTimeoutMs: 10_000 });
    await acquire(p, 'a', 3, now.t, 10);
    await acquire(p, 'b', 3, now.t, 10);
    expect(c.memberGone('a', now.t)).toBe(3);
    expect(p.recordAt(0)).toMatchObject({ state: RecordState.Available, deliveryCount: 1, lastFailureAt: now.t });
    expect(c.heldBy('a')).toBe(0);
    expect(await p.ack('a', [0])).toEqual([ErrorCode.InvalidDelivery]);
    now.t += 5_000;
    c.heartbeat('b');
    now.t += 9_999;
    expect(c.tick(now.t).goneMembers).toBe(0);
    now.t += 1;
    expect(c.tick(now.t).goneMembers).toBe(1);
    expect(p.depth(10, now.t)).toEqual({ ready: 10, inFlight: 0, delayed: 0 });
  });

  it('onLogStart drops records removed by retention; purge acks everything', async () => {
    const { c, p, now } = await setup();
    await acquire(p, 'a', 5, now.t, 20);
    p.onLogStart(3);
    expect(p.startOffset).toBe(3);
    expect(c.heldBy('a')).toBe(2);
    expect(await p.ack('a', [1])).toEqual([ErrorCode.InvalidDelivery]);
    p.onLogStart(10);
    expect([p.startOffset, p.endOffset, c.heldBy('a')]).toEqual([10, 10, 0]);
    expect(offsetsOf(await acquire(p, 'a', 2, now.t, 20))).toEqual([10, 11]);
    await p.purge(20);
    expect([p.startOffset, p.endOffset, c.heldBy('a')]).toEqual([20, 20, 0]);
    expect(p.depth(25, now.t)).toEqual({ ready: 5, inFlight: 0, delayed: 0 });
  });

  it('write-ahead: acquire resolves only after its delivery counts are in the journal', async () => {
    const { c, p, now, journal } = await setup();
    journal.gate();
    let done = false;
    const pending = acquire(p, 'a', 3, now.t, 3).then((r) => {
      done = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    // Records are already taken: another member does not get them meanwhile.
    expect((await acquire(p, 'b', 3, now.t, 3)).acquired).toEqual([]);
    expect(journal.records.length).toBe(0);
    journal.open();
    await pending;
    const restarted = new SharedGroupCoordinator({ journal: journal.copy(), clock: () => now.t });
    await restarted.start();
    expect(restarted.partition('g', 'orders', 0).recordAt(2)).toMatchObject({ state: RecordState.Available, deliveryCount: 1 });
    await c.close();
  });

  it('a failed append fails the acquire, frees its records, and is rewritten later', async () => {
    const { p, now, journal } = await setup();
    journal.failNext = true;
    const err = await acquire(p, 'a', 3, now.t, 3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KmqError);
    expect((err as KmqError).code).toBe(ErrorCode.StorageError);
    expect(p.recordAt(0)).toMatchObject({ state: RecordState.Available, deliveryCount: 1 });
    const r = await acquire(p, 'b', 3, now.t, 3);
    expect(r.acquired).toEqual([{ firstOffset: 0, lastOffset: 2, deliveryCount: 2 }]);
  });

  it('group commit: every change of one event-loop turn goes out in one append', async () => {
    const { c, now, journal } = await setup();
    const parts = [0, 1, 2, 3].map((n) => c.partition('g', 'orders', n));
    await Promise.all(parts.map((p) => acquire(p, 'a', 100, now.t, 100)));
    expect(journal.appends).toBe(1);
    const acks: Array<Promise<unknown>> = [];
    for (const p of parts) for (let o = 0; o < 100; o++) acks.push(p.ack('a', [o]));
    await Promise.all(acks);
    expect(journal.appends).toBe(2);
  });
});
