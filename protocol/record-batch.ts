/**
 * The RecordBatch codec: records inside a batch, after the 61-byte header of
 * batch-header.ts (Kafka v2 record format, no compression).
 *
 * Record (varint/varlong are zigzag, see varint.ts):
 *   varint   length           bytes of the record after this field
 *   int8     attributes       0 (unused)
 *   varlong  timestampDelta   timestamp - header.firstTimestamp
 *   varint   offsetDelta      offset - header.baseOffset; records are numbered 0..recordCount-1
 *   varint   keyLength        -1 for a null key
 *   bytes    key
 *   varint   valueLength      -1 for a null value
 *   bytes    value
 *   varint   headerCount
 *   per header: varint keyLength, UTF-8 key, varint valueLength (-1 = null), value bytes
 *
 * Invariants of a valid batch: total size = batchLength + 12 >= 61, magic 2,
 * recordCount >= 1, lastOffsetDelta = recordCount - 1, CRC32C over [21, end) matches,
 * and the records fill the batch exactly. firstTimestamp is the first record's
 * timestamp, maxTimestamp the largest. With the log-append-time attribute (bit 3) every
 * record reads as maxTimestamp. Compression bits (0-2) must be 0.
 *
 * Decoded keys and values are subarrays of the input, not copies: they are valid as
 * long as the caller keeps that buffer unchanged. All functions are synchronous and
 * keep no shared state, so any caller may use them at any time; a BatchBuilder belongs
 * to one producer.
 */
import { ErrorCode, KmqError } from '../lib/errors.js';
import {
  BATCH_HEADER_BYTES,
  BATCH_LOG_OVERHEAD,
  BATCH_MAGIC,
  CRC_START,
  Off,
  readBatchHeader,
  readInt64,
  writeInt64,
} from './batch-header.js';
import type { BatchHeader } from './batch-header.js';
import { crc32c } from './crc32c.js';
import { VarintReader, sizeOfVarint, sizeOfVarlong, writeVarint, writeVarlong } from './varint.js';

/** One record header. Keys are strings (UTF-8 on the wire); values are bytes or null. */
export interface RecordHeader {
  key: string;
  value: Buffer | null;
}

/** A record to encode. `timestamp` is in ms since the epoch; it defaults to Date.now(). */
export interface RecordInput {
  key?: Buffer | null;
  value: Buffer | null;
  headers?: RecordHeader[];
  timestamp?: number;
}

/**
 * A decoded record. `offset` is absolute (baseOffset + offsetDelta); `key` and `value`
 * are subarrays of the decoded buffer.
 */
export interface DecodedRecord {
  offset: number;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeader[];
}

/** Header fields a producer sets on a batch. */
export interface BatchOptions {
  /** Idempotent producer id; default -1 (not idempotent). */
  producerId?: number;
  /** Default -1. */
  producerEpoch?: number;
  /** Sequence number of the first record; default -1. */
  baseSequence?: number;
  /** Default 0; the broker stamps the real base offset on append. */
  baseOffset?: number;
}

const DEFAULT_BUILDER_CAPACITY = 16 * 1024;
/** Largest record count, key, value or batch size the int32 fields can express. */
const INT32_MAX = 0x7fffffff;
const ATTR_COMPRESSION_MASK = 0x07;
const ATTR_LOG_APPEND_TIME = 0x08;

function corrupt(message: string, context: Record<string, unknown> = {}): KmqError {
  return new KmqError(ErrorCode.CorruptMessage, message, context);
}

function invalid(message: string, context: Record<string, unknown> = {}): KmqError {
  return new KmqError(ErrorCode.InvalidRequest, message, context);
}

// Byte lengths of the current record's header keys, computed while sizing the record
// and reused while writing it. Safe to share: append() runs to completion synchronously.
let headerKeyBytes: number[] = [];

/** UTF-8 byte length of `s`; a JavaScript loop beats Buffer.byteLength for short ASCII keys. */
function utf8Length(s: string): number {
  const n = s.length;
  if (n > 64) return Buffer.byteLength(s, 'utf8');
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  }
  return n;
}

/** Incremental builder used by the producer: append records one by one, then build() once. */
export class BatchBuilder {
  private buf: Buffer;
  private pos = BATCH_HEADER_BYTES;
  private recordCount = 0;
  private firstTimestamp = 0;
  private maxTimestamp = 0;
  private built = false;
  private readonly producerId: number;
  private readonly producerEpoch: number;
  private readonly baseSequence: number;
  private readonly baseOffset: number;

  constructor(options: BatchOptions = {}, initialCapacity = DEFAULT_BUILDER_CAPACITY) {
    this.producerId = options.producerId ?? -1;
    this.producerEpoch = options.producerEpoch ?? -1;
    this.baseSequence = options.baseSequence ?? -1;
    this.baseOffset = options.baseOffset ?? 0;
    if (!Number.isSafeInteger(this.producerId)) throw invalid(`producerId must be an integer, got ${this.producerId}`);
    if (!Number.isInteger(this.producerEpoch) || this.producerEpoch < -32768 || this.producerEpoch > 32767) {
      throw invalid(`producerEpoch must be an int16, got ${this.producerEpoch}`);
    }
    if (!Number.isInteger(this.baseSequence) || (this.baseSequence | 0) !== this.baseSequence) {
      throw invalid(`baseSequence must be an int32, got ${this.baseSequence}`);
    }
    if (!Number.isSafeInteger(this.baseOffset)) throw invalid(`baseOffset must be an integer, got ${this.baseOffset}`);
    this.buf = Buffer.allocUnsafe(Math.max(BATCH_HEADER_BYTES + 64, Math.ceil(initialCapacity)));
  }

  /** Appends one record. `timestamp` defaults to Date.now(). */
  append(key: Buffer | null, value: Buffer | null, headers?: RecordHeader[] | null, timestamp?: number): void {
    if (this.built) throw invalid('BatchBuilder.append after build()');
    const ts = timestamp ?? Date.now();
    if (this.recordCount === 0) {
      if (!Number.isSafeInteger(ts)) throw invalid(`Record timestamp must be an integer, got ${ts}`);
      this.firstTimestamp = ts;
      this.maxTimestamp = ts;
    } else if (ts > this.maxTimestamp) {
      this.maxTimestamp = ts;
    }
    const tsDelta = ts - this.firstTimestamp;
    // A safe integer delta implies an integer timestamp whose delta fits a varlong.
    if (!Number.isSafeInteger(tsDelta)) throw invalid(`Record timestamp must be an integer near the batch's first, got ${ts}`);
    const offsetDelta = this.recordCount;
    if (offsetDelta === INT32_MAX) throw invalid('Batch holds too many records');

    const keyLen = key === null ? -1 : key.length;
    const valueLen = value === null ? -1 : value.length;
    const headerCount = headers == null ? 0 : headers.length;

    let bodySize =
      1 + sizeOfVarlong(tsDelta) + sizeOfVarint(offsetDelta) + sizeOfVarint(keyLen) + sizeOfVarint(valueLen) + sizeOfVarint(headerCount);
    if (keyLen > 0) bodySize += keyLen;
    if (valueLen > 0) bodySize += valueLen;
    if (headerCount > 0) {
      if (headerKeyBytes.length < headerCount) headerKeyBytes = new Array<number>(headerCount).fill(0);
      for (let i = 0; i < headerCount; i++) {
        const h = headers![i]!;
        const kb = utf8Length(h.key);
        headerKeyBytes[i] = kb;
        const vl = h.value === null ? -1 : h.value.length;
        bodySize += sizeOfVarint(kb) + kb + sizeOfVarint(vl) + (vl > 0 ? vl : 0);
      }
    }
    if (bodySize > INT32_MAX) throw new KmqError(ErrorCode.MessageTooLarge, `Record of ${bodySize} bytes is too large`);

    const recordSize = sizeOfVarint(bodySize) + bodySize;
    const needed = this.pos + recordSize;
    if (needed > INT32_MAX) throw new KmqError(ErrorCode.MessageTooLarge, `Batch would exceed ${INT32_MAX} bytes`);
    if (needed > this.buf.length) this.grow(needed);

    const buf = this.buf;
    let pos = writeVarint(buf, this.pos, bodySize);
    buf[pos++] = 0; // attributes
    pos = writeVarlong(buf, pos, tsDelta);
    pos = writeVarint(buf, pos, offsetDelta);
    pos = writeVarint(buf, pos, keyLen);
    if (keyLen > 0) {
      buf.set(key!, pos);
      pos += keyLen;
    }
    pos = writeVarint(buf, pos, valueLen);
    if (valueLen > 0) {
      buf.set(value!, pos);
      pos += valueLen;
    }
    pos = writeVarint(buf, pos, headerCount);
    for (let i = 0; i < headerCount; i++) {
      const h = headers![i]!;
      const kb = headerKeyBytes[i]!;
      pos = writeVarint(buf, pos, kb);
      if (kb === h.key.length) {
        for (let c = 0; c < kb; c++) buf[pos + c] = h.key.charCodeAt(c);
        pos += kb;
      } else {
        pos += buf.write(h.key, pos, kb, 'utf8');
      }
      const hv = h.value;
      if (hv === null) {
        pos = writeVarint(buf, pos, -1);
      } else {
        pos = writeVarint(buf, pos, hv.length);
        buf.set(hv, pos);
        pos += hv.length;
      }
    }
    this.pos = pos;
    this.recordCount++;
  }

  /** Records appended so far. */
  get count(): number {
    return this.recordCount;
  }

  /** Exact size in bytes of the batch build() will return. */
  get sizeBytes(): number {
    return this.pos;
  }

  /**
   * Fills the header, computes the CRC and returns the batch. The builder is spent
   * afterwards. The batch is a view of the builder's buffer (no copy), which may have
   * spare capacity: size the builder near the expected batch size.
   */
  build(): Buffer {
    if (this.built) throw invalid('BatchBuilder.build called twice');
    if (this.recordCount === 0) throw invalid('Cannot build an empty batch');
    this.built = true;
    const batch = this.buf.subarray(0, this.pos);
    this.buf = Buffer.alloc(0);
    writeInt64(batch, Off.baseOffset, this.baseOffset);
    batch.writeInt32BE(batch.length - BATCH_LOG_OVERHEAD, Off.batchLength);
    batch.writeInt32BE(-1, Off.partitionLeaderEpoch);
    batch.writeInt8(BATCH_MAGIC, Off.magic);
    batch.writeInt16BE(0, Off.attributes);
    batch.writeInt32BE(this.recordCount - 1, Off.lastOffsetDelta);
    writeInt64(batch, Off.firstTimestamp, this.firstTimestamp);
    writeInt64(batch, Off.maxTimestamp, this.maxTimestamp);
    writeInt64(batch, Off.producerId, this.producerId);
    batch.writeInt16BE(this.producerEpoch, Off.producerEpoch);
    batch.writeInt32BE(this.baseSequence, Off.baseSequence);
    batch.writeInt32BE(this.recordCount, Off.recordCount);
    batch.writeUInt32BE(crc32c(batch.subarray(CRC_START)), Off.crc);
    return batch;
  }

  private grow(needed: number): void {
    const next = Buffer.allocUnsafe(Math.min(INT32_MAX, Math.max(needed, this.buf.length * 2)));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
}

/** Encodes `records` into one batch; the same bytes as appending them to a BatchBuilder. */
export function encodeBatch(records: RecordInput[], options?: BatchOptions): Buffer {
  // Size the buffer once: payload bytes plus a generous per-record overhead.
  let estimate = BATCH_HEADER_BYTES;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    estimate += 24 + (r.key == null ? 0 : r.key.length) + (r.value === null ? 0 : r.value.length);
    const hs = r.headers;
    if (hs !== undefined) {
      for (let j = 0; j < hs.length; j++) {
        const h = hs[j]!;
        estimate += 10 + h.key.length * 3 + (h.value === null ? 0 : h.value.length);
      }
    }
  }
  const builder = new BatchBuilder(options, estimate);
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    builder.append(r.key ?? null, r.value, r.headers, r.timestamp);
  }
  return builder.build();
}

/**
 * Checks one batch without decoding its records (broker hot path): size >= 61,
 * batchLength consistent with the buffer length, magic 2, recordCount >= 1,
 * lastOffsetDelta == recordCount - 1, CRC. Throws KmqError(CorruptMessage) naming
 * what is wrong. Returns the header.
 */
export function validateBatch(batch: Buffer): BatchHeader {
  if (batch.length < BATCH_HEADER_BYTES) {
    throw corrupt(`Batch of ${batch.length} bytes is shorter than its ${BATCH_HEADER_BYTES}-byte header`, { size: batch.length });
  }
  const header = readBatchHeader(batch);
  if (header.batchLength + BATCH_LOG_OVERHEAD !== batch.length) {
    throw corrupt(`Batch length field ${header.batchLength} does not match its ${batch.length} bytes`, {
      batchLength: header.batchLength,
      size: batch.length,
    });
  }
  if (header.magic !== BATCH_MAGIC) throw corrupt(`Batch magic is ${header.magic}, expected ${BATCH_MAGIC}`, { magic: header.magic });
  if (header.recordCount < 1) throw corrupt(`Batch record count is ${header.recordCount}`, { recordCount: header.recordCount });
  if (header.lastOffsetDelta !== header.recordCount - 1) {
    throw corrupt(`Batch lastOffsetDelta ${header.lastOffsetDelta} does not match record count ${header.recordCount}`, {
      lastOffsetDelta: header.lastOffsetDelta,
      recordCount: header.recordCount,
    });
  }
  const crc = crc32c(batch.subarray(CRC_START));
  if (crc !== header.crc) {
    throw corrupt(`Batch CRC mismatch: stored ${header.crc}, computed ${crc}`, { storedCrc: header.crc, computedCrc: crc });
  }
  return header;
}

/**
 * Splits concatenated batches (a produce payload or a fetch answer). Validates each
 * batch's framing (length, and magic when present) but not its CRC; a trailing partial
 * batch is ignored when allowPartialTail, else throws CorruptMessage. Returns subarrays.
 */
export function splitBatches(buf: Buffer, allowPartialTail = false): Buffer[] {
  const batches: Buffer[] = [];
  let at = 0;
  for (;;) {
    const size = nextBatchSize(buf, at, allowPartialTail);
    if (size === 0) return batches;
    batches.push(buf.subarray(at, at + size));
    at += size;
  }
}

/**
 * Size of the whole batch starting at `at`, or 0 at the end of `buf` or before a
 * tolerated partial tail. Throws CorruptMessage on an impossible length or magic.
 */
function nextBatchSize(buf: Buffer, at: number, allowPartialTail: boolean): number {
  const remaining = buf.length - at;
  if (remaining === 0) return 0;
  if (remaining >= Off.batchLength + 4) {
    const batchLength = buf.readInt32BE(at + Off.batchLength);
    if (batchLength < BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD) {
      throw corrupt(`Batch at byte ${at} has impossible length ${batchLength}`, { position: at, batchLength });
    }
    if (remaining > Off.magic && buf[at + Off.magic] !== BATCH_MAGIC) {
      throw corrupt(`Batch at byte ${at} has magic ${buf[at + Off.magic]}, expected ${BATCH_MAGIC}`, { position: at });
    }
    const size = batchLength + BATCH_LOG_OVERHEAD;
    if (size <= remaining) return size;
  }
  if (allowPartialTail) return 0;
  throw corrupt(`Partial batch of ${remaining} bytes at byte ${at}`, { position: at, remaining });
}

/** Decodes one batch (CRC checked) into records with absolute offsets. Keys/values are subarrays of `batch`. */
export function decodeBatch(batch: Buffer): { header: BatchHeader; records: DecodedRecord[] } {
  const header = validateBatch(batch);
  const records: DecodedRecord[] = [];
  readRecords(batch, 0, header.baseOffset, -Infinity, records, null);
  return { header, records };
}

/**
 * Fast path for consumers: calls fn per record of every whole batch in buf (a partial
 * last batch, as a fetch answer may end with, is ignored), skipping records with
 * offset < minOffset; verifies CRC unless verifyCrc === false. Returns the offset after
 * the last record seen (or minOffset if none).
 */
export function forEachRecord(buf: Buffer, minOffset: number, fn: (r: DecodedRecord) => void, verifyCrc = true): number {
  let next = minOffset;
  let at = 0;
  for (;;) {
    const size = nextBatchSize(buf, at, true);
    if (size === 0) return next;
    const baseOffset = readInt64(buf, at + Off.baseOffset);
    const lastOffset = baseOffset + buf.readInt32BE(at + Off.lastOffsetDelta);
    // Whole batches below minOffset are skipped unread, as a fetch often starts mid-batch.
    if (lastOffset >= minOffset) {
      const batch = buf.subarray(at, at + size);
      if (verifyCrc) validateBatch(batch);
      const end = readRecords(batch, 0, baseOffset, minOffset, null, fn);
      if (end > next) next = end;
    }
    at += size;
  }
}

// Header keys repeat from record to record (trace ids, idempotency keys), so short
// keys are interned in a small table indexed by a hash of their bytes: a hit costs a
// byte comparison instead of decoding a new string. Safe to share: strings are
// immutable and every lookup completes synchronously.
const KEY_CACHE_SLOTS = 256;
const KEY_CACHE_MAX_BYTES = 48;
const keyCacheBytes: Uint8Array[] = new Array<Uint8Array>(KEY_CACHE_SLOTS).fill(new Uint8Array(0));
const keyCacheStrings: string[] = new Array<string>(KEY_CACHE_SLOTS).fill('');

function headerKey(buf: Buffer, start: number, len: number): string {
  if (len === 0) return '';
  const end = start + len;
  if (len > KEY_CACHE_MAX_BYTES) return buf.toString('utf8', start, end);
  let h = len;
  for (let i = start; i < end; i++) h = (Math.imul(h, 31) + buf[i]!) | 0;
  const slot = h & (KEY_CACHE_SLOTS - 1);
  const cached = keyCacheBytes[slot]!;
  if (cached.length === len) {
    let i = 0;
    while (i < len && cached[i] === buf[start + i]) i++;
    if (i === len) return keyCacheStrings[slot]!;
  }
  const key = buf.toString('utf8', start, end);
  keyCacheBytes[slot] = Uint8Array.prototype.slice.call(buf, start, end);
  keyCacheStrings[slot] = key;
  return key;
}

function readHeaders(r: VarintReader, count: number, recordEnd: number): RecordHeader[] {
  const buf = r.buf;
  const headers: RecordHeader[] = [];
  for (let i = 0; i < count; i++) {
    const kl = r.readVarint();
    if (kl < 0 || kl > recordEnd - r.pos) throw corrupt(`Header key length ${kl} out of bounds`, { position: r.pos });
    const key = headerKey(buf, r.pos, kl);
    r.pos += kl;
    const vl = r.readVarint();
    let value: Buffer | null = null;
    if (vl !== -1) {
      if (vl < 0 || vl > recordEnd - r.pos) throw corrupt(`Header value length ${vl} out of bounds`, { position: r.pos });
      value = buf.subarray(r.pos, r.pos + vl);
      r.pos += vl;
    }
    headers.push({ key, value });
  }
  return headers;
}

/**
 * Reads the records of the batch at `at` (header already checked), emitting those with
 * offset >= minOffset to `out` or `fn`. Returns the offset after the last emitted
 * record, or -Infinity if none was.
 */
function readRecords(
  batch: Buffer,
  at: number,
  baseOffset: number,
  minOffset: number,
  out: DecodedRecord[] | null,
  fn: ((r: DecodedRecord) => void) | null,
): number {
  const attributes = batch.readInt16BE(at + Off.attributes);
  if ((attributes & ATTR_COMPRESSION_MASK) !== 0) {
    throw corrupt(`Compressed batches are not supported (attributes ${attributes})`, { attributes });
  }
  const count = batch.readInt32BE(at + Off.recordCount);
  const firstTimestamp = readInt64(batch, at + Off.firstTimestamp);
  const logAppendTime = (attributes & ATTR_LOG_APPEND_TIME) !== 0;
  const maxTimestamp = readInt64(batch, at + Off.maxTimestamp);
  const batchEnd = at + batch.readInt32BE(at + Off.batchLength) + BATCH_LOG_OVERHEAD;
  const r = new VarintReader(batch, at + BATCH_HEADER_BYTES, batchEnd);
  let next = -Infinity;

  for (let i = 0; i < count; i++) {
    r.end = batchEnd;
    const length = r.readVarint();
    if (length < 1 || length > batchEnd - r.pos) throw corrupt(`Record ${i} length ${length} out of bounds`, { record: i, length });
    const recordEnd = r.pos + length;
    r.end = recordEnd;
    r.pos++; // attributes
    const tsDelta = r.readVarlong();
    const offsetDelta = r.readVarint();
    const offset = baseOffset + offsetDelta;

    if (offset < minOffset) {
      r.pos = recordEnd;
      continue;
    }

    const keyLen = r.readVarint();
    let key: Buffer | null = null;
    if (keyLen !== -1) {
      if (keyLen < 0 || keyLen > recordEnd - r.pos) throw corrupt(`Record ${i} key length ${keyLen} out of bounds`, { record: i });
      key = batch.subarray(r.pos, r.pos + keyLen);
      r.pos += keyLen;
    }
    const valueLen = r.readVarint();
    let value: Buffer | null = null;
    if (valueLen !== -1) {
      if (valueLen < 0 || valueLen > recordEnd - r.pos) throw corrupt(`Record ${i} value length ${valueLen} out of bounds`, { record: i });
      value = batch.subarray(r.pos, r.pos + valueLen);
      r.pos += valueLen;
    }
    const headerCount = r.readVarint();
    if (headerCount < 0) throw corrupt(`Record ${i} header count ${headerCount}`, { record: i });
    const headers = headerCount === 0 ? [] : readHeaders(r, headerCount, recordEnd);
    if (r.pos !== recordEnd) throw corrupt(`Record ${i} has ${recordEnd - r.pos} unread bytes`, { record: i });

    const record: DecodedRecord = {
      offset,
      timestamp: logAppendTime ? maxTimestamp : firstTimestamp + tsDelta,
      key,
      value,
      headers,
    };
    if (out !== null) out.push(record);
    else fn!(record);
    next = offset + 1;
  }
  if (r.pos !== batchEnd) throw corrupt(`Batch has ${batchEnd - r.pos} bytes after its ${count} records`, { recordCount: count });
  return next;
}
