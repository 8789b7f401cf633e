import * as net from 'node:net';
import { ErrorCode, KmqError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { ApiSpec } from './apis.js';
import { errorCodeFromWire } from './error-codes.js';
import { FrameReader, RESPONSE_PREFIX_BYTES, encodeRequest, parseResponseBody } from './frame.js';
import type { FrameRejection } from './frame.js';
import { ErrorResponse } from './gen/kmq/broker/v1/broker.js';

/** Where a broker listens. */
export interface BrokerAddress {
  host: string;
  port: number;
}

export function formatBrokerAddress(a: BrokerAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/**
 * One TCP connection to one broker. Requests are pipelined: many may be in
 * flight, and responses, in any order, are matched by correlation id.
 *
 * Lifecycle: connect() once; after the socket closes (for any reason) every
 * pending request is rejected with a retriable ConnectionClosed and the object
 * stays closed: callers open a new connection. All methods run on the event loop
 * of one process; there is no other concurrency.
 */
export interface ConnectionOptions {
  address: BrokerAddress;
  connectTimeoutMs: number;
  /** Default deadline per request, ms. */
  requestTimeoutMs: number;
  maxFrameBytes: number;
  logger: Logger;
}

export interface RequestOptions {
  /** Overrides the connection's request timeout (a long-poll fetch needs more). */
  timeoutMs?: number;
}

export interface Response<Res> {
  header: Res;
  /** Raw bytes after the header; a view into the received frame, not a copy. */
  payload: Buffer;
}

/** A request the broker answers many times (a push subscription). */
export interface StreamHandle {
  /** Stops listening at once: later answers are dropped and onEnd is not called. */
  cancel(): void;
}

interface Pending {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  api: ApiSpec<any, any>;
  resolve: (r: Response<unknown>) => void;
  reject: (e: KmqError) => void;
  /** Absent for streams: they have no deadline. */
  timer: NodeJS.Timeout | undefined;
  /** Streams stay registered until this says the answer was the last. */
  isEnd: ((header: unknown) => boolean) | undefined;
}

const EMPTY: readonly Buffer[] = [];

export class BrokerConnection {
  readonly address: BrokerAddress;
  readonly name: string;
  private readonly options: ConnectionOptions;
  private socket: net.Socket | undefined;
  private connecting: Promise<void> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextCorrelationId = 1;
  private closedError: KmqError | undefined;
  private needDrain = false;
  private drainWaiters: Array<() => void> = [];

  constructor(options: ConnectionOptions) {
    this.options = options;
    this.address = options.address;
    this.name = formatBrokerAddress(options.address);
  }

  /** True once the socket closed; the connection cannot be reused. */
  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** Requests awaiting a response. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** True while the socket's write buffer is over its high-water mark. */
  get backpressured(): boolean {
    return this.needDrain;
  }

  /** Resolves when the socket's buffer has drained (at once if it has). */
  drained(): Promise<void> {
    if (!this.needDrain || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Opens the socket; concurrent callers share one attempt. */
  connect(): Promise<void> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    this.connecting ??= this.open();
    return this.connecting;
  }

  private open(): Promise<void> {
    const { address, connectTimeoutMs, maxFrameBytes, logger } = this.options;
    return new Promise<void>((resolve, reject) => {
      const socket = net.createConnection({ host: address.host, port: address.port });
      this.socket = socket;
      let connected = false;
      const timer = setTimeout(() => {
        socket.destroy(new KmqError(ErrorCode.BrokerNotAvailable, `Connect to ${this.name} timed out after ${connectTimeoutMs} ms`, { broker: this.name }));
      }, connectTimeoutMs);
      const reader = new FrameReader(RESPONSE_PREFIX_BYTES, maxFrameBytes, (body) => this.onFrame(body), (r) => this.onBadFrame(r));
      socket.setNoDelay(true);
      socket.on('connect', () => {
        connected = true;
        clearTimeout(timer);
        logger.debug({ broker: this.name }, 'Connected to broker');
        resolve();
      });
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
      socket.on('drain', () => this.onDrain());
      socket.on('error', (err) => {
        if (!connected) {
          clearTimeout(timer);
          const e = err instanceof KmqError ? err : new KmqError(ErrorCode.BrokerNotAvailable, `Cannot connect to ${this.name}: ${err.message}`, { broker: this.name }, { cause: err });
          this.closedError = e;
          reject(e);
        } else {
          logger.warn({ broker: this.name, err: err.message }, 'Broker connection failed');
        }
      });
      socket.on('close', () => {
        clearTimeout(timer);
        this.closedError ??= new KmqError(ErrorCode.ConnectionClosed, `Connection to ${this.name} closed`, { broker: this.name });
        if (!connected) reject(this.closedError);
        this.failAll(new KmqError(ErrorCode.ConnectionClosed, `Connection to ${this.name} closed with the request pending`, { broker: this.name }));
        this.onDrain();
      });
    });
  }

  /**
   * Sends a request and resolves with the decoded response header and the raw
   * payload. Rejects with the broker's error (frame error), RequestTimedOut or
   * ConnectionClosed. The payload buffers are written as they are, not copied.
   */
  request<Req, Res>(api: ApiSpec<Req, Res>, req: Req, payload: readonly Buffer[] = EMPTY, opts: RequestOptions = {}): Promise<Response<Res>> {
    const socket = this.writableSocket(api);
    const correlationId = this.takeCorrelationId();
    const timeoutMs = opts.timeoutMs ?? this.options.requestTimeoutMs;
    return new Promise<Response<Res>>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(correlationId)) {
          reject(new KmqError(ErrorCode.RequestTimedOut, `${api.name} request to ${this.name} timed out after ${timeoutMs} ms`, { broker: this.name, api: api.name }));
          // A broker that does not answer in time may be frozen or cut off: drop the
          // connection (as Kafka clients do), so the next attempt connects afresh,
          // possibly elsewhere, instead of queueing behind the same silence.
          this.socket?.destroy();
        }
      }, timeoutMs);
      this.pending.set(correlationId, { api, resolve: resolve as (r: Response<unknown>) => void, reject, timer, isEnd: undefined });
      this.write(socket, encodeRequest(api.key, api.maxVersion, correlationId, api.request.encode(req).finish(), payload));
    });
  }

  /**
   * Sends a request the broker answers many times under its correlation id (a push
   * subscription). Every answer goes to onMessage, the last one included; the stream
   * ends when `isEnd` says an answer is the last (onEnd()), on a frame error or when
   * the connection closes (onEnd(err)). Streams have no deadline. onEnd runs at most
   * once, and never after cancel(). Throws as request() does when the connection is
   * not open.
   */
  stream<Req, Res>(
    api: ApiSpec<Req, Res>,
    req: Req,
    onMessage: (r: Response<Res>) => void,
    onEnd: (err?: KmqError) => void,
    isEnd: (header: Res) => boolean,
  ): StreamHandle {
    const socket = this.writableSocket(api);
    const correlationId = this.takeCorrelationId();
    let done = false;
    const end = (err?: KmqError): void => {
      if (done) return;
      done = true;
      onEnd(err);
    };
    const entry: Pending = {
      api,
      // Called per answer; onFrame has already unregistered the stream when this one is the last.
      resolve: (r) => {
        if (done) return;
        onMessage(r as Response<Res>);
        if (this.pending.get(correlationId) !== entry) end();
      },
      reject: end,
      timer: undefined,
      isEnd: isEnd as (header: unknown) => boolean,
    };
    this.pending.set(correlationId, entry);
    this.write(socket, encodeRequest(api.key, api.maxVersion, correlationId, api.request.encode(req).finish(), EMPTY));
    return {
      cancel: () => {
        done = true;
        if (this.pending.get(correlationId) === entry) this.pending.delete(correlationId);
      },
    };
  }

  /**
   * Sends a request the broker does not answer (produce with acks NONE). Resolves
   * once the bytes are handed to the socket and its buffer is below the
   * high-water mark, so a loop of sends cannot grow memory without bound.
   */
  async send<Req, Res>(api: ApiSpec<Req, Res>, req: Req, payload: readonly Buffer[] = EMPTY): Promise<void> {
    const socket = this.writableSocket(api);
    this.write(socket, encodeRequest(api.key, api.maxVersion, this.takeCorrelationId(), api.request.encode(req).finish(), payload));
    if (this.needDrain) await this.drained();
    if (this.closedError !== undefined) throw this.closedError;
  }

  /** Closes the socket; pending requests are rejected with ConnectionClosed. */
  close(): Promise<void> {
    const socket = this.socket;
    this.closedError ??= new KmqError(ErrorCode.ConnectionClosed, `Connection to ${this.name} was closed by the client`, { broker: this.name });
    if (socket === undefined || socket.destroyed) {
      this.failAll(this.closedError);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      socket.once('close', () => resolve());
      socket.destroy();
    });
  }

  private writableSocket(api: { name: string }): net.Socket {
    if (this.closedError !== undefined) throw this.closedError;
    const socket = this.socket;
    if (socket === undefined || socket.connecting) {
      throw new KmqError(ErrorCode.BrokerNotAvailable, `${api.name} request before the connection to ${this.name} is open`, { broker: this.name });
    }
    return socket;
  }

  private takeCorrelationId(): number {
    const id = this.nextCorrelationId;
    this.nextCorrelationId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  private write(socket: net.Socket, buffers: Buffer[]): void {
    socket.cork();
    let ok = true;
    for (const b of buffers) ok = socket.write(b);
    socket.uncork();
    if (!ok) this.needDrain = true;
  }

  private onDrain(): void {
    this.needDrain = false;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private onFrame(body: Buffer): void {
    let frame;
    try {
      frame = parseResponseBody(body);
    } catch (err) {
      this.onBadFrame({ reason: (err as Error).message });
      return;
    }
    const p = this.pending.get(frame.correlationId);
    if (p === undefined) {
      // The request timed out earlier; its late answer has no one to go to.
      this.options.logger.debug({ broker: this.name, correlationId: frame.correlationId }, 'Dropped response to an expired request');
      return;
    }
    if (p.isEnd === undefined) {
      this.pending.delete(frame.correlationId);
      clearTimeout(p.timer);
    }
    if (frame.frameError !== 0) {
      this.pending.delete(frame.correlationId);
      p.reject(this.frameError(p.api.name, frame.frameError, frame.header));
      return;
    }
    let header: unknown;
    try {
      header = p.api.response.decode(frame.header);
    } catch (err) {
      this.pending.delete(frame.correlationId);
      p.reject(new KmqError(ErrorCode.CorruptMessage, `Undecodable ${p.api.name} response from ${this.name}`, { broker: this.name, api: p.api.name }, { cause: err }));
      return;
    }
    if (p.isEnd !== undefined && p.isEnd(header)) this.pending.delete(frame.correlationId);
    p.resolve({ header, payload: frame.payload });
  }

  private frameError(apiName: string, frameError: number, headerBytes: Buffer): KmqError {
    let wire = frameError;
    let message = '';
    try {
      const h = ErrorResponse.decode(headerBytes);
      if (h.errorCode !== 0) wire = h.errorCode;
      message = h.errorMessage;
    } catch {
      // The frame error code alone still says what went wrong.
    }
    const code = errorCodeFromWire(wire);
    return new KmqError(code, message === '' ? `${apiName} failed on ${this.name}: ${code}` : message, { broker: this.name, api: apiName });
  }

  private onBadFrame(rejection: FrameRejection): void {
    this.options.logger.error({ broker: this.name, reason: rejection.reason }, 'Bad response frame; closing the connection');
    this.closedError ??= new KmqError(ErrorCode.ConnectionClosed, `Bad response frame from ${this.name}: ${rejection.reason}`, { broker: this.name });
    this.failAll(this.closedError);
    this.socket?.destroy();
  }

  private failAll(err: KmqError): void {
    if (this.pending.size === 0) return;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }
}
