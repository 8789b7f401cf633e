import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../../lib/errors.js';
import {
  BLOCK_SIZE,
  RecordState,
  ShareKeyType,
  decodeBlockValue,
  decodeShareKey,
  decodeStartValue,
  encodeBlockValue,
  encodeShareKey,
  encodeStartValue,
  newBlockState,
} from './share-state-record.js';
import type { BlockState } from './share-state-record.js';

const timestamp = fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const record = fc.record({
  state: fc.integer({ min: 0, max: 4 }),
  dc: fc.oneof(fc.constant(0), fc.constant(1), fc.integer({ min: 0, max: 0xffffffff })),
  ff: timestamp,
  lf: timestamp,
  at: timestamp,
});
// Runs of equal records, as the engine produces them, so run-length encoding is exercised.
const block = fc.array(fc.tuple(fc.integer({ min: 1, max: 20 }), record), { minLength: 1, maxLength: BLOCK_SIZE }).map((runs) => {
  const b = newBlockState();
  let j = 0;
  for (const [len, r] of runs) {
    for (let k = 0; k < len && j < BLOCK_SIZE; k++, j++) {
      b.state[j] = r.state;
      b.deliveryCount[j] = r.dc;
      b.firstFailureAt[j] = r.ff;
      b.lastFailureAt[j] = r.lf;
      b.availableAt[j] = r.at;
    }
  }
  return b;
});

function plain(b: BlockState): unknown {
  return { s: [...b.state], d: [...b.deliveryCount], f: [...b.firstFailureAt], l: [...b.lastFailureAt], a: [...b.availableAt] };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof KmqError ? err.code : 'not a KmqError';
  }
  return undefined;
}

describe('share-state records', () => {
  it('round-trips keys of both types', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.nat({ max: 0xffffffff }), fc.nat({ max: Math.floor(Number.MAX_SAFE_INTEGER / BLOCK_SIZE) }), fc.boolean(), (group, topic, partition, block, isBlock) => {
        const key = { type: isBlock ? ShareKeyType.Block : ShareKeyType.Start, group, topic, partition, baseOffset: isBlock ? block * BLOCK_SIZE : 0 };
        const bytes = encodeShareKey(key);
        expect(decodeShareKey(bytes)).toEqual(key);
        expect(encodeShareKey(key).equals(bytes)).toBe(true);
      }),
    );
  });

  it('round-trips start values and block values', () => {
    fc.assert(fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), (n) => {
        expect(decodeStartValue(encodeStartValue(n))).toBe(n);
      }),
    );;
    fc.assert(
      fc.property(block, (b) => {
        const into = newBlockState();
        decodeBlockValue(encodeBlockValue(b), into);
        expect(plain(into)).toEqual(plain(b));
      }),
    );
  });

  it('encodes a block of equal records in one run', () => {
    const b = newBlockState();
    b.state.fill(RecordState.Acked);
    b.deliveryCount.fill(1);
    expect(encodeBlockValue(b).length).toBe(3 + 2 + 4);
  });

  it('refuses unknown versions and malformed bytes', () => {
    const key = encodeShareKey({ type: ShareKeyType.Block, group: 'g', topic: 't', partition: 1, baseOffset: 128 });
    const otherVersion = Buffer.from(key);
    otherVersion.writeUInt16BE(9, 0);
    expect(codeOf(() => decodeShareKey(otherVersion))).toBe(ErrorCode.UnsupportedVersion);
    expect(codeOf(() => decodeShareKey(key.subarray(0, key.length - 1)))).toBe(ErrorCode.CorruptMessage);
    const misaligned = Buffer.from(key);
    misaligned.writeUInt32BE(129, key.length - 4);
    expect(codeOf(() => decodeShareKey(misaligned))).toBe(ErrorCode.CorruptMessage);

    const value = encodeBlockValue(newBlockState());
    expect(codeOf(() => decodeBlockValue(value.subarray(0, value.length - 1), newBlockState()))).toBe(ErrorCode.CorruptMessage);
    expect(codeOf(() => decodeBlockValue(Buffer.concat([value, Buffer.from([0])]), newBlockState()))).toBe(ErrorCode.CorruptMessage);
    const badRun = Buffer.from(value);
    badRun[3] = BLOCK_SIZE + 1;
    expect(codeOf(() => decodeBlockValue(badRun, newBlockState()))).toBe(ErrorCode.CorruptMessage);
    expect(codeOf(() => decodeStartValue(Buffer.from([0, 2, 0, 0, 0, 0, 0, 0, 0, 0])))).toBe(ErrorCode.UnsupportedVersion);
  });
});
