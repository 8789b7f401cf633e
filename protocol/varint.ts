/**
 * Zigzag variable-length integers, as in Kafka records and protobuf sint32/sint64.
 *
 * Format: a signed value n is mapped to an unsigned z (0, -1, 1, -2 ... → 0, 1, 2, 3 ...),
 * then written 7 bits per byte, least significant group first; the high bit of a byte
 * says another byte follows.
 *   varint   int32 range, at most 5 bytes
 *   varlong  JavaScript numbers in [-2^53, 2^53], at most 8 bytes (Kafka allows int64;
 *            values a double cannot hold exactly are refused on read)
 * For a value in int32 range both forms produce the same bytes.
 *
 * Writers take a position and return the position after the value; they assume the
 * caller checked the value and reserved the space (sizeOfVarint / sizeOfVarlong).
 * Readers go through a VarintReader bounded by `end`, and throw
 * KmqError(CorruptMessage) on a truncated, overlong or out-of-range value, never
 * reading past `end`. A reader is a plain cursor owned by one caller.
 */
import { ErrorCode, KmqError } from '../lib/errors.js';

const TWO_POW_53 = 2 ** 53;
const TWO_POW_26 = 2 ** 26;

/** Bytes the zigzag varint of int32 `value` takes. */
export function sizeOfVarint(value: number): number {
  const z = ((value << 1) ^ (value >> 31)) >>> 0;
  if (z < 0x80) return 1;
  if (z < 0x4000) return 2;
  if (z < 0x200000) return 3;
  if (z < 0x10000000) return 4;
  return 5;
}

/** Writes int32 `value` as a zigzag varint at `at`; returns the position after it. */
export function writeVarint(buf: Uint8Array, at: number, value: number): number {
  let z = ((value << 1) ^ (value >> 31)) >>> 0;
  while (z >= 0x80) {
    buf[at++] = (z & 0x7f) | 0x80;
    z >>>= 7;
  }
  buf[at++] = z;
  return at;
}

/** True when `value` is an integer a varlong can carry: [-2^53, 2^53]. */
export function isVarlongValue(value: number): boolean {
  return Number.isInteger(value) && value >= -TWO_POW_53 && value <= TWO_POW_53;
}

/** Bytes the zigzag varlong of `value` takes (`value` satisfies isVarlongValue). */
export function sizeOfVarlong(value: number): number {
  if ((value | 0) === value) return sizeOfVarint(value);
  // z = 2u + sign, where u = |value| or |value| - 1; count 7-bit groups of z.
  let u = value < 0 ? -value - 1 : value;
  let size = 1;
  u = Math.floor(u / 64); // first byte holds the sign and 6 bits of u
  while (u > 0) {
    size++;
    u = Math.floor(u / 128);
  }
  return size;
}

/** Writes `value` (satisfying isVarlongValue) as a zigzag varlong; returns the position after it. */
export function writeVarlong(buf: Uint8Array, at: number, value: number): number {
  if ((value | 0) === value) return writeVarint(buf, at, value);
  // Doubles cannot hold z = 2u + sign exactly near 2^54, so the sign bit goes in
  // the first byte and u is split with exact divisions by powers of two.
  const sign = value < 0 ? 1 : 0;
  let u = sign === 1 ? -value - 1 : value;
  let b = ((u % 64) << 1) | sign;
  u = Math.floor(u / 64);
  while (u > 0) {
    buf[at++] = b | 0x80;
    b = u % 128;
    u = Math.floor(u / 128);
  }
  buf[at++] = b;
  return at;
}

function truncated(pos: number): KmqError {
  return new KmqError(ErrorCode.CorruptMessage, `Truncated varint at byte ${pos}`, { position: pos });
}

/** A cursor over `buf[pos, end)` that reads zigzag varints. */
export class VarintReader {
  buf: Buffer;
  pos: number;
  end: number;

  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = Math.min(end, buf.length);
  }

  /** Reads an int32 zigzag varint. */
  readVarint(): number {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    if (pos >= end) throw truncated(pos);
    let b = buf[pos++]!;
    if (b < 0x80) {
      this.pos = pos;
      return (b >>> 1) ^ -(b & 1);
    }
    let z = b & 0x7f;
    for (let shift = 7; ; shift += 7) {
      if (pos >= end) throw truncated(pos);
      b = buf[pos++]!;
      if (shift === 28) {
        if (b > 0x0f) throw new KmqError(ErrorCode.CorruptMessage, `Varint overflows 32 bits at byte ${pos - 1}`, { position: pos - 1 });
        z |= b << 28;
        break;
      }
      z |= (b & 0x7f) << shift;
      if (b < 0x80) break;
    }
    this.pos = pos;
    return (z >>> 1) ^ -(z & 1);
  }

  /** Reads a zigzag varlong in [-2^53, 2^53]. */
  readVarlong(): number {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    // lo: the first four groups (28 bits of z), hi: up to four more.
    let lo = 0;
    let hi = 0;
    let b = 0x80;
    for (let shift = 0; shift < 28 && b >= 0x80; shift += 7) {
      if (pos >= end) throw truncated(pos);
      b = buf[pos++]!;
      lo |= (b & 0x7f) << shift;
    }
    for (let shift = 0; b >= 0x80; shift += 7) {
      if (shift === 28) throw new KmqError(ErrorCode.CorruptMessage, `Varlong longer than 8 bytes at byte ${pos}`, { position: pos });
      if (pos >= end) throw truncated(pos);
      b = buf[pos++]!;
      hi |= (b & 0x7f) << shift;
    }
    this.pos = pos;
    const sign = lo & 1;
    // u = z >> 1 = hi * 2^27 + (lo >>> 1); exact while u <= 2^53.
    if (hi > TWO_POW_26 || (hi === TWO_POW_26 && ((lo >>> 1) !== 0 || sign === 1))) {
      throw new KmqError(ErrorCode.CorruptMessage, `Varlong outside [-2^53, 2^53] at byte ${this.pos}`, { position: this.pos });
    }
    const u = hi * 134217728 + (lo >>> 1);
    return sign === 1 ? -u - 1 : u;
  }
}
