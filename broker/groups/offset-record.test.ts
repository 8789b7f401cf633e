import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { decodeOffsetKey, decodeOffsetValue, encodeOffsetKey, encodeOffsetValue, offsetKeyVersion } from './offset-record.js';

const name = fc.string({ unit: 'binary', maxLength: 40 });

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof KmqError ? err.code : 'not a KmqError';
  }
  return undefined;
}

describe('offset records', () => {
  it('round-trips keys and values', () => {
    fc.assert(
      fc.property(
        name,
        name,
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.maxSafeInteger(),
        name,
        fc.integer({ min: 0, max: 2 ** 50 }),
        (group, topic, partition, offset, metadata, commitTimestamp) => {
          const key = { group, topic, partition };
          expect(decodeOffsetKey(encodeOffsetKey(key))).toEqual(key);
          const value = { offset: Math.abs(offset), metadata, commitTimestamp };
          expect(decodeOffsetValue(encodeOffsetValue(value))).toEqual(value);
        },
      ),
    );
  });

  it('gives equal keys equal bytes and different keys different bytes', () => {
    fc.assert(
      fc.property(name, name, fc.nat(), name, name, fc.nat(), (g1, t1, p1, g2, t2, p2) => {
        const a = encodeOffsetKey({ group: g1, topic: t1, partition: p1 });
        const b = encodeOffsetKey({ group: g2, topic: t2, partition: p2 });
        expect(a.equals(b)).toBe(g1 === g2 && t1 === t2 && p1 === p2);
      }),
    );
  });

  it('starts keys and values with version 1', () => {
    const key = encodeOffsetKey({ group: 'g', topic: 't', partition: 3 });
    expect(offsetKeyVersion(key)).toBe(1);
    expect(key.readUInt16BE(0)).toBe(1);
    expect(encodeOffsetValue({ offset: 5, metadata: '', commitTimestamp: 0 }).readUInt16BE(0)).toBe(1);
  });

  it('refuses truncated or padded bytes as corrupt', () => {
    const key = encodeOffsetKey({ group: 'group', topic: 'topic', partition: 1 });
    const value = encodeOffsetValue({ offset: 10, metadata: 'meta', commitTimestamp: 1000 });
    for (let n = 0; n < key.length; n++) expect(codeOf(() => decodeOffsetKey(key.subarray(0, n)))).toBe(ErrorCode.CorruptMessage);
    for (let n = 0; n < value.length; n++) expect(codeOf(() => decodeOffsetValue(value.subarray(0, n)))).toBe(ErrorCode.CorruptMessage);
    expect(codeOf(() => decodeOffsetKey(Buffer.concat([key, Buffer.from([0])])))).toBe(ErrorCode.CorruptMessage);
    expect(codeOf(() => decodeOffsetValue(Buffer.concat([value, Buffer.from([0])])))).toBe(ErrorCode.CorruptMessage);
  });

  it('refuses other versions as unsupported', () => {
    const key = encodeOffsetKey({ group: 'g', topic: 't', partition: 0 });
    key.writeUInt16BE(2, 0);
    expect(codeOf(() => decodeOffsetKey(key))).toBe(ErrorCode.UnsupportedVersion);
    const value = encodeOffsetValue({ offset: 1, metadata: '', commitTimestamp: 0 });
    value.writeUInt16BE(9, 0);
    expect(codeOf(() => decodeOffsetValue(value))).toBe(ErrorCode.UnsupportedVersion);
  });

  it('refuses values it cannot represent', () => {
    expect(codeOf(() => encodeOffsetValue({ offset: 2 ** 60, metadata: '', commitTimestamp: 0 }))).toBe(ErrorCode.InvalidRequest);
    expect(codeOf(() => encodeOffsetKey({ group: 'x'.repeat(70_000), topic: 't', partition: 0 }))).toBe(ErrorCode.InvalidRequest);
    expect(codeOf(() => encodeOffsetKey({ group: 'g', topic: 't', partition: -1 }))).toBe(ErrorCode.InvalidRequest);
  });
});
