import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../lib/errors.js';
import { VarintReader, isVarlongValue, sizeOfVarint, sizeOfVarlong, writeVarint, writeVarlong } from './varint.js';

/** Reference zigzag varint encoder on BigInt, independent of the code under test. */
function reference(value: bigint): number[] {
  let z = value >= 0n ? value << 1n : ((-value) << 1n) - 1n;
  const out: number[] = [];
  while (z >= 0x80n) {
    out.push(Number(z & 0x7fn) | 0x80);
    z >>= 7n;
  }
  out.push(Number(z));
  return out;
}

function encodeVarint(value: number): number[] {
  const buf = Buffer.alloc(10);
  const end = writeVarint(buf, 0, value);
  expect(end).toBe(sizeOfVarint(value));
  return [...buf.subarray(0, end)];
}

function encodeVarlong(value: number): number[] {
  const buf = Buffer.alloc(10);
  const end = writeVarlong(buf, 0, value);
  expect(end).toBe(sizeOfVarlong(value));
  return [...buf.subarray(0, end)];
}

function expectCorrupt(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KmqError);
    expect((err as KmqError).code).toBe(ErrorCode.CorruptMessage);
    return;
  }
  expect.fail('expected a CorruptMessage error');
}

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const P53 = 2 ** 53;

describe('varint', () => {
  it('encodes the known edge values', () => {
    expect(encodeVarint(0)).toEqual([0x00]);
    expect(encodeVarint(-1)).toEqual([0x01]);
    expect(encodeVarint(1)).toEqual([0x02]);
    expect(encodeVarint(-64)).toEqual([0x7f]);
    expect(encodeVarint(63)).toEqual([0x7e]);
    expect(encodeVarint(64)).toEqual([0x80, 0x01]);
    expect(encodeVarint(-65)).toEqual([0x81, 0x01]);
    expect(encodeVarint(INT32_MAX)).toEqual([0xfe, 0xff, 0xff, 0xff, 0x0f]);
    expect(encodeVarint(INT32_MIN)).toEqual([0xff, 0xff, 0xff, 0xff, 0x0f]);
    for (const v of [0, -1, 1, 63, 64, -64, -65, INT32_MAX, INT32_MIN]) {
      expect(new VarintReader(Buffer.from(encodeVarint(v))).readVarint()).toBe(v);
    }
  });

  it('round-trips any int32 and matches the reference encoding', () => {
    fc.assert(
      fc.property(fc.integer({ min: INT32_MIN, max: INT32_MAX }), (v) => {
        const bytes = encodeVarint(v);
        expect(bytes).toEqual(reference(BigInt(v)));
        const r = new VarintReader(Buffer.from(bytes));
        expect(r.readVarint()).toBe(v);
        expect(r.pos).toBe(bytes.length);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses truncated and overlong varints', () => {
    expectCorrupt(() => new VarintReader(Buffer.alloc(0)).readVarint());
    expectCorrupt(() => new VarintReader(Buffer.from([0x80])).readVarint());
    expectCorrupt(() => new VarintReader(Buffer.from([0xff, 0xff, 0xff, 0xff])).readVarint());
    // A fifth byte may only carry the top 4 bits of a 32-bit value.
    expectCorrupt(() => new VarintReader(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x1f])).readVarint());
    expectCorrupt(() => new VarintReader(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x00])).readVarint());
    // The reader stops at `end`, not at the end of the buffer.
    expectCorrupt(() => new VarintReader(Buffer.from([0x80, 0x01]), 0, 1).readVarint());
  });
});

describe('varlong', () => {
  it('encodes the known edge values', () => {
    expect(encodeVarlong(0)).toEqual([0x00]);
    expect(encodeVarlong(-1)).toEqual([0x01]);
    expect(encodeVarlong(2 ** 31)).toEqual(reference(2n ** 31n));
    expect(encodeVarlong(-(2 ** 31) - 1)).toEqual(reference(-(2n ** 31n) - 1n));
    expect(encodeVarlong(P53)).toEqual([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    expect(encodeVarlong(-P53)).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f]);
    expect(encodeVarlong(P53 - 1)).toEqual(reference(2n ** 53n - 1n));
    for (const v of [0, -1, INT32_MAX, INT32_MIN, 2 ** 31, -(2 ** 31) - 1, P53, -P53, P53 - 1, -P53 + 1, 1700000000000]) {
      const r = new VarintReader(Buffer.from(encodeVarlong(v)));
      expect(r.readVarlong()).toBe(v);
    }
  });

  it('writes the same bytes as a varint for int32 values', () => {
    fc.assert(
      fc.property(fc.integer({ min: INT32_MIN, max: INT32_MAX }), (v) => {
        expect(encodeVarlong(v)).toEqual(encodeVarint(v));
      }),
    );
  });

  it('round-trips any integer in [-2^53, 2^53] and matches the reference encoding', () => {
    const values = fc.oneof(
      fc.integer({ min: -P53, max: P53 }),
      fc.constantFrom(-P53, P53, -P53 + 1, P53 - 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 35, -(2 ** 49)),
      fc.integer({ min: 0, max: 52 }).map((e) => 2 ** e),
      fc.integer({ min: 0, max: 52 }).map((e) => -(2 ** e) - 1),
    );
    fc.assert(
      fc.property(values, (v) => {
        expect(isVarlongValue(v)).toBe(true);
        const bytes = encodeVarlong(v);
        expect(bytes).toEqual(reference(BigInt(v)));
        const r = new VarintReader(Buffer.from(bytes));
        expect(r.readVarlong()).toBe(v);
        expect(r.pos).toBe(bytes.length);
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses values beyond 2^53 in magnitude, overlong and truncated varlongs', () => {
    expect(isVarlongValue(P53 + 2)).toBe(false);
    expect(isVarlongValue(1.5)).toBe(false);
    expectCorrupt(() => new VarintReader(Buffer.from(reference(2n ** 53n + 1n))).readVarlong());
    expectCorrupt(() => new VarintReader(Buffer.from(reference(-(2n ** 53n) - 1n))).readVarlong());
    expectCorrupt(() => new VarintReader(Buffer.from(reference(2n ** 62n))).readVarlong());
    expectCorrupt(() => new VarintReader(Buffer.from(reference(-(2n ** 63n)))).readVarlong());
    expectCorrupt(() => new VarintReader(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00])).readVarlong());
    expectCorrupt(() => new VarintReader(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80])).readVarlong());
    expectCorrupt(() => new VarintReader(Buffer.alloc(0)).readVarlong());
  });
});
