import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../lib/logger.js';
import { encodeBatch } from '../../protocol/record-batch.js';
import { Partition } from '../partition/partition.js';
import { cleanupDirs, config, tempDir } from '../storage/test-fixtures.js';
import { IDEMPOTENCY_KEY_HEADER, PublishDedupe, idempotencyKeyOf, mayCarryIdempotencyKey } from './publish-dedupe.js';
import type { DedupeSource } from './publish-dedupe.js';

const dirs: string[] = [];
const open: Partition[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close()));
  cleanupDirs(dirs);
});

const WINDOW = 10_000;

function keyed(key: string | null, timestamp: number, value = 'v'): { value: Buffer; timestamp: number; headers: Array<{ key: string; value: Buffer }> } {
  return { value: Buffer.from(value), timestamp, headers: key === null ? [] : [{ key: IDEMPOTENCY_KEY_HEADER, value: Buffer.from(key) }] };
}

function source(name: string, p: Partition): DedupeSource {
  return { destination: name, partition: p.index, logEndOffset: p.logEndOffset, offsetForTimestamp: (ts) => p.offsetForTimestamp(ts), read: (o, n) => p.read(o, n) };
}

describe('PublishDedupe', () => {
  it('remembers a key per destination for the window', () => {
    const clock = { now: 1_000_000 };
    const d = new PublishDedupe({ windowMs: WINDOW, maxEntries: 100, clock: () => clock.now });
    d.remember('orders', 'k1', 2, 40);
    expect(d.lookup('orders', 'k1')).toMatchObject({ partition: 2, offset: 40 });
    expect(d.lookup('payments', 'k1')).toBeUndefined();
    clock.now += WINDOW - 1;
    expect(d.lookup('orders', 'k1')).toBeDefined();
    clock.now += 1;
    expect(d.lookup('orders', 'k1')).toBeUndefined();
    d.expire();
    expect(d.size).toBe(0);
  });

  it('expires from the front and stops at the first live key', () => {
    const clock = { now: 1_000_000 };
    const d = new PublishDedupe({ windowMs: WINDOW, maxEntries: 100, clock: () => clock.now });
    d.remember('q', 'a', 0, 0);
    clock.now += 5000;
    d.remember('q', 'b', 0, 1);
    clock.now += 5000;
    d.expire();
    expect(d.size).toBe(1);
    expect(d.lookup('q', 'b')).toBeDefined();
  });

  it('stays within maxEntries by dropping the keys closest to expiry', () => {
    const clock = { now: 1_000_000 };
    const d = new PublishDedupe({ windowMs: WINDOW, maxEntries: 3, clock: () => clock.now });
    for (let i = 0; i < 5; i++) {
      d.remember('q', `k${i}`, 0, i);
      clock.now += 1;
    }
    expect(d.size).toBe(3);
    expect(d.evictedCount).toBe(2);
    expect(d.lookup('q', 'k0')).toBeUndefined();
    expect(d.lookup('q', 'k1')).toBeUndefined();
    expect(d.lookup('q', 'k4')).toMatchObject({ offset: 4 });
  });

  it('forgets a key only while it still points at the failed append, and a deleted destination entirely', () => {
    const d = new PublishDedupe({ windowMs: WINDOW, maxEntries: 100 });
    d.remember('q', 'k', 0, 7);
    d.forget('q', 'k', 0, 8);
    expect(d.lookup('q', 'k')).toBeDefined();
    d.forget('q', 'k', 0, 7);
    expect(d.lookup('q', 'k')).toBeUndefined();
    d.remember('q', 'a', 0, 1);
    d.remember('q2', 'a', 0, 1);
    d.forgetDestination('q');
    expect(d.lookup('q', 'a')).toBeUndefined();
    expect(d.lookup('q2', 'a')).toBeDefined();
  });

  it('is off with a zero window', () => {
    const d = new PublishDedupe({ windowMs: 0, maxEntries: 100 });
    expect(d.enabled).toBe(false);
    d.remember('q', 'k', 0, 1);
    expect(d.lookup('q', 'k')).toBeUndefined();
  });

  it('finds the header by its bytes and reads its value', () => {
    const withKey = encodeBatch([keyed('abc', 1)]);
    expect(mayCarryIdempotencyKey(withKey)).toBe(true);
    expect(mayCarryIdempotencyKey(encodeBatch([keyed(null, 1)]))).toBe(false);
    expect(idempotencyKeyOf([{ key: 'other', value: Buffer.from('x') }, { key: IDEMPOTENCY_KEY_HEADER, value: Buffer.from('abc') }])).toBe('abc');
    expect(idempotencyKeyOf([{ key: IDEMPOTENCY_KEY_HEADER, value: null }])).toBeUndefined();
  });

  it('rebuilds the keys of the last window from the logs, keeping the first position of each key', async () => {
    const now = 5_000_000;
    const p = Partition.open('orders', 0, tempDir(dirs), config(), { logger: silentLogger() });
    open.push(p);
    await p.append(encodeBatch([keyed('old', now - WINDOW - 5000), keyed('old2', now - WINDOW)]), 1 << 20); // offsets 0-1: outside
    await p.append(encodeBatch([keyed(null, now - 3000), keyed(null, now - 3000)]), 1 << 20); // 2-3: no header
    await p.append(encodeBatch([keyed('a', now - 2000), keyed(null, now - 2000), keyed('b', now - 1000)]), 1 << 20); // 4-6
    await p.append(encodeBatch([keyed('a', now - 500)]), 1 << 20); // 7: a repeat written before dedupe existed
    const q = Partition.open('jobs', 1, tempDir(dirs), config(), { logger: silentLogger() });
    open.push(q);
    await q.append(encodeBatch([keyed('a', now - 100)]), 1 << 20);

    const clock = { now };
    const d = new PublishDedupe({ windowMs: WINDOW, maxEntries: 100, clock: () => clock.now });
    expect(d.rebuild([source('orders', p), source('jobs', q)])).toBe(4);
    expect(d.lookup('orders', 'old')).toBeUndefined();
    expect(d.lookup('orders', 'old2')).toBeUndefined();
    expect(d.lookup('orders', 'a')).toMatchObject({ partition: 0, offset: 4 });
    expect(d.lookup('orders', 'b')).toMatchObject({ partition: 0, offset: 6 });
    expect(d.lookup('jobs', 'a')).toMatchObject({ partition: 1, offset: 0 });
    // Each key expires a window after its record's timestamp.
    clock.now = now - 2000 + WINDOW;
    expect(d.lookup('orders', 'a')).toBeUndefined();
    expect(d.lookup('orders', 'b')).toBeDefined();
  });
});

describe('PublishDedupe against a reference model', () => {
  it('finds exactly the live keys while under the bound, and never a wrong position or more than the bound', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('remember' as const), key: fc.integer({ min: 0, max: 9 }) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 4000 }) }),
      fc.constant({ kind: 'expire' as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), fc.integer({ min: 1, max: 12 }), (ops, maxEntries) => {
        const clock = { now: 0 };
        const d = new PublishDedupe({ windowMs: WINDOW, maxEntries, clock: () => clock.now });
        const model = new Map<string, { offset: number; expiresAt: number }>();
        let offset = 0;
        let evictions = false;
        for (const o of ops) {
          if (o.kind === 'advance') clock.now += o.ms;
          else if (o.kind === 'expire') d.expire();
          else {
            const key = `k${o.key}`;
            const live = model.get(key);
            // The publish path remembers only keys it did not find.
            if (d.lookup('q', key) !== undefined) continue;
            if (live !== undefined && live.expiresAt > clock.now) evictions = true; // it was evicted for room
            model.set(key, { offset, expiresAt: clock.now + WINDOW });
            d.remember('q', key, 0, offset++);
          }
          expect(d.size).toBeLessThanOrEqual(maxEntries);
          for (const [key, m] of model) {
            const got = d.lookup('q', key);
            if (got !== undefined) expect(got.offset).toBe(m.offset);
            if (m.expiresAt <= clock.now) expect(got).toBeUndefined();
            else if (!evictions && d.evictedCount === 0) expect(got).toBeDefined();
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
