/**
 * Hand-written codecs for the stream messages that carry every published and
 * delivered message: PublishStreamRequest in, PublishStreamResponse and
 * ConsumeResponse out (a ConsumeRequest of acks is small: the generated decoder is
 * as fast). They give the same bytes and the same objects as the
 * generated (ts-proto) codecs, and fall back to them for anything outside their fast
 * path; wire-codec.test.ts checks the two against each other.
 *
 * Why: the generated encoders build each nested message in a chunk of its own
 * (fork/join) and copy the result twice; here a message is sized first, then
 * written once into one buffer. The decoders read payloads and keys as views of the
 * received message instead of copies.
 *
 * Encoding: proto3, fields in field-number order, default values left out as the
 * generated code does. The fast paths take non-negative integers below 2^53 (ids,
 * offsets, timestamps); anything else goes to the generated codec, which throws
 * or encodes as it always did.
 */
import { ConsumeResponse, PublishStreamRequest, PublishStreamResponse, SidecarService } from '../gen/kmq/sidecar/v1/sidecar.js';
import type { Delivery, Destination, Placement, PublishError, PublishRequest, PublishResponse, PublishStreamEntry, Source } from '../gen/kmq/sidecar/v1/sidecar.js';

// ---- sizes --------------------------------------------------------------------

/** Not encodable on the fast path: fall back to the generated codec. */
class Fallback extends Error {}
const FALLBACK = new Fallback();

function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  if (v < 0x800000000) return 5;
  if (v < 0x40000000000) return 6;
  if (v < 0x2000000000000) return 7;
  return 8;
}

/** A uint32 field value the fast path takes, else Fallback. */
function u32(v: number): number {
  if (!(v >= 0 && v <= 0xffffffff && Number.isInteger(v))) throw FALLBACK;
  return v;
}

/** A uint64 / int64 field value the fast path takes (0 ≤ v ≤ 2^53 - 1), else Fallback. */
function u53(v: number): number {
  if (!(v >= 0 && Number.isSafeInteger(v))) throw FALLBACK;
  return v;
}

/**
 * Bytes of UTF-8 of each string, in the order the writer meets them: sizing
 * pushes, writing shifts (by index), so no string is measured twice.
 */
const lens: number[] = [];
let lensN = 0;
let lensAt = 0;

function strLen(s: string): number {
  if (typeof s !== 'string') throw FALLBACK;
  const n = s.length;
  let bytes = n;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      bytes = Buffer.byteLength(s, 'utf8');
      break;
    }
  }
  lens[lensN++] = bytes;
  return bytes;
}

/** Size of a length-delimited string field with a 1-byte tag. */
function strField(s: string): number {
  const n = strLen(s);
  return 1 + varintSize(n) + n;
}

/** Sizes of the nested messages, in writing order (like lens): a slot is taken before the message's own nested ones. */
const subs: number[] = [];
let subsN = 0;
let subsAt = 0;

/** Size of a nested message field with a 1-byte tag; `size` measures the message. */
function sub<T>(m: T, size: (m: T) => number): number {
  const slot = subsN++;
  subs[slot] = 0;
  const n = size(m);
  subs[slot] = n;
  return 1 + varintSize(n) + n;
}

function bytesOf(b: Uint8Array): number {
  if (!(b instanceof Uint8Array)) throw FALLBACK;
  return 1 + varintSize(b.length) + b.length;
}

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** Own enumerable keys in Object.entries order (for...in without an allocated key array). */
function headersSize(h: { [key: string]: string }): number {
  let size = 0;
  for (const k in h) {
    if (!hasOwn(h, k)) continue;
    const v = h[k]!;
    const slot = subsN++;
    subs[slot] = 0;
    const n = (k !== '' ? strField(k) : 0) + (v !== '' ? strField(v) : 0);
    subs[slot] = n;
    size += 1 + varintSize(n) + n;
  }
  return size;
}

function sourceSize(s: Source): number {
  let size = 0;
  if (s.topic !== undefined) size += strField(s.topic);
  if (s.queue !== undefined) size += strField(s.queue);
  if (s.partition !== 0) size += 1 + varintSize(u32(s.partition));
  if (s.offset !== 0) size += 1 + varintSize(u53(s.offset));
  return size;
}

function deliverySize(d: Delivery): number {
  let size = 0;
  if (d.deliveryId !== '') size += strField(d.deliveryId);
  if (d.payload.length !== 0) size += bytesOf(d.payload);
  if (d.key !== undefined) size += bytesOf(d.key);
  size += headersSize(d.headers);
  if (d.attempt !== 0) size += 1 + varintSize(u32(d.attempt));
  if (d.source !== undefined) size += sub(d.source, sourceSize);
  if (d.timestampMs !== 0) size += 1 + varintSize(u53(d.timestampMs));
  if (d.idempotencyKey !== '') size += strField(d.idempotencyKey);
  return size;
}

function destinationSize(d: Destination): number {
  let size = 0;
  if (d.topic !== undefined) size += strField(d.topic);
  if (d.queue !== undefined) size += strField(d.queue);
  const ex = d.exchange;
  if (ex !== undefined) size += sub(ex, () => (ex.name !== '' ? strField(ex.name) : 0) + (ex.routingKey !== '' ? strField(ex.routingKey) : 0));
  return size;
}

function publishResponseSize(r: PublishResponse): number {
  let size = 0;
  if (r.idempotencyKey !== '') size += strField(r.idempotencyKey);
  for (const p of r.placements) size += sub(p, placementSize);
  return size;
}

function placementSize(p: Placement): number {
  let size = 0;
  if (p.destination !== undefined) size += sub(p.destination, destinationSize);
  if (p.partition !== 0) size += 1 + varintSize(u32(p.partition));
  if (p.offset !== 0) size += 1 + varintSize(u53(p.offset));
  return size;
}

function deliveriesSize(ds: readonly Delivery[]): number {
  let size = 0;
  for (const d of ds) size += sub(d, deliverySize);
  return size;
}

function publishErrorSize(e: PublishError): number {
  let size = 0;
  if (e.code !== 0) size += 1 + varintSize(u32(e.code));
  if (e.message !== '') size += strField(e.message);
  return size;
}

/** id, ok, error: the fields PublishStreamResponse and PublishStreamResult share. */
function resultSize(r: { id: number; ok?: PublishResponse | undefined; error?: PublishError | undefined }): number {
  let size = 0;
  if (r.id !== 0) size += 1 + varintSize(u53(r.id));
  if (r.ok !== undefined) size += sub(r.ok, publishResponseSize);
  if (r.error !== undefined) size += sub(r.error, publishErrorSize);
  return size;
}

// ---- writing ------------------------------------------------------------------

let buf: Buffer = Buffer.alloc(0);
let pos = 0;

function varint(v: number): void {
  const b = buf;
  let p = pos;
  while (v >= 0x80) {
    b[p++] = (v & 0x7f) | 0x80;
    v = v < 0x80000000 ? v >>> 7 : Math.floor(v / 128);
  }
  b[p++] = v;
  pos = p;
}

function str(tag: number, s: string): void {
  const n = lens[lensAt++]!;
  buf[pos++] = tag;
  varint(n);
  if (n === s.length) {
    if (n < 64) {
      // Locals: the module's buf and pos cost a context load and a hole check per access.
      const b = buf;
      let p = pos;
      for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
      pos = p;
    } else pos += buf.write(s, pos, n, 'latin1');
  } else pos += buf.write(s, pos, n, 'utf8');
}

function bytes(tag: number, b: Uint8Array): void {
  buf[pos++] = tag;
  varint(b.length);
  buf.set(b, pos);
  pos += b.length;
}

function open(tag: number): void {
  buf[pos++] = tag;
  varint(subs[subsAt++]!);
}

function writeHeaders(tag: number, h: { [key: string]: string }): void {
  for (const k in h) {
    if (!hasOwn(h, k)) continue;
    const v = h[k]!;
    open(tag);
    if (k !== '') str(10, k);
    if (v !== '') str(18, v);
  }
}

function writeDelivery(d: Delivery): void {
  if (d.deliveryId !== '') str(10, d.deliveryId);
  if (d.payload.length !== 0) bytes(18, d.payload);
  if (d.key !== undefined) bytes(26, d.key);
  writeHeaders(34, d.headers);
  if (d.attempt !== 0) {
    buf[pos++] = 40;
    varint(d.attempt);
  }
  const s = d.source;
  if (s !== undefined) {
    open(50);
    if (s.topic !== undefined) str(10, s.topic);
    if (s.queue !== undefined) str(18, s.queue);
    if (s.partition !== 0) {
      buf[pos++] = 24;
      varint(s.partition);
    }
    if (s.offset !== 0) {
      buf[pos++] = 32;
      varint(s.offset);
    }
  }
  if (d.timestampMs !== 0) {
    buf[pos++] = 56;
    varint(d.timestampMs);
  }
  if (d.idempotencyKey !== '') str(66, d.idempotencyKey);
}

function writeDestination(d: Destination): void {
  if (d.topic !== undefined) str(10, d.topic);
  if (d.queue !== undefined) str(18, d.queue);
  if (d.exchange !== undefined) {
    open(26);
    if (d.exchange.name !== '') str(10, d.exchange.name);
    if (d.exchange.routingKey !== '') str(18, d.exchange.routingKey);
  }
}

function writeResult(r: { id: number; ok?: PublishResponse | undefined; error?: PublishError | undefined }): void {
  if (r.id !== 0) {
    buf[pos++] = 8;
    varint(r.id);
  }
  const ok = r.ok;
  if (ok !== undefined) {
    open(18);
    if (ok.idempotencyKey !== '') str(10, ok.idempotencyKey);
    for (const p of ok.placements) {
      open(18);
      if (p.destination !== undefined) {
        open(10);
        writeDestination(p.destination);
      }
      if (p.partition !== 0) {
        buf[pos++] = 16;
        varint(p.partition);
      }
      if (p.offset !== 0) {
        buf[pos++] = 24;
        varint(p.offset);
      }
    }
  }
  const e = r.error;
  if (e !== undefined) {
    open(26);
    if (e.code !== 0) {
      buf[pos++] = 8;
      varint(e.code);
    }
    if (e.message !== '') str(18, e.message);
  }
}

/** Sizes with `size`, allocates, writes with `write`; any surprise → `fallback`. */
function encodeWith<T>(m: T, size: (m: T) => number, write: (m: T) => void, fallback: (m: T) => Buffer): Buffer {
  // The scratch arrays keep their capacity from message to message.
  lensN = 0;
  lensAt = 0;
  subsN = 0;
  subsAt = 0;
  let total: number;
  try {
    total = size(m);
  } catch (err) {
    if (err === FALLBACK) return fallback(m);
    throw err;
  }
  buf = Buffer.allocUnsafe(total);
  pos = 0;
  write(m);
  const out = buf;
  buf = Buffer.alloc(0);
  return out;
}

function consumeResponseSize(m: ConsumeResponse): number {
  if (m.started !== undefined) throw FALLBACK;
  let size = 0;
  if (m.delivery !== undefined) size += sub(m.delivery, deliverySize);
  if (m.deliveries !== undefined) size += sub(m.deliveries.deliveries, deliveriesSize);
  return size;
}

function writeConsumeResponse(m: ConsumeResponse): void {
  if (m.delivery !== undefined) {
    open(18);
    writeDelivery(m.delivery);
  }
  if (m.deliveries !== undefined) {
    open(26);
    for (const d of m.deliveries.deliveries) {
      open(10);
      writeDelivery(d);
    }
  }
}

function publishStreamResponseSize(m: PublishStreamResponse): number {
  let size = resultSize(m);
  for (const r of m.results) size += sub(r, resultSize);
  return size;
}

function writePublishStreamResponse(m: PublishStreamResponse): void {
  writeResult(m);
  for (const r of m.results) {
    open(34);
    writeResult(r);
  }
}

const generatedConsumeResponse = (m: ConsumeResponse): Buffer => Buffer.from(ConsumeResponse.encode(m).finish());
const generatedPublishStreamResponse = (m: PublishStreamResponse): Buffer => Buffer.from(PublishStreamResponse.encode(m).finish());

/** ConsumeResponse → bytes, as ConsumeResponse.encode would write them. */
export function encodeConsumeResponse(m: ConsumeResponse): Buffer {
  return encodeWith(m, consumeResponseSize, writeConsumeResponse, generatedConsumeResponse);
}

/** PublishStreamResponse → bytes, as PublishStreamResponse.encode would write them. */
export function encodePublishStreamResponse(m: PublishStreamResponse): Buffer {
  return encodeWith(m, publishStreamResponseSize, writePublishStreamResponse, generatedPublishStreamResponse);
}

// ---- reading ------------------------------------------------------------------

/** The message being read; the fast path throws FALLBACK on anything it does not take. */
let rb: Buffer = Buffer.alloc(0);
let rp = 0;

function readVarint(end: number): number {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (rp >= end) throw FALLBACK;
    const b = rb[rp++]!;
    v += (b & 0x7f) * mul;
    if (b < 0x80) {
      if (v > Number.MAX_SAFE_INTEGER) throw FALLBACK;
      return v;
    }
    mul *= 128;
  }
  throw FALLBACK;
}

function readU32(end: number): number {
  const v = readVarint(end);
  if (v > 0xffffffff) throw FALLBACK;
  return v;
}

/** The end of a length-delimited field starting at rp. */
function readLen(end: number): number {
  const n = readVarint(end);
  const stop = rp + n;
  if (stop > end) throw FALLBACK;
  return stop;
}

const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

function readString(end: number): string {
  const stop = readLen(end);
  const start = rp;
  rp = stop;
  for (let i = start; i < stop; i++) if (rb[i]! > 0x7f) return utf8.decode(rb.subarray(start, stop));
  return rb.toString('latin1', start, stop);
}

function readBytes(end: number): Buffer {
  const stop = readLen(end);
  const b = rb.subarray(rp, stop);
  rp = stop;
  return b;
}

/** A map<string, string> entry into `into`. */
function readEntry(end: number, into: { [key: string]: string }): void {
  const stop = readLen(end);
  let key = '';
  let value = '';
  while (rp < stop) {
    const tag = rb[rp++]!;
    if (tag === 10) key = readString(stop);
    else if (tag === 18) value = readString(stop);
    else throw FALLBACK;
  }
  into[key] = value;
}

function readDestination(end: number): Destination {
  const stop = readLen(end);
  const d: Destination = { topic: undefined, queue: undefined, exchange: undefined };
  while (rp < stop) {
    const tag = rb[rp++]!;
    if (tag === 10) d.topic = readString(stop);
    else if (tag === 18) d.queue = readString(stop);
    else if (tag === 26) {
      const exStop = readLen(stop);
      const ex = { name: '', routingKey: '' };
      while (rp < exStop) {
        const t = rb[rp++]!;
        if (t === 10) ex.name = readString(exStop);
        else if (t === 18) ex.routingKey = readString(exStop);
        else throw FALLBACK;
      }
      d.exchange = ex;
    } else throw FALLBACK;
  }
  return d;
}

function readPublishRequest(end: number): PublishRequest {
  const stop = readLen(end);
  const m: PublishRequest = { destination: undefined, key: undefined, payload: EMPTY, headers: {}, idempotencyKey: undefined, delayMs: undefined };
  while (rp < stop) {
    const tag = rb[rp++]!;
    if (tag === 10) m.destination = readDestination(stop);
    else if (tag === 18) m.key = readBytes(stop);
    else if (tag === 26) m.payload = readBytes(stop);
    else if (tag === 34) readEntry(stop, m.headers);
    else if (tag === 42) m.idempotencyKey = readString(stop);
    else if (tag === 48) m.delayMs = readU32(stop);
    else throw FALLBACK;
  }
  // The generated decoder gives every message a payload buffer of its own, also an empty one.
  if (m.payload === EMPTY) m.payload = Buffer.alloc(0);
  return m;
}

const EMPTY = Buffer.alloc(0);

function readPublishStreamRequest(): PublishStreamRequest {
  const end = rb.length;
  const m: PublishStreamRequest = { id: 0, message: undefined, batch: undefined };
  while (rp < end) {
    const tag = rb[rp++]!;
    if (tag === 8) m.id = readVarint(end);
    else if (tag === 18) m.message = readPublishRequest(end);
    else if (tag === 26) {
      const stop = readLen(end);
      const entries: PublishStreamEntry[] = [];
      while (rp < stop) {
        if (rb[rp++] !== 10) throw FALLBACK;
        const eStop = readLen(stop);
        const e: PublishStreamEntry = { id: 0, message: undefined };
        while (rp < eStop) {
          const t = rb[rp++]!;
          if (t === 8) e.id = readVarint(eStop);
          else if (t === 18) e.message = readPublishRequest(eStop);
          else throw FALLBACK;
        }
        entries.push(e);
      }
      m.batch = { entries };
    } else throw FALLBACK;
  }
  return m;
}

function decodeWith<T>(b: Buffer, read: () => T, fallback: (b: Buffer) => T): T {
  rb = b;
  rp = 0;
  try {
    return read();
  } catch (err) {
    if (err === FALLBACK) return fallback(b);
    throw err;
  } finally {
    rb = EMPTY;
  }
}

/** Bytes → PublishStreamRequest, as PublishStreamRequest.decode reads them (payloads and keys are views of `b`). */
export function decodePublishStreamRequest(b: Buffer): PublishStreamRequest {
  return decodeWith(b, readPublishStreamRequest, (x) => PublishStreamRequest.decode(x));
}

/** The Sidecar service with these codecs on its two streams' per-message paths. */
export const FastSidecarService = {
  ...SidecarService,
  publishStream: { ...SidecarService.publishStream, requestDeserialize: decodePublishStreamRequest, responseSerialize: encodePublishStreamResponse },
  consume: { ...SidecarService.consume, responseSerialize: encodeConsumeResponse },
} as const;
