/**
 * Records of the internal compacted topic that holds shared-group state.
 *
 * Format (big-endian), version 1. u64 fields hold non-negative safe integers.
 *
 *   key    u16 keyVersion (1) | u8 type | u16 groupLen | group (UTF-8) | u16 topicLen | topic (UTF-8)
 *          | u32 partition | (type BLOCK only) u64 baseOffset
 *
 *   START value   u16 valueVersion (1) | u64 startOffset
 *   BLOCK value   u16 valueVersion (1) | u8 recordCount (64) | runs
 *     run         u8 runLength (1..64) | u8 flags | u32 deliveryCount   if flags & HAS_DELIVERY_COUNT
 *                 | u64 firstFailureAt if flags & HAS_FIRST_FAILURE | u64 lastFailureAt if flags & HAS_LAST_FAILURE
 *                 | u64 availableAt    if flags & HAS_AVAILABLE_AT
 *     flags       bits 0-2 RecordState, bit 3..6 the HAS_* bits above; timestamps are ms since the epoch
 *
 * One START record per share-partition holds its start offset: every record below is
 * acked, archived or gone. A BLOCK record holds the state of the BLOCK_SIZE records
 * from `baseOffset` (a multiple of BLOCK_SIZE), run-length encoded: consecutive records
 * with equal fields form one run, so a block of acked records is a few bytes. A block is
 * rewritten whole on every change and tombstoned (null value) once it lies entirely
 * below the start offset, so compaction keeps at most window / BLOCK_SIZE + 2 live
 * keys per share-partition. Keys are a pure function of their fields (equal inputs,
 * equal bytes), as compaction requires. A reader skips key versions it does not know.
 *
 * Pure functions: safe to call from anywhere.
 */
import { ErrorCode, KmqError } from '../../../lib/errors.js';

export const SHARE_KEY_VERSION = 1;
export const SHARE_VALUE_VERSION = 1;
/** Records per BLOCK record. Part of format version 1: never change it. */
export const BLOCK_SIZE = 64;

export const ShareKeyType = { Start: 0, Block: 1 } as const;
export type ShareKeyType = (typeof ShareKeyType)[keyof typeof ShareKeyType];

/** State of one record; the numbers are stored. */
export const RecordState = {
  /** Not delivered yet: available with delivery count 0, the same as no entry. */
  None: 0,
  Available: 1,
  Acquired: 2,
  Acked: 3,
  /** Rejected or dead-lettered: done, never delivered again. */
  Archived: 4,
} as const;
export type RecordState = (typeof RecordState)[keyof typeof RecordState];

const HAS_DELIVERY_COUNT = 1 << 3;
const HAS_FIRST_FAILURE = 1 << 4;
const HAS_LAST_FAILURE = 1 << 5;
const HAS_AVAILABLE_AT = 1 << 6;
const STATE_MASK = 0x7;

/** Which share-partition (and, for a block, which records) a key is about. */
export interface ShareStateKey {
  type: ShareKeyType;
  group: string;
  topic: string;
  partition: number;
  /** First offset of the block; 0 for a START key. */
  baseOffset: number;
}

/**
 * The fields of BLOCK_SIZE consecutive records, index = offset - baseOffset.
 * Timestamps use -1 for "none".
 */
export interface BlockState {
  state: Uint8Array;
  deliveryCount: Uint32Array;
  firstFailureAt: Float64Array;
  lastFailureAt: Float64Array;
  availableAt: Float64Array;
}

export function newBlockState(): BlockState {
  return {
    state: new Uint8Array(BLOCK_SIZE),
    deliveryCount: new Uint32Array(BLOCK_SIZE),
    firstFailureAt: new Float64Array(BLOCK_SIZE).fill(-1),
    lastFailureAt: new Float64Array(BLOCK_SIZE).fill(-1),
    availableAt: new Float64Array(BLOCK_SIZE).fill(-1),
  };
}

const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
const TWO_32 = 0x1_0000_0000;

/** The key bytes up to and including the partition; a BLOCK key appends the base offset. */
export function encodeShareKeyPrefix(type: ShareKeyType, group: string, topic: string, partition: number): Buffer {
  const groupLen = Buffer.byteLength(group, 'utf8');
  const topicLen = Buffer.byteLength(topic, 'utf8');
  if (groupLen > U16_MAX || topicLen > U16_MAX) {
    throw new KmqError(ErrorCode.InvalidRequest, 'Group or topic name longer than 65535 bytes', { group, topic });
  }
  if (!Number.isInteger(partition) || partition < 0 || partition > U32_MAX) {
    throw new KmqError(ErrorCode.InvalidRequest, 'Partition must be a u32', { group, topic, partition });
  }
  const buf = Buffer.allocUnsafe(2 + 1 + 2 + groupLen + 2 + topicLen + 4);
  let pos = buf.writeUInt16BE(SHARE_KEY_VERSION, 0);
  pos = buf.writeUInt8(type, pos);
  pos = buf.writeUInt16BE(groupLen, pos);
  pos += buf.write(group, pos, 'utf8');
  pos = buf.writeUInt16BE(topicLen, pos);
  pos += buf.write(topic, pos, 'utf8');
  buf.writeUInt32BE(partition, pos);
  return buf;
}

/** A BLOCK key from the prefix of encodeShareKeyPrefix(ShareKeyType.Block, ...). */
export function encodeBlockKey(blockPrefix: Buffer, baseOffset: number): Buffer {
  const buf = Buffer.allocUnsafe(blockPrefix.length + 8);
  blockPrefix.copy(buf, 0);
  writeU64(buf, baseOffset, blockPrefix.length);
  return buf;
}

export function encodeShareKey(key: ShareStateKey): Buffer {
  const prefix = encodeShareKeyPrefix(key.type, key.group, key.topic, key.partition);
  return key.type === ShareKeyType.Block ? encodeBlockKey(prefix, key.baseOffset) : prefix;
}

/** The version of a key, or undefined when the buffer is too short to hold one. */
export function shareKeyVersion(buf: Buffer): number | undefined {
  return buf.length < 2 ? undefined : buf.readUInt16BE(0);
}

/** Throws UnsupportedVersion for a key of another version, CorruptMessage for malformed bytes. */
export function decodeShareKey(buf: Buffer): ShareStateKey {
  const version = shareKeyVersion(buf);
  if (version === undefined) throw corrupt('Share-state key shorter than its version field');
  if (version !== SHARE_KEY_VERSION) throw new KmqError(ErrorCode.UnsupportedVersion, `Unknown share-state key version ${version}`, { version });
  if (buf.length < 3) throw corrupt('Share-state key shorter than its type field');
  const type = buf.readUInt8(2);
  if (type !== ShareKeyType.Start && type !== ShareKeyType.Block) throw corrupt(`Unknown share-state key type ${type}`);
  let pos = 3;
  const group = readString16(buf, pos, 'group');
  pos += 2 + group.bytes;
  const topic = readString16(buf, pos, 'topic');
  pos += 2 + topic.bytes;
  const expected = pos + 4 + (type === ShareKeyType.Block ? 8 : 0);
  if (buf.length !== expected) throw corrupt(`Share-state key has ${buf.length} bytes, expected ${expected}`);
  const partition = buf.readUInt32BE(pos);
  const baseOffset = type === ShareKeyType.Block ? readU64(buf, pos + 4, 'base offset') : 0;
  if (baseOffset % BLOCK_SIZE !== 0) throw corrupt(`Share-state block base ${baseOffset} is not a multiple of ${BLOCK_SIZE}`);
  return { type, group: group.value, topic: topic.value, partition, baseOffset };
}

export function encodeStartValue(startOffset: number): Buffer {
  const buf = Buffer.allocUnsafe(10);
  buf.writeUInt16BE(SHARE_VALUE_VERSION, 0);
  writeU64(buf, startOffset, 2);
  return buf;
}

export function decodeStartValue(buf: Buffer): number {
  checkValueVersion(buf);
  if (buf.length !== 10) throw corrupt(`Share-state start value has ${buf.length} bytes, expected 10`);
  return readU64(buf, 2, 'start offset');
}

/** Largest BLOCK value: every record its own run with every field. */
const MAX_BLOCK_VALUE = 3 + BLOCK_SIZE * (2 + 4 + 3 * 8);
const scratch = Buffer.allocUnsafe(MAX_BLOCK_VALUE);

export function encodeBlockValue(block: BlockState): Buffer {
  const { state, deliveryCount: dc, firstFailureAt: ff, lastFailureAt: lf, availableAt: at } = block;
  let pos = scratch.writeUInt16BE(SHARE_VALUE_VERSION, 0);
  pos = scratch.writeUInt8(BLOCK_SIZE, pos);
  let i = 0;
  while (i < BLOCK_SIZE) {
    let j = i + 1;
    while (j < BLOCK_SIZE && state[j] === state[i] && dc[j] === dc[i] && ff[j] === ff[i] && lf[j] === lf[i] && at[j] === at[i]) j++;
    const s = state[i]!;
    const d = dc[i]!;
    const f = ff[i]!;
    const l = lf[i]!;
    const a = at[i]!;
    let flags = s & STATE_MASK;
    if (d !== 0) flags |= HAS_DELIVERY_COUNT;
    if (f >= 0) flags |= HAS_FIRST_FAILURE;
    if (l >= 0) flags |= HAS_LAST_FAILURE;
    if (a >= 0) flags |= HAS_AVAILABLE_AT;
    scratch[pos++] = j - i;
    scratch[pos++] = flags;
    if (d !== 0) pos = scratch.writeUInt32BE(d, pos);
    if (f >= 0) pos = writeU64(scratch, f, pos);
    if (l >= 0) pos = writeU64(scratch, l, pos);
    if (a >= 0) pos = writeU64(scratch, a, pos);
    i = j;
  }
  return Buffer.from(scratch.subarray(0, pos));
}

/** Fills `into` (every field of every record). Throws CorruptMessage for malformed bytes. */
export function decodeBlockValue(buf: Buffer, into: BlockState): void {
  checkValueVersion(buf);
  if (buf.length < 3 || buf.readUInt8(2) !== BLOCK_SIZE) throw corrupt(`Share-state block value must cover ${BLOCK_SIZE} records`);
  let pos = 3;
  let i = 0;
  while (i < BLOCK_SIZE) {
    if (pos + 2 > buf.length) throw corrupt('Share-state block value ends inside a run header');
    const run = buf[pos++]!;
    const flags = buf[pos++]!;
    const s = flags & STATE_MASK;
    if (run === 0 || i + run > BLOCK_SIZE || s > RecordState.Archived || flags & 0x80) throw corrupt('Share-state block value has a malformed run');
    const need = (flags & HAS_DELIVERY_COUNT ? 4 : 0) + (flags & HAS_FIRST_FAILURE ? 8 : 0) + (flags & HAS_LAST_FAILURE ? 8 : 0) + (flags & HAS_AVAILABLE_AT ? 8 : 0);
    if (pos + need > buf.length) throw corrupt('Share-state block value ends inside a run');
    let d = 0;
    let f = -1;
    let l = -1;
    let a = -1;
    if (flags & HAS_DELIVERY_COUNT) {
      d = buf.readUInt32BE(pos);
      pos += 4;
    }
    if (flags & HAS_FIRST_FAILURE) {
      f = readU64(buf, pos, 'first failure');
      pos += 8;
    }
    if (flags & HAS_LAST_FAILURE) {
      l = readU64(buf, pos, 'last failure');
      pos += 8;
    }
    if (flags & HAS_AVAILABLE_AT) {
      a = readU64(buf, pos, 'available at');
      pos += 8;
    }
    into.state.fill(s, i, i + run);
    into.deliveryCount.fill(d, i, i + run);
    into.firstFailureAt.fill(f, i, i + run);
    into.lastFailureAt.fill(l, i, i + run);
    into.availableAt.fill(a, i, i + run);
    i += run;
  }
  if (pos !== buf.length) throw corrupt(`Share-state block value has ${buf.length - pos} trailing bytes`);
}

function writeU64(buf: Buffer, n: number, pos: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new KmqError(ErrorCode.InvalidRequest, `Share-state field must be a non-negative safe integer, got ${n}`);
  const hi = Math.floor(n / TWO_32);
  buf.writeUInt32BE(hi, pos);
  buf.writeUInt32BE(n - hi * TWO_32, pos + 4);
  return pos + 8;
}

function readU64(buf: Buffer, pos: number, what: string): number {
  const hi = buf.readUInt32BE(pos);
  if (hi > 0x1fffff) throw corrupt(`Share-state ${what} out of range`);
  return hi * TWO_32 + buf.readUInt32BE(pos + 4);
}

function readString16(buf: Buffer, pos: number, what: string): { value: string; bytes: number } {
  if (pos + 2 > buf.length) throw corrupt(`Share-state key ${what} length runs past the end`);
  const len = buf.readUInt16BE(pos);
  if (pos + 2 + len > buf.length) throw corrupt(`Share-state key ${what} runs past the end`);
  return { value: buf.toString('utf8', pos + 2, pos + 2 + len), bytes: len };
}

function checkValueVersion(buf: Buffer): void {
  if (buf.length < 2) throw corrupt('Share-state value shorter than its version field');
  const version = buf.readUInt16BE(0);
  if (version !== SHARE_VALUE_VERSION) throw new KmqError(ErrorCode.UnsupportedVersion, `Unknown share-state value version ${version}`, { version });
}

function corrupt(message: string): KmqError {
  return new KmqError(ErrorCode.CorruptMessage, message);
}
