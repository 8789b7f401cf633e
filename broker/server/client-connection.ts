import type { Socket } from 'node:net';
import type { Logger } from '../../lib/logger.js';
import { ErrorCode, KmqError, toKmqError } from '../../lib/errors.js';
import { FrameReader, REQUEST_PREFIX_BYTES, encodeResponse, parseRequestBody } from '../../protocol/frame.js';
import type { FrameRejection } from '../../protocol/frame.js';
import { apiByKey, isSupported } from '../../protocol/apis.js';
import { ErrorResponse } from '../../protocol/gen/kmq/broker/v1/broker.js';
import { errorCodeToWire } from '../../protocol/error-codes.js';
import type { BrokerProbe } from '../metrics/broker-probe.js';

const MAX_QUEUED_RESPONSE_BYTES = 16 * 1024 * 1024;

/** What a handler answers: a header message (already encoded) and raw payload, or nothing (acks=none). */
export interface HandlerResult {
  header: Uint8Array;
  payload?: Buffer[];
}

export type RequestDispatcher = (apiKey: number, header: Buffer, payload: Buffer, conn: ClientConnection, correlationId: number) => Promise<HandlerResult | null> | HandlerResult | null;

/**
 * One client TCP connection. Frames are checked from their fixed prefix (length,
 * api key, version) before the body is buffered; a bad frame closes the
 * connection. Requests run concurrently and answers go out as they complete,
 * matched by correlation id.
 */
export class ClientConnection {
  private readonly reader: FrameReader;
  private closed = false;
  private readonly closeListeners = new Set<() => void>();

  constructor(
    readonly socket: Socket,
    private readonly dispatch: RequestDispatcher,
    private readonly probe: BrokerProbe,
    private readonly logger: Logger,
    maxFrameBytes: number,
  ) {
    socket.setNoDelay(true);
    this.reader = new FrameReader(REQUEST_PREFIX_BYTES, maxFrameBytes, (body) => this.onFrame(body), (r) => this.onReject(r), checkPrefix);
    socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    socket.on('error', (err) => this.logger.debug({ err: err.message, remote: this.remote }, 'Connection error'));
    socket.on('close', () => {
      this.closed = true;
      for (const fn of this.closeListeners) fn();
      this.closeListeners.clear();
    });
  }

  get remote(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(fn: () => void): () => void {
    this.closeListeners.add(fn);
    return () => this.closeListeners.delete(fn);
  }

  private onReject(r: FrameRejection): void {
    this.probe.frameRejected();
    this.logger.warn({ remote: this.remote, reason: r.reason, apiKey: r.apiKey, apiVersion: r.apiVersion }, 'Closing connection: malformed frame');
    if (r.correlationId !== undefined) {
      // A well-framed request for an api or version we do not speak: answer, then close.
      const header = ErrorResponse.encode({ errorCode: errorCodeToWire(ErrorCode.UnsupportedVersion), errorMessage: r.reason }).finish();
      this.write(encodeResponse(r.correlationId, errorCodeToWire(ErrorCode.UnsupportedVersion), header));
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 1000).unref();
    } else {
      this.socket.destroy();
    }
  }

  private onFrame(body: Buffer): void {
    let correlationId = 0;
    let apiName = 'unknown';
    try {
      const frame = parseRequestBody(body);
      correlationId = frame.correlationId;
      apiName = apiByKey(frame.apiKey)?.name ?? 'unknown';
      this.probe.request(apiName);
      const result = this.dispatch(frame.apiKey, frame.header, frame.payload, this, correlationId);
      if (result instanceof Promise) {
        result.then(
          (r) => this.answer(correlationId, r),
          (err: unknown) => this.answerError(correlationId, apiName, err),
        );
      } else {
        this.answer(correlationId, result);
      }
    } catch (err) {
      this.answerError(correlationId, apiName, err);
    }
  }

  /** One answer of a stream (push subscription): many frames share the request's correlation id. */
  push(correlationId: number, r: HandlerResult): void {
    this.answer(correlationId, r);
  }

  /** Ends a stream with an error frame. */
  pushError(correlationId: number, apiName: string, err: unknown): void {
    this.answerError(correlationId, apiName, err);
  }

  /** Bytes queued for the client and not yet sent: a pushing stream waits while this is high. */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  private answer(correlationId: number, r: HandlerResult | null): void {
    if (r === null) return;
    this.write(encodeResponse(correlationId, 0, r.header, r.payload));
  }

  private answerError(correlationId: number, apiName: string, err: unknown): void {
    const e = err instanceof KmqError ? err : toKmqError(err, err instanceof RangeError ? ErrorCode.InvalidRequest : ErrorCode.Unknown);
    if (e.code === ErrorCode.Unknown || e.code === ErrorCode.StorageError) this.logger.error({ err: e, api: apiName }, 'Request failed');
    this.probe.requestError(apiName, e.code);
    const wire = errorCodeToWire(e.code);
    this.write(encodeResponse(correlationId, wire, ErrorResponse.encode({ errorCode: wire, errorMessage: e.message }).finish()));
  }

  private write(buffers: Buffer[]): void {
    if (this.closed || this.socket.destroyed) return;
    if (buffers.length === 1) {
      this.socket.write(buffers[0]!);
    } else {
      this.socket.cork();
      for (const b of buffers) if (b.length > 0) this.socket.write(b);
      this.socket.uncork();
    }
    // A client that sends requests but does not read answers must not grow our memory:
    // stop reading its requests until it has taken what is queued.
    if (this.socket.writableLength > MAX_QUEUED_RESPONSE_BYTES && !this.socket.isPaused()) {
      this.socket.pause();
      this.socket.once('drain', () => this.socket.resume());
    }
  }
}

function checkPrefix(prefix: Buffer): FrameRejection | undefined {
  const apiKey = prefix.readUInt16BE(4);
  const apiVersion = prefix.readUInt16BE(6);
  if (isSupported(apiKey, apiVersion)) return undefined;
  const spec = apiByKey(apiKey);
  const reason = spec === undefined ? `unknown api key ${apiKey}` : `${spec.name} version ${apiVersion} is not supported (${spec.minVersion}-${spec.maxVersion})`;
  return { reason, apiKey, apiVersion, correlationId: prefix.readUInt32BE(8) };
}
