import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../lib/errors.js';
import { BATCH_HEADER_BYTES, CRC_START, Off, computeBatchCrc, readBatchHeader, stampBatch } from './batch-header.js';
import { BatchBuilder, decodeBatch, encodeBatch, forEachRecord, splitBatches, validateBatch } from './record-batch.js';
import type { BatchOptions, DecodedRecord, RecordHeader, RecordInput } from './record-batch.js';

// ---- generators ----

const bytes = (maxLength: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));
const nullableBytes = (maxLength: number): fc.Arbitrary<Buffer | null> =>
  fc.oneof(fc.constant(null), fc.constant(Buffer.alloc(0)), bytes(maxLength));

const headerArb: fc.Arbitrary<RecordHeader> = fc.record({
  key: fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }), fc.string({ unit: 'grapheme-ascii', maxLength: 20 })),
  value: nullableBytes(32),
});

const BASE_TS = 1_700_000_000_000;
const timestampArb = fc.oneof(
  fc.integer({ min: BASE_TS - 1_000_000, max: BASE_TS + 1_000_000 }),
  fc.integer({ min: -1, max: 2 ** 45 }),
);

const recordArb: fc.Arbitrary<RecordInput> = fc.record(
  {
    key: nullableBytes(64),
    value: nullableBytes(300),
    headers: fc.array(headerArb, { maxLength: 4 }),
    timestamp: timestampArb,
  },
  { requiredKeys: ['value', 'timestamp'] },
);

const optionsArb: fc.Arbitrary<BatchOptions> = fc.record(
  {
    producerId: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 2 ** 40 })),
    producerEpoch: fc.integer({ min: -1, max: 32767 }),
    baseSequence: fc.integer({ min: -1, max: 0x7fffffff }),
    baseOffset: fc.integer({ min: 0, max: 2 ** 50 }),
  },
  { requiredKeys: [] },
);

// ---- helpers ----

function expectCorrupt(fn: () => unknown): KmqError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KmqError);
    expect((err as KmqError).code).toBe(ErrorCode.CorruptMessage);
    return err as KmqError;
  }
  return expect.fail('expected a CorruptMessage error');
}

/** Runs fn; anything it throws must be a KmqError. */
function onlyKmqErrors<T>(fn: () => T): T | KmqError {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof KmqError)) throw err;
    return err;
  }
}

function expectRecordsEqual(decoded: DecodedRecord[], input: RecordInput[], baseOffset: number): void {
  expect(decoded.length).toBe(input.length);
  for (let i = 0; i < input.length; i++) {
    const d = decoded[i]!;
    const r = input[i]!;
    expect(d.offset).toBe(baseOffset + i);
    expect(d.timestamp).toBe(r.timestamp);
    expect(d.key === null ? null : [...d.key]).toEqual(r.key == null ? null : [...r.key]);
    expect(d.value === null ? null : [...d.value]).toEqual(r.value === null ? null : [...r.value]);
    expect(d.headers.map((h) => ({ key: h.key, value: h.value === null ? null : [...h.value] }))).toEqual(
      (r.headers ?? []).map((h) => ({ key: h.key, value: h.value === null ? null : [...h.value] })),
    );
  }
}

/** Keys and values must be views into `batch`'s memory, inside its bounds. */
function expectViewsInside(records: DecodedRecord[], batch: Buffer): void {
  for (const r of records) {
    for (const b of [r.key, r.value, ...r.headers.map((h) => h.value)]) {
      if (b === null) continue;
      expect(b.buffer).toBe(batch.buffer);
      expect(b.byteOffset).toBeGreaterThanOrEqual(batch.byteOffset);
      expect(b.byteOffset + b.length).toBeLessThanOrEqual(batch.byteOffset + batch.length);
    }
  }
}

function flipBit(buf: Buffer, bit: number): Buffer {
  const copy = Buffer.from(buf);
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
}

function rewriteCrc(batch: Buffer): void {
  batch.writeUInt32BE(computeBatchCrc(batch), Off.crc);
}

function sampleBatch(count = 3, baseOffset = 0): Buffer {
  const records: RecordInput[] = [];
  for (let i = 0; i < count; i++) {
    records.push({
      key: i % 2 === 0 ? Buffer.from(`k${i}`) : null,
      value: Buffer.from(`value-${i}`),
      headers: i === 1 ? [{ key: 'trace', value: Buffer.from('t1') }, { key: 'é', value: null }] : [],
      timestamp: BASE_TS + i,
    });
  }
  return encodeBatch(records, { baseOffset });
}

// ---- tests ----

describe('encode / decode', () => {
  it('decode(encode(records)) gives back the records, and BatchBuilder gives the same bytes', () => {
    fc.assert(
      fc.property(fc.array(recordArb, { minLength: 1, maxLength: 40 }), optionsArb, (records, options) => {
        const batch = encodeBatch(records, options);

        const builder = new BatchBuilder(options, 1);
        for (const r of records) builder.append(r.key ?? null, r.value, r.headers, r.timestamp);
        expect(builder.count).toBe(records.length);
        expect(builder.sizeBytes).toBe(batch.length);
        expect(builder.build().equals(batch)).toBe(true);

        const { header, records: decoded } = decodeBatch(batch);
        const baseOffset = options.baseOffset ?? 0;
        expectRecordsEqual(decoded, records, baseOffset);
        expectViewsInside(decoded, batch);

        const timestamps = records.map((r) => r.timestamp!);
        expect(header).toMatchObject({
          baseOffset,
          batchLength: batch.length - 12,
          magic: 2,
          attributes: 0,
          lastOffsetDelta: records.length - 1,
          recordCount: records.length,
          firstTimestamp: timestamps[0],
          maxTimestamp: Math.max(...timestamps),
          producerId: options.producerId ?? -1,
          producerEpoch: options.producerEpoch ?? -1,
          baseSequence: options.baseSequence ?? -1,
        });

        const seen: DecodedRecord[] = [];
        expect(forEachRecord(batch, 0, (r) => seen.push(r))).toBe(baseOffset + records.length);
        expect(seen).toEqual(decoded);
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips batches of many records', () => {
    fc.assert(
      fc.property(fc.array(recordArb, { minLength: 1000, maxLength: 3000 }), (records) => {
        const batch = encodeBatch(records);
        expectRecordsEqual(decodeBatch(batch).records, records, 0);
      }),
      { numRuns: 5 },
    );
  });

  it('decodes header keys right when many distinct keys share a length', () => {
    const records: RecordInput[] = [];
    for (let i = 0; i < 2000; i++) {
      const key = `h${String(i).padStart(4, '0')}`;
      records.push({ value: null, headers: [{ key, value: null }, { key: 'trace-id', value: null }, { key: `ü${i}`, value: null }], timestamp: BASE_TS });
    }
    const batch = encodeBatch(records);
    for (let pass = 0; pass < 2; pass++) expectRecordsEqual(decodeBatch(batch).records, records, 0);
  });

  it('round-trips records of large values through a growing builder', () => {
    const big = Buffer.alloc(300_000, 7);
    const builder = new BatchBuilder({}, 16);
    builder.append(null, big, null, BASE_TS);
    builder.append(Buffer.from('k'), big.subarray(1), [{ key: 'h', value: big.subarray(2) }], BASE_TS - 5);
    const batch = builder.build();
    const { records, header } = decodeBatch(batch);
    expect(records.map((r) => [r.value!.length, r.timestamp])).toEqual([
      [300_000, BASE_TS],
      [299_999, BASE_TS - 5],
    ]);
    expect(records[1]!.headers[0]!.value!.length).toBe(299_998);
    expect(header.maxTimestamp).toBe(BASE_TS);
  });

  it('defaults a record timestamp to the current time', () => {
    const before = Date.now();
    const batch = encodeBatch([{ value: Buffer.from('x') }]);
    const after = Date.now();
    const [r] = decodeBatch(batch).records;
    expect(r!.timestamp).toBeGreaterThanOrEqual(before);
    expect(r!.timestamp).toBeLessThanOrEqual(after);
  });

  it('reads every record as maxTimestamp when the batch has the log-append-time attribute', () => {
    const batch = encodeBatch([
      { value: null, timestamp: BASE_TS },
      { value: null, timestamp: BASE_TS + 9 },
    ]);
    batch.writeInt16BE(0x08, Off.attributes);
    rewriteCrc(batch);
    expect(decodeBatch(batch).records.map((r) => r.timestamp)).toEqual([BASE_TS + 9, BASE_TS + 9]);
  });

  it('refuses compressed batches', () => {
    const batch = sampleBatch();
    batch.writeInt16BE(0x01, Off.attributes);
    rewriteCrc(batch);
    expect(expectCorrupt(() => decodeBatch(batch)).message).toMatch(/Compressed/);
  });

  it('refuses misuse of the builder', () => {
    expect(() => new BatchBuilder().build()).toThrow(KmqError);
    const b = new BatchBuilder();
    b.append(null, Buffer.from('a'));
    b.build();
    expect(() => b.append(null, Buffer.from('b'))).toThrow(/after build/);
    expect(() => b.build()).toThrow(/twice/);
    expect(() => new BatchBuilder().append(null, null, null, 1.5)).toThrow(KmqError);
    expect(() => new BatchBuilder({ producerEpoch: 40000 })).toThrow(/producerEpoch/);
  });
});

describe('corruption detection', () => {
  // baseOffset [0, 8) and partitionLeaderEpoch [12, 16) are stamped by the broker after
  // the producer computed the CRC, so they are outside the CRC by design, as in Kafka.
  // Every other bit — batchLength, magic, the CRC itself and [21, end) — is covered.
  const isCovered = (bit: number): boolean => {
    const byte = bit >> 3;
    return (byte >= Off.batchLength && byte < Off.partitionLeaderEpoch) || byte >= Off.magic;
  };

  it('detects every single-bit flip of a sample batch outside the broker-stamped fields', () => {
    const batch = sampleBatch(4);
    let checked = 0;
    for (let bit = 0; bit < batch.length * 8; bit++) {
      if (!isCovered(bit)) continue;
      const flipped = flipBit(batch, bit);
      expectCorrupt(() => validateBatch(flipped));
      expectCorrupt(() => decodeBatch(flipped));
      checked++;
    }
    expect(checked).toBe((batch.length - 8) * 8 - 32);
  });

  it('detects any single-bit flip of any batch', () => {
    const arb = fc
      .array(recordArb, { minLength: 1, maxLength: 8 })
      .chain((records) => {
        const batch = encodeBatch(records);
        return fc.tuple(fc.constant(batch), fc.integer({ min: 0, max: batch.length * 8 - 1 }).filter(isCovered));
      });
    fc.assert(
      fc.property(arb, ([batch, bit]) => {
        const flipped = flipBit(batch, bit);
        expectCorrupt(() => validateBatch(flipped));
        expectCorrupt(() => decodeBatch(flipped));
        // A longer batchLength reads to forEachRecord as a batch still arriving.
        let delivered = 0;
        const result = onlyKmqErrors(() => forEachRecord(flipped, 0, () => delivered++));
        if (result instanceof KmqError) expect(result.code).toBe(ErrorCode.CorruptMessage);
        else expect(delivered).toBe(0);
      }),
      { numRuns: 500 },
    );
  });

  it('accepts a batch after the broker stamps baseOffset and leader epoch', () => {
    const batch = sampleBatch(3);
    stampBatch(batch, 0, 123_456_789_012, 42);
    const header = validateBatch(batch);
    expect(header.baseOffset).toBe(123_456_789_012);
    expect(header.partitionLeaderEpoch).toBe(42);
    expect(decodeBatch(batch).records.map((r) => r.offset)).toEqual([123_456_789_012, 123_456_789_013, 123_456_789_014]);
  });

  it('names what is wrong', () => {
    const batch = sampleBatch(2);
    expect(expectCorrupt(() => validateBatch(batch.subarray(0, 60))).message).toMatch(/shorter/);
    expect(expectCorrupt(() => validateBatch(batch.subarray(0, batch.length - 1))).message).toMatch(/length/);
    const magic = Buffer.from(batch);
    magic[Off.magic] = 1;
    expect(expectCorrupt(() => validateBatch(magic)).message).toMatch(/magic/);
    const count = Buffer.from(batch);
    count.writeInt32BE(0, Off.recordCount);
    count.writeInt32BE(-1, Off.lastOffsetDelta);
    expect(expectCorrupt(() => validateBatch(count)).message).toMatch(/record count/);
    const delta = Buffer.from(batch);
    delta.writeInt32BE(5, Off.lastOffsetDelta);
    expect(expectCorrupt(() => validateBatch(delta)).message).toMatch(/lastOffsetDelta/);
    const crc = Buffer.from(batch);
    crc[crc.length - 1]! ^= 0xff;
    expect(expectCorrupt(() => validateBatch(crc)).message).toMatch(/CRC/);
  });

  it('refuses a record with bytes after its last field', () => {
    const batch = encodeBatch([{ value: Buffer.from('abc'), timestamp: BASE_TS }]);
    const recordLength = batch[BATCH_HEADER_BYTES]! >> 1; // one-byte zigzag varint
    const padded = Buffer.concat([batch, Buffer.from([0])]);
    padded[BATCH_HEADER_BYTES] = (recordLength + 1) << 1;
    padded.writeInt32BE(padded.length - 12, Off.batchLength);
    rewriteCrc(padded);
    expect(expectCorrupt(() => decodeBatch(padded)).message).toMatch(/unread/);
  });

  it('never reads outside the batch when the record bytes are garbage under a valid CRC', () => {
    const arb = fc.tuple(fc.array(recordArb, { minLength: 1, maxLength: 6 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat(40));
    fc.assert(
      fc.property(arb, ([records, edits, cut]) => {
        const encoded = encodeBatch(records);
        // Garbage edits in the records, an optional cut, then a valid length and CRC so
        // the record parser itself must cope. Sentinel bytes follow the batch in memory.
        const body = Buffer.from(encoded.subarray(0, Math.max(BATCH_HEADER_BYTES, encoded.length - cut)));
        for (const [at, v] of edits) {
          if (body.length > BATCH_HEADER_BYTES) body[BATCH_HEADER_BYTES + (at % (body.length - BATCH_HEADER_BYTES))] = v;
        }
        body.writeInt32BE(body.length - 12, Off.batchLength);
        rewriteCrc(body);
        const backing = Buffer.concat([body, Buffer.alloc(64, 0xee)]);
        const batch = backing.subarray(0, body.length);
        const result = onlyKmqErrors(() => decodeBatch(batch));
        if (result instanceof KmqError) {
          expect(result.code).toBe(ErrorCode.CorruptMessage);
        } else {
          expectViewsInside(result.records, batch);
        }
        const seen: DecodedRecord[] = [];
        const viaFn = onlyKmqErrors(() => forEachRecord(batch, 0, (r) => seen.push(r)));
        if (!(viaFn instanceof KmqError)) expectViewsInside(seen, batch);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('splitBatches', () => {
  const batchesArb = fc.array(
    fc.array(recordArb, { minLength: 1, maxLength: 5 }).map((r) => encodeBatch(r)),
    { minLength: 0, maxLength: 6 },
  );

  it('splits concatenated batches into subarrays of the input', () => {
    fc.assert(
      fc.property(batchesArb, (batches) => {
        const buf = Buffer.concat(batches);
        const parts = splitBatches(buf);
        expect(parts.length).toBe(batches.length);
        let at = 0;
        for (let i = 0; i < parts.length; i++) {
          expect(parts[i]!.equals(batches[i]!)).toBe(true);
          expect(parts[i]!.buffer).toBe(buf.buffer);
          expect(parts[i]!.byteOffset).toBe(buf.byteOffset + at);
          at += parts[i]!.length;
          validateBatch(parts[i]!);
        }
      }),
    );
  });

  it('drops a partial tail when allowed, and refuses it otherwise', () => {
    const arb = batchesArb
      .filter((b) => b.length > 0)
      .chain((batches) => {
        const total = batches.reduce((n, b) => n + b.length, 0);
        return fc.tuple(fc.constant(batches), fc.integer({ min: 0, max: total }));
      });
    fc.assert(
      fc.property(arb, ([batches, cut]) => {
        const buf = Buffer.concat(batches).subarray(0, cut);
        let whole = 0;
        let bytes = 0;
        while (whole < batches.length && bytes + batches[whole]!.length <= cut) bytes += batches[whole++]!.length;
        const parts = splitBatches(buf, true);
        expect(parts.length).toBe(whole);
        if (bytes === cut) {
          expect(splitBatches(buf).length).toBe(whole);
        } else {
          expect(expectCorrupt(() => splitBatches(buf)).message).toMatch(/Partial/);
        }
        // forEachRecord treats a fetch answer the same way: whole batches only.
        let n = 0;
        forEachRecord(buf, 0, () => n++);
        expect(n).toBe(parts.reduce((sum, p) => sum + decodeBatch(p).records.length, 0));
      }),
    );
  });

  it('throws only KmqError on garbage, and returns only in-bounds subarrays', () => {
    const garbageLength = fc.oneof(fc.integer({ min: -0x80000000, max: 0x7fffffff }), fc.constantFrom(-1, 0, 48, 49, 0x7fffffff, -0x80000000));
    const arb = fc.tuple(
      batchesArb,
      fc.uint8Array({ maxLength: 200 }),
      fc.option(garbageLength),
      fc.boolean(),
      fc.boolean(),
    );
    fc.assert(
      fc.property(arb, ([batches, junk, length, keepMagic, allowPartialTail]) => {
        const tail = Buffer.from(junk);
        if (length !== null && tail.length >= 12) tail.writeInt32BE(length, 8);
        if (keepMagic && tail.length > Off.magic) tail[Off.magic] = 2;
        const buf = Buffer.concat([...batches, tail]);
        const result = onlyKmqErrors(() => splitBatches(buf, allowPartialTail));
        if (!(result instanceof KmqError)) {
          let at = buf.byteOffset;
          for (const part of result) {
            expect(part.byteOffset).toBe(at);
            expect(part.length).toBeGreaterThanOrEqual(BATCH_HEADER_BYTES);
            at += part.length;
          }
          expect(at).toBeLessThanOrEqual(buf.byteOffset + buf.length);
        }
        onlyKmqErrors(() => forEachRecord(buf, 0, () => undefined));
        onlyKmqErrors(() => forEachRecord(buf, 0, () => undefined, false));
        onlyKmqErrors(() => validateBatch(buf));
        onlyKmqErrors(() => decodeBatch(buf));
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses a batch with the wrong magic', () => {
    const second = sampleBatch();
    second[Off.magic] = 1;
    expect(expectCorrupt(() => splitBatches(Buffer.concat([sampleBatch(), second]))).message).toMatch(/magic 1/);
  });

  it('refuses negative and too-small lengths even when partial tails are allowed', () => {
    const buf = Buffer.concat([sampleBatch(), Buffer.alloc(61)]);
    buf.writeInt32BE(-5, buf.length - 61 + Off.batchLength);
    expect(expectCorrupt(() => splitBatches(buf, true)).message).toMatch(/impossible length/);
    // A huge length cannot be told from a batch that has not fully arrived.
    buf.writeInt32BE(0x7fffffff, buf.length - 61 + Off.batchLength);
    buf[buf.length - 61 + Off.magic] = 2;
    expect(splitBatches(buf, true).length).toBe(1);
    expectCorrupt(() => splitBatches(buf, false));
  });
});

describe('forEachRecord', () => {
  /** Three stamped batches: offsets 100-102, 103-107, 108. */
  function fetchAnswer(): Buffer {
    const a = sampleBatch(3);
    const b = sampleBatch(5);
    const c = sampleBatch(1);
    stampBatch(a, 0, 100, 1);
    stampBatch(b, 0, 103, 1);
    stampBatch(c, 0, 108, 1);
    return Buffer.concat([a, b, c]);
  }

  it('skips records below minOffset and returns the offset after the last record', () => {
    const buf = fetchAnswer();
    for (const min of [0, 100, 101, 103, 105, 108]) {
      const offsets: number[] = [];
      expect(forEachRecord(buf, min, (r) => offsets.push(r.offset))).toBe(109);
      const expected: number[] = [];
      for (let o = Math.max(min, 100); o < 109; o++) expected.push(o);
      expect(offsets).toEqual(expected);
    }
    const none: number[] = [];
    expect(forEachRecord(buf, 200, (r) => none.push(r.offset))).toBe(200);
    expect(none).toEqual([]);
    expect(forEachRecord(Buffer.alloc(0), 7, () => undefined)).toBe(7);
  });

  it('ignores a partial last batch', () => {
    const buf = fetchAnswer();
    const offsets: number[] = [];
    expect(forEachRecord(buf.subarray(0, buf.length - 10), 0, (r) => offsets.push(r.offset))).toBe(108);
    expect(offsets).toEqual([100, 101, 102, 103, 104, 105, 106, 107]);
  });

  it('verifies CRC unless told not to', () => {
    const buf = fetchAnswer();
    buf[buf.length - 2]! ^= 0x01; // the last byte of the last value: "value-0" becomes "value-1"
    expectCorrupt(() => forEachRecord(buf, 0, () => undefined));
    const values: string[] = [];
    expect(forEachRecord(buf, 0, (r) => values.push(r.value!.toString()), false)).toBe(109);
    expect(values.length).toBe(9);
    expect(values[8]).toBe('value-1');
  });

  it('does not look into batches wholly below minOffset', () => {
    const buf = fetchAnswer();
    buf[CRC_START + 30]! ^= 0x01; // corrupt the first batch only
    const offsets: number[] = [];
    expect(forEachRecord(buf, 103, (r) => offsets.push(r.offset))).toBe(109);
    expect(offsets[0]).toBe(103);
  });

  it('decodes the same headers as decodeBatch', () => {
    const batch = sampleBatch(3);
    const seen: DecodedRecord[] = [];
    forEachRecord(batch, 0, (r) => seen.push(r));
    expect(seen).toEqual(decodeBatch(batch).records);
    expect(seen[1]!.headers.map((h) => h.key)).toEqual(['trace', 'é']);
    expect(readBatchHeader(batch).recordCount).toBe(3);
  });
});
