import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../../lib/errors.js';
import type { SharedGroupOptions } from './share-options.js';
import type { AcquireResult } from './share-partition.js';
import { BLOCK_SIZE, RecordState } from './share-state-record.js';
import { SharedGroupCoordinator } from './shared-group-coordinator.js';
import { MemoryJournal } from './test-journal.js';

const LOCK = 30_000;
const T0 = 1_000_000;

async function open(journal: MemoryJournal, now: { t: number }, options?: SharedGroupOptions): Promise<SharedGroupCoordinator> {
  const c = new SharedGroupCoordinator({ journal, clock: () => now.t, options });
  await c.start();
  return c;
}

function offsetsOf(r: AcquireResult): number[] {
  const out: number[] = [];
  for (const x of r.acquired) for (let o = x.firstOffset; o <= x.lastOffset; o++) out.push(o);
  return out;
}

const turn = () => new Promise((r) => setImmediate(r));

describe('SharedGroupCoordinator', () => {
  it('refuses use before start and bad settings', async () => {
    const c = new SharedGroupCoordinator({ journal: new MemoryJournal() });
    expect(() => c.partition('g', 't', 0)).toThrow(KmqError);
    expect(() => new SharedGroupCoordinator({ journal: new MemoryJournal(), options: { maxInFlightRecords: 0 } })).toThrow(/maxInFlightRecords/);
  });

  it('after a restart: acked records stay acked, unacked ones come back, delivery counts continue', async () => {
    const now = { t: T0 };
    const journal = new MemoryJournal();
    const c = await open(journal, now);
    const p = c.partition('g', 'orders', 3);
    const acquire = (q: typeof p, member: string, n: number) => q.acquire(member, n, now.t, { lockTimeoutMs: LOCK, logEndOffset: 12 });
    await acquire(p, 'a', 10);
    await p.ack('a', [0, 1, 2, 3, 4, 8]);
    await p.release('a', [5], 60_000);
    await p.reject('a', [6], 'poison');
    await p.release('a', [9]);
    expect(offsetsOf(await acquire(p, 'b', 1))).toEqual([9]); // delivery 2
    // 7 and 9 are held when the broker dies.

    const journal2 = journal.copy();
    const c2 = await open(journal2, now);
    const p2 = c2.partition('g', 'orders', 3);
    expect(p2.startOffset).toBe(5);
    expect(p2.recordAt(5)).toMatchObject({ state: RecordState.Available, deliveryCount: 1, firstFailureAt: T0, deadline: T0 + 60_000 });
    expect(p2.recordAt(9)).toMatchObject({ state: RecordState.Available, deliveryCount: 2, firstFailureAt: T0 });
    const r = await acquire(p2, 'c', 100);
    expect(r.acquired).toEqual([
      { firstOffset: 7, lastOffset: 7, deliveryCount: 2 },
      { firstOffset: 9, lastOffset: 9, deliveryCount: 3 },
      { firstOffset: 10, lastOffset: 11, deliveryCount: 1 },
    ]);
    expect(await p2.ack('c', [7, 9, 10, 11])).toEqual([null, null, null, null]);
    now.t += 60_000;
    expect((await acquire(p2, 'c', 100)).acquired).toEqual([{ firstOffset: 5, lastOffset: 5, deliveryCount: 2 }]);
    await p2.ack('c', [5]);
    expect(p2.startOffset).toBe(12);
    await c2.close();
    const c3 = await open(journal2.compact(), now);
    expect(c3.partition('g', 'orders', 3).startOffset).toBe(12);
    expect(c3.partition('g', 'orders', 3).depth(12, now.t)).toEqual({ ready: 0, inFlight: 0, delayed: 0 });
  });

  it('keeps groups and partitions apart, in memory and in the journal', async () => {
    const now = { t: T0 };
    const journal = new MemoryJournal();
    const c = await open(journal, now);
    const opts = { lockTimeoutMs: LOCK, logEndOffset: 4 };
    await c.partition('g1', 't', 0).acquire('a', 4, now.t, opts);
    await c.partition('g1', 't', 0).ack('a', [0, 1]);
    await c.partition('g2', 't', 0).acquire('b', 1, now.t, opts);
    await c.partition('g1', 't', 1).acquire('a', 2, now.t, opts);
    const c2 = await open(journal.copy(), now);
    expect(c2.partition('g1', 't', 0).startOffset).toBe(2);
    expect(c2.partition('g2', 't', 0).recordAt(0).deliveryCount).toBe(1);
    expect(c2.partition('g2', 't', 0).recordAt(1).deliveryCount).toBe(0);
    expect(c2.partition('g1', 't', 1).recordAt(1).deliveryCount).toBe(1);
    expect(c2.partitionsOf('g1').length).toBe(2);
  });

  it('skips journal records of an unknown key version', async () => {
    const now = { t: T0 };
    const journal = new MemoryJournal();
    journal.records.push({ key: Buffer.from([0, 99, 1, 2]), value: Buffer.from([1]) });
    const c = await open(journal, now);
    expect(c.partitionsOf('g')).toEqual([]);
  });

  it('a new share-partition may start at an offset, which survives a restart', async () => {
    const now = { t: T0 };
    const journal = new MemoryJournal();
    const c = await open(journal, now);
    expect(c.partition('g', 't', 0, 500).startOffset).toBe(500);
    await c.flush();
    expect((await open(journal.copy(), now)).partition('g', 't', 0).startOffset).toBe(500);
  });

  it('describe gives depth per partition, members and counters', async () => {
    const now = { t: T0 };
    const c = await open(new MemoryJournal(), now, { maxDeliveries: 1 });
    const p0 = c.partition('g', 't', 0);
    const p1 = c.partition('g', 't', 1);
    await p0.acquire('a', 3, now.t, { lockTimeoutMs: LOCK, logEndOffset: 10 });
    await p1.acquire('b', 2, now.t, { lockTimeoutMs: LOCK, logEndOffset: 5 });
    await p0.release('a', [0]);
    await p0.ack('a', [1]);
    await c.partition('other', 't', 0).acquire('z', 1, now.t, { lockTimeoutMs: LOCK, logEndOffset: 5 });
    const dl = await p0.acquire('b', 1, now.t, { lockTimeoutMs: LOCK, logEndOffset: 10 });
    expect(dl.deadLetters.map((d) => d.offset)).toEqual([0]);
    const d = c.describe('g', (_t, p) => (p === 0 ? 12 : 5));
    expect(d.members).toBe(2);
    expect(d.partitions.map((x) => [x.partition, x.startOffset, x.endOffset, x.ready, x.inFlight, x.delayed])).toEqual([
      [0, 2, 4, 8, 2, 0],
      [1, 0, 2, 3, 2, 0],
    ]);
    expect(d.stats).toMatchObject({ delivered: 6, redelivered: 0, acked: 1, released: 1, deadLettered: 1 });
    expect(c.describe('nothing')).toEqual({ group: 'nothing', members: 0, partitions: [], stats: expect.any(Object) });
  });

  it('the journal stays bounded: blocks below the start offset are tombstoned', async () => {
    const now = { t: T0 };
    const journal = new MemoryJournal();
    const c = await open(journal, now);
    const p = c.partition('g', 'orders', 0);
    const total = 20_000;
    for (let i = 0; i < total / 500; i++) {
      const r = await p.acquire('a', 500, now.t, { lockTimeoutMs: LOCK, logEndOffset: total });
      const offsets = offsetsOf(r);
      // Ack out of order, in two halves, so blocks are rewritten more than once.
      await p.ack('a', offsets.filter((o) => o % 2 === 1));
      await p.ack('a', offsets.filter((o) => o % 2 === 0));
    }
    await c.close();
    expect(p.startOffset).toBe(total);
    const tombstones = journal.records.filter((r) => r.value === null).length;
    expect(tombstones).toBe(Math.floor(total / BLOCK_SIZE));
    const compacted = journal.compact();
    // Only the start record and at most the partly done last block remain.
    expect(compacted.records.length).toBeLessThanOrEqual(2);
    // Far fewer journal records than records consumed.
    expect(journal.records.length).toBeLessThan(total / 10);
    const c2 = await open(compacted, now);
    expect(c2.partition('g', 'orders', 0).startOffset).toBe(total);
  });

  it('property: no double ack, every record ends acked or archived, delivery counts never go back, across restarts', async () => {
    const member = fc.constantFrom('m0', 'm1', 'm2');
    const pick = fc.array(fc.nat({ max: 50 }), { maxLength: 6 });
    const op = fc.oneof(
      fc.record({ kind: fc.constant('acquire' as const), member, n: fc.integer({ min: 1, max: 8 }), keyed: fc.boolean() }),
      fc.record({ kind: fc.constant('ack' as const), member, pick }),
      fc.record({ kind: fc.constant('release' as const), member, pick, delay: fc.constantFrom(0, 0, 700) }),
      fc.record({ kind: fc.constant('reject' as const), member, pick }),
      fc.record({ kind: fc.constant('time' as const), ms: fc.constantFrom(100, 1_000, LOCK) }),
      fc.record({ kind: fc.constant('gone' as const), member }),
      fc.record({ kind: fc.constant('produce' as const), n: fc.integer({ min: 1, max: 10 }) }),
      fc.record({ kind: fc.constant('restart' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), fc.constantFrom(0, 3), fc.integer({ min: 16, max: 300 }), async (ops, maxDeliveries, maxInFlightRecords) => {
        const now = { t: T0 };
        let journal = new MemoryJournal();
        const options = { maxDeliveries, maxInFlightRecords };
        let c = await open(journal, now, options);
        let logEnd = 20;
        const acked = new Set<number>();
        const archived = new Set<number>();
        const lastDc = new Map<number, number>();
        const held = new Map<string, number[]>();
        // Who holds each offset, until when: a live lock is exclusive.
        const holder = new Map<number, { m: string; until: number }>();
        const keyOf = (o: number) => (o % 3 === 0 ? undefined : `k${o % 5}`);
        const p = () => c.partition('g', 'q', 0);
        const settled = (o: number, into: Set<number>) => {
          expect(acked.has(o), `offset ${o} settled after an ack`).toBe(false);
          expect(archived.has(o), `offset ${o} settled after archiving`).toBe(false);
          into.add(o);
        };
        const acquire = async (m: string, n: number, keyed: boolean) => {
          const r = await p().acquire(m, n, now.t, { lockTimeoutMs: LOCK, logEndOffset: logEnd, ...(keyed ? { keyOf } : {}) });
          for (const x of r.acquired) {
            for (let o = x.firstOffset; o <= x.lastOffset; o++) {
              expect(acked.has(o) || archived.has(o), `offset ${o} delivered after it was settled`).toBe(false);
              expect(x.deliveryCount).toBe((lastDc.get(o) ?? 0) + 1);
              lastDc.set(o, x.deliveryCount);
              const h = holder.get(o);
              expect(h !== undefined && h.until > now.t, `offset ${o} acquired by ${m} while ${h?.m} holds it`).toBe(false);
              holder.set(o, { m, until: now.t + LOCK });
              held.set(m, [...(held.get(m) ?? []), o]);
            }
          }
          for (const d of r.deadLetters) {
            expect(d.deliveryCount).toBe(maxDeliveries);
            settled(d.offset, archived);
          }
          return r;
        };
        const chosen = (m: string, pickIdx: number[]) => {
          const h = held.get(m) ?? [];
          return pickIdx.map((i) => (i < h.length ? h[i]! : i));
        };
        for (const o of ops) {
          switch (o.kind) {
            case 'acquire':
              await acquire(o.member, o.n, o.keyed);
              break;
            case 'ack': {
              const offs = chosen(o.member, o.pick);
              const res = await p().ack(o.member, offs);
              res.forEach((e, i) => e === null && settled(offs[i]!, acked));
              res.forEach((e, i) => e === null && holder.delete(offs[i]!));
              break;
            }
            case 'release': {
              const offs = chosen(o.member, o.pick);
              const res = await p().release(o.member, offs, o.delay);
              res.forEach((e, i) => e === null && holder.delete(offs[i]!));
              break;
            }
            case 'reject': {
              const offs = chosen(o.member, o.pick);
              const r = await p().reject(o.member, offs, 'bad');
              r.results.forEach((e, i) => e === null && settled(offs[i]!, archived));
              r.results.forEach((e, i) => e === null && holder.delete(offs[i]!));
              break;
            }
            case 'time':
              now.t += o.ms;
              c.tick(now.t);
              break;
            case 'gone':
              c.memberGone(o.member, now.t);
              for (const [off, h] of holder) if (h.m === o.member) holder.delete(off);
              break;
            case 'produce':
              logEnd += o.n;
              break;
            case 'restart': {
              journal = journal.copy();
              c = await open(journal, now, options);
              held.clear();
              holder.clear();
              for (const [off, dc] of lastDc) {
                if (off >= p().startOffset) expect(p().recordAt(off).deliveryCount).toBeGreaterThanOrEqual(dc);
                else expect(acked.has(off) || archived.has(off), `offset ${off} below start but not settled`).toBe(true);
              }
              break;
            }
          }
        }
        // Consumers keep acking: everything ends acked or archived.
        for (let round = 0; round < 100 && p().startOffset < logEnd; round++) {
          now.t += LOCK;
          c.tick(now.t);
          const r = await acquire('drain', 1000, round % 2 === 0);
          const offs = offsetsOf(r);
          const res = await p().ack('drain', offs);
          res.forEach((e, i) => {
            expect(e).toBe(null);
            settled(offs[i]!, acked);
          });
          await turn();
        }
        expect(p().startOffset).toBe(logEnd);
        for (let off = 0; off < logEnd; off++) expect(acked.has(off) || archived.has(off), `offset ${off} never settled`).toBe(true);
        expect(p().depth(logEnd, now.t)).toEqual({ ready: 0, inFlight: 0, delayed: 0 });
        await c.close();
      }),
      { numRuns: 150 },
    );
  });
});

describe('invalid acks carry the INVALID_DELIVERY code on the wire', () => {
  it('has a wire number', async () => {
    const { errorCodeToWire, errorCodeFromWire } = await import('../../../protocol/error-codes.js');
    const n = errorCodeToWire(ErrorCode.InvalidDelivery);
    expect(n).toBeGreaterThan(1);
    expect(errorCodeFromWire(n)).toBe(ErrorCode.InvalidDelivery);
  });
});
