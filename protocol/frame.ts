/**
 * Framing of the kmq broker protocol over TCP.
 *
 * Request frame (big-endian):
 *   u32 length          bytes after this field, in [REQUEST_PREFIX_BYTES - 4, maxFrameBytes]
 *   u16 apiKey          see apis.ts
 *   u16 apiVersion
 *   u32 correlationId   echoed in the response
 *   u32 headerLength    protobuf header message size
 *   header              protobuf (proto/kmq/broker/v1/broker.proto)
 *   payload             raw bytes (RecordBatches), length - 12 - headerLength
 *
 * Response frame:
 *   u32 length
 *   u32 correlationId
 *   u16 frameError      0, or a wire error code; then the header is an ErrorResponse
 *   u32 headerLength
 *   header
 *   payload
 *
 * A reader checks the length, and on requests the api key and version, from the
 * fixed prefix alone: a bad frame is refused before its body is buffered. Responses
 * may arrive in any order; the correlation id matches them to requests.
 */
export const REQUEST_PREFIX_BYTES = 16;
export const RESPONSE_PREFIX_BYTES = 14;
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

export interface RequestFrame {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  header: Buffer;
  payload: Buffer;
}

export interface ResponseFrame {
  correlationId: number;
  frameError: number;
  header: Buffer;
  payload: Buffer;
}

/** Encodes a request; returns buffers to write in order (the payload is not copied). */
export function encodeRequest(apiKey: number, apiVersion: number, correlationId: number, header: Uint8Array, payload: readonly Buffer[] = []): Buffer[] {
  let payloadBytes = 0;
  for (const p of payload) payloadBytes += p.length;
  const prefix = Buffer.allocUnsafe(REQUEST_PREFIX_BYTES + header.length);
  prefix.writeUInt32BE(REQUEST_PREFIX_BYTES - 4 + header.length + payloadBytes, 0);
  prefix.writeUInt16BE(apiKey, 4);
  prefix.writeUInt16BE(apiVersion, 6);
  prefix.writeUInt32BE(correlationId >>> 0, 8);
  prefix.writeUInt32BE(header.length, 12);
  prefix.set(header, REQUEST_PREFIX_BYTES);
  return [prefix, ...payload];
}

/** Encodes a response; returns buffers to write in order (the payload is not copied). */
export function encodeResponse(correlationId: number, frameError: number, header: Uint8Array, payload: readonly Buffer[] = []): Buffer[] {
  let payloadBytes = 0;
  for (const p of payload) payloadBytes += p.length;
  const prefix = Buffer.allocUnsafe(RESPONSE_PREFIX_BYTES + header.length);
  prefix.writeUInt32BE(RESPONSE_PREFIX_BYTES - 4 + header.length + payloadBytes, 0);
  prefix.writeUInt32BE(correlationId >>> 0, 4);
  prefix.writeUInt16BE(frameError, 8);
  prefix.writeUInt32BE(header.length, 10);
  prefix.set(header, RESPONSE_PREFIX_BYTES);
  return [prefix, ...payload];
}

export type FrameRejection = { reason: string; correlationId?: number; apiKey?: number; apiVersion?: number };

/**
 * Incremental frame reader: feed it socket chunks, it calls onFrame with each
 * whole frame's bytes (after the length field). `checkPrefix` sees the first
 * `prefixBytes` bytes (length included) before the body is buffered and may
 * refuse the frame; the reader then stops for good.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private needed = -1; // body bytes of the current frame, -1 while reading a prefix
  private failed = false;

  constructor(
    private readonly prefixBytes: number,
    private readonly maxFrameBytes: number,
    private readonly onFrame: (body: Buffer) => void,
    private readonly onReject: (rejection: FrameRejection) => void,
    private readonly checkPrefix: (prefix: Buffer) => FrameRejection | undefined = () => undefined,
  ) {}

  push(chunk: Buffer): void {
    if (this.failed) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (!this.failed) {
      if (this.needed < 0) {
        if (this.buffered < this.prefixBytes) return;
        const prefix = this.peek(this.prefixBytes);
        const length = prefix.readUInt32BE(0);
        if (length < this.prefixBytes - 4 || length > this.maxFrameBytes) {
          return this.fail({ reason: `frame length ${length} outside [${this.prefixBytes - 4}, ${this.maxFrameBytes}]` });
        }
        const rejection = this.checkPrefix(prefix);
        if (rejection !== undefined) return this.fail(rejection);
        this.needed = length;
      }
      if (this.buffered < this.needed + 4) return;
      const frame = this.take(this.needed + 4);
      this.needed = -1;
      this.onFrame(frame.subarray(4));
    }
  }

  private fail(rejection: FrameRejection): void {
    this.failed = true;
    this.chunks = [];
    this.buffered = 0;
    this.onReject(rejection);
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      // Copy only this frame's bytes; what follows stays a view of its chunk.
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.chunks[0]!;
        const part = Math.min(c.length, n - filled);
        c.copy(out, filled, 0, part);
        filled += part;
        if (part === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(part);
      }
    }
    this.buffered -= n;
    return out;
  }
}

/** Splits a request body (frame bytes after the length field). */
export function parseRequestBody(body: Buffer): RequestFrame {
  const headerLength = body.readUInt32BE(8);
  if (12 + headerLength > body.length) throw new RangeError(`header length ${headerLength} exceeds frame`);
  return {
    apiKey: body.readUInt16BE(0),
    apiVersion: body.readUInt16BE(2),
    correlationId: body.readUInt32BE(4),
    header: body.subarray(12, 12 + headerLength),
    payload: body.subarray(12 + headerLength),
  };
}

/** Splits a response body (frame bytes after the length field). */
export function parseResponseBody(body: Buffer): ResponseFrame {
  const headerLength = body.readUInt32BE(6);
  if (10 + headerLength > body.length) throw new RangeError(`header length ${headerLength} exceeds frame`);
  return {
    correlationId: body.readUInt32BE(0),
    frameError: body.readUInt16BE(4),
    header: body.subarray(10, 10 + headerLength),
    payload: body.subarray(10 + headerLength),
  };
}
