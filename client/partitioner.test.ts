import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { murmur2, partitionForKey } from './murmur2.js';
import { Partitioner } from './partitioner.js';

describe('murmur2', () => {
  it('matches the Java client (Kafka UtilsTest.testMurmur2 vectors)', () => {
    const vectors: Array<[string, number]> = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, hash] of vectors) expect(murmur2(Buffer.from(key)), key).toBe(hash);
  });

  it('is a signed 32-bit integer for any input', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => Number.isInteger(murmur2(b)) && murmur2(b) === (murmur2(b) | 0)));
  });
});

describe('Partitioner', () => {
  it('sends the same key to the same partition, always within range', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 1, max: 1000 }), (key, n) => {
        const a = new Partitioner();
        const b = new Partitioner();
        const p = a.partition('t', key, n);
        return p >= 0 && p < n && Number.isInteger(p) && p === b.partition('other', Buffer.from(key), n) && p === partitionForKey(key, n);
      }),
    );
  });

  it('spreads distinct keys over all partitions', () => {
    const p = new Partitioner();
    const counts = new Array<number>(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[p.partition('t', Buffer.from(`key-${i}`), 8)]!++;
    for (const c of counts) expect(c).toBeGreaterThan(700);
  });

  it('keeps unkeyed records on one partition until its batch is sealed, then switches', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 64 }), fc.integer({ min: 1, max: 20 }), (n, rounds) => {
        const p = new Partitioner();
        let last = -1;
        for (let r = 0; r < rounds; r++) {
          const current = p.partition('t', null, n);
          if (current < 0 || current >= n || current === last) return false;
          for (let i = 0; i < 5; i++) if (p.partition('t', undefined, n) !== current) return false;
          p.batchSealed('t', current, n);
          last = current;
        }
        return true;
      }),
    );
  });

  it('ignores a sealed batch of a partition that is not the sticky one', () => {
    const p = new Partitioner(() => 0.5);
    const sticky = p.partition('t', null, 4);
    p.batchSealed('t', (sticky + 1) % 4, 4);
    expect(p.partition('t', null, 4)).toBe(sticky);
  });
});
