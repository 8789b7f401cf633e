import { crc32c } from './crc32c.js';

/**
 * RecordBatch header layout (big-endian), the same shape as Kafka's v2 batch:
 *
 *   offset  size  field
 *        0     8  baseOffset            stamped by the broker on append
 *        8     4  batchLength           bytes after this field (whole batch = batchLength + 12)
 *       12     4  partitionLeaderEpoch  stamped by the broker
 *       16     1  magic                 = 2
 *       17     4  crc                   CRC32C of bytes [21, end)
 *       21     2  attributes            bit 3: timestamp type (0 create, 1 log append); others reserved 0
 *       23     4  lastOffsetDelta       = recordCount - 1
 *       27     8  firstTimestamp        ms since the epoch
 *       35     8  maxTimestamp
 *       43     8  producerId            -1 when not idempotent
 *       51     2  producerEpoch
 *       53     4  baseSequence          -1 when not idempotent
 *       57     4  recordCount
 *       61        records (see record-batch.ts)
 *
 * The CRC does not cover baseOffset, batchLength, partitionLeaderEpoch or magic,
 * so the broker stamps offsets without recomputing it.
 */
export const BATCH_HEADER_BYTES = 61;
export const BATCH_LOG_OVERHEAD = 12; // baseOffset + batchLength
export const BATCH_MAGIC = 2;

export const Off = {
  baseOffset: 0,
  batchLength: 8,
  partitionLeaderEpoch: 12,
  magic: 16,
  crc: 17,
  attributes: 21,
  lastOffsetDelta: 23,
  firstTimestamp: 27,
  maxTimestamp: 35,
  producerId: 43,
  producerEpoch: 51,
  baseSequence: 53,
  recordCount: 57,
} as const;

export const CRC_START = Off.attributes;

export interface BatchHeader {
  baseOffset: number;
  batchLength: number;
  partitionLeaderEpoch: number;
  magic: number;
  crc: number;
  attributes: number;
  lastOffsetDelta: number;
  firstTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordCount: number;
}

export function readBatchHeader(buf: Buffer, at = 0): BatchHeader {
  return {
    baseOffset: Number(buf.readBigInt64BE(at + Off.baseOffset)),
    batchLength: buf.readInt32BE(at + Off.batchLength),
    partitionLeaderEpoch: buf.readInt32BE(at + Off.partitionLeaderEpoch),
    magic: buf.readInt8(at + Off.magic),
    crc: buf.readUInt32BE(at + Off.crc),
    attributes: buf.readInt16BE(at + Off.attributes),
    lastOffsetDelta: buf.readInt32BE(at + Off.lastOffsetDelta),
    firstTimestamp: Number(buf.readBigInt64BE(at + Off.firstTimestamp)),
    maxTimestamp: Number(buf.readBigInt64BE(at + Off.maxTimestamp)),
    producerId: Number(buf.readBigInt64BE(at + Off.producerId)),
    producerEpoch: buf.readInt16BE(at + Off.producerEpoch),
    baseSequence: buf.readInt32BE(at + Off.baseSequence),
    recordCount: buf.readInt32BE(at + Off.recordCount),
  };
}

/** Reads a 64-bit field that is known to fit in a double (offsets, timestamps). */
export function readInt64(buf: Buffer, at: number): number {
  return buf.readInt32BE(at) * 4294967296 + buf.readUInt32BE(at + 4);
}

export function writeInt64(buf: Buffer, at: number, value: number): void {
  const hi = Math.floor(value / 4294967296);
  buf.writeInt32BE(hi, at);
  buf.writeUInt32BE(value - hi * 4294967296, at + 4);
}

export function batchBaseOffset(buf: Buffer, at = 0): number {
  return readInt64(buf, at + Off.baseOffset);
}

/** Total bytes of the batch starting at `at` (its header's batchLength + 12). */
export function batchTotalBytes(buf: Buffer, at = 0): number {
  return buf.readInt32BE(at + Off.batchLength) + BATCH_LOG_OVERHEAD;
}

export function batchLastOffsetDelta(buf: Buffer, at = 0): number {
  return buf.readInt32BE(at + Off.lastOffsetDelta);
}

export function batchMaxTimestamp(buf: Buffer, at = 0): number {
  return readInt64(buf, at + Off.maxTimestamp);
}

export function batchRecordCount(buf: Buffer, at = 0): number {
  return buf.readInt32BE(at + Off.recordCount);
}

/** Stamps the broker-assigned base offset and leader epoch in place (CRC unaffected). */
export function stampBatch(buf: Buffer, at: number, baseOffset: number, leaderEpoch: number): void {
  writeInt64(buf, at + Off.baseOffset, baseOffset);
  buf.writeInt32BE(leaderEpoch, at + Off.partitionLeaderEpoch);
}

/** True when the stored CRC matches the batch's bytes. `batch` is exactly one batch. */
export function batchCrcValid(batch: Buffer): boolean {
  if (batch.length < BATCH_HEADER_BYTES) return false;
  return batch.readUInt32BE(Off.crc) === crc32c(batch.subarray(CRC_START));
}

export function computeBatchCrc(batch: Buffer): number {
  return crc32c(batch.subarray(CRC_START));
}
