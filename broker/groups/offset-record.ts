/**
 * Committed-offset records of the internal compacted topic `__consumer_offsets`.
 *
 * Format (big-endian), version 1:
 *
 *   key    u16 version | u16 groupLen | group (UTF-8) | u16 topicLen | topic (UTF-8) | u32 partition
 *   value  u16 version | i64 offset | u32 metadataLen | metadata (UTF-8) | i64 commitTimestamp (ms)
 *
 * A null value (tombstone) deletes the key. Compaction keeps the last record per
 * key, so the key must be a pure function of (group, topic, partition): equal
 * inputs give equal bytes. The key's version also names the record type, so other
 * group records can share the topic later; a reader skips key versions it does
 * not know. `offset` is the next offset to consume.
 *
 * Pure functions: safe to call from anywhere.
 */
import { ErrorCode, KmqError } from '../../lib/errors.js';

export const OFFSET_KEY_VERSION = 1;
export const OFFSET_VALUE_VERSION = 1;

/** Which committed offset a record is about. */
export interface OffsetRecordKey {
  group: string;
  topic: string;
  partition: number;
}

/** A committed offset as stored. */
export interface OffsetRecordValue {
  /** The next offset to consume. */
  offset: number;
  metadata: string;
  /** When the broker accepted the commit, ms since the epoch. */
  commitTimestamp: number;
}

const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

export function encodeOffsetKey(key: OffsetRecordKey): Buffer {
  const groupLen = Buffer.byteLength(key.group, 'utf8');
  const topicLen = Buffer.byteLength(key.topic, 'utf8');
  if (groupLen > U16_MAX || topicLen > U16_MAX) {
    throw new KmqError(ErrorCode.InvalidRequest, 'Group or topic name longer than 65535 bytes', { group: key.group, topic: key.topic });
  }
  if (!Number.isInteger(key.partition) || key.partition < 0 || key.partition > U32_MAX) {
    throw new KmqError(ErrorCode.InvalidRequest, 'Partition must be a u32', { group: key.group, topic: key.topic, partition: key.partition });
  }
  const buf = Buffer.allocUnsafe(2 + 2 + groupLen + 2 + topicLen + 4);
  let pos = buf.writeUInt16BE(OFFSET_KEY_VERSION, 0);
  pos = buf.writeUInt16BE(groupLen, pos);
  pos += buf.write(key.group, pos, 'utf8');
  pos = buf.writeUInt16BE(topicLen, pos);
  pos += buf.write(key.topic, pos, 'utf8');
  buf.writeUInt32BE(key.partition, pos);
  return buf;
}

/** The version of a key, or undefined when the buffer is too short to hold one. */
export function offsetKeyVersion(buf: Buffer): number | undefined {
  return buf.length < 2 ? undefined : buf.readUInt16BE(0);
}

/** Throws UnsupportedVersion for a key of another version, CorruptMessage for malformed bytes. */
export function decodeOffsetKey(buf: Buffer): OffsetRecordKey {
  const version = offsetKeyVersion(buf);
  if (version === undefined) throw corrupt('Offset key shorter than its version field');
  if (version !== OFFSET_KEY_VERSION) {
    throw new KmqError(ErrorCode.UnsupportedVersion, `Unknown offset key version ${version}`, { version });
  }
  let pos = 2;
  const group = readString16(buf, pos, 'key group');
  pos += 2 + group.bytes;
  const topic = readString16(buf, pos, 'key topic');
  pos += 2 + topic.bytes;
  if (pos + 4 !== buf.length) throw corrupt(`Offset key has ${buf.length} bytes, expected ${pos + 4}`);
  return { group: group.value, topic: topic.value, partition: buf.readUInt32BE(pos) };
}

export function encodeOffsetValue(value: OffsetRecordValue): Buffer {
  if (!Number.isSafeInteger(value.offset) || !Number.isSafeInteger(value.commitTimestamp)) {
    throw new KmqError(ErrorCode.InvalidRequest, 'Offset and commit timestamp must be safe integers', { offset: value.offset });
  }
  const metadataLen = Buffer.byteLength(value.metadata, 'utf8');
  const buf = Buffer.allocUnsafe(2 + 8 + 4 + metadataLen + 8);
  let pos = buf.writeUInt16BE(OFFSET_VALUE_VERSION, 0);
  pos = buf.writeBigInt64BE(BigInt(value.offset), pos);
  pos = buf.writeUInt32BE(metadataLen, pos);
  pos += buf.write(value.metadata, pos, 'utf8');
  buf.writeBigInt64BE(BigInt(value.commitTimestamp), pos);
  return buf;
}

/** Throws UnsupportedVersion for a value of another version, CorruptMessage for malformed bytes. */
export function decodeOffsetValue(buf: Buffer): OffsetRecordValue {
  if (buf.length < 2) throw corrupt('Offset value shorter than its version field');
  const version = buf.readUInt16BE(0);
  if (version !== OFFSET_VALUE_VERSION) {
    throw new KmqError(ErrorCode.UnsupportedVersion, `Unknown offset value version ${version}`, { version });
  }
  if (buf.length < 2 + 8 + 4 + 8) throw corrupt(`Offset value has only ${buf.length} bytes`);
  const offset = readSafeInt64(buf, 2, 'offset');
  const metadataLen = buf.readUInt32BE(10);
  const end = 14 + metadataLen + 8;
  if (end !== buf.length) throw corrupt(`Offset value has ${buf.length} bytes, expected ${end}`);
  const metadata = buf.toString('utf8', 14, 14 + metadataLen);
  const commitTimestamp = readSafeInt64(buf, 14 + metadataLen, 'commit timestamp');
  return { offset, metadata, commitTimestamp };
}

function readString16(buf: Buffer, pos: number, what: string): { value: string; bytes: number } {
  if (pos + 2 > buf.length) throw corrupt(`Offset ${what} length runs past the end`);
  const len = buf.readUInt16BE(pos);
  if (pos + 2 + len > buf.length) throw corrupt(`Offset ${what} runs past the end`);
  return { value: buf.toString('utf8', pos + 2, pos + 2 + len), bytes: len };
}

function readSafeInt64(buf: Buffer, pos: number, what: string): number {
  const n = buf.readBigInt64BE(pos);
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) throw corrupt(`Offset record ${what} out of range`);
  return Number(n);
}

function corrupt(message: string): KmqError {
  return new KmqError(ErrorCode.CorruptMessage, message, { topic: '__consumer_offsets' });
}
