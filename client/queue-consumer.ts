import { randomUUID } from 'node:crypto';
import { backoffDelay, sleep } from '../lib/backoff.js';
import { ErrorCode, KmqError, toKmqError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { Apis } from '../protocol/apis.js';
import { errorCodeFromWire } from '../protocol/error-codes.js';
import { AckType } from '../protocol/gen/kmq/broker/v1/queues.js';
import type { AcquiredRange, ShareAckResponse, ShareFetchResponse } from '../protocol/gen/kmq/broker/v1/queues.js';
import { forEachRecord } from '../protocol/record-batch.js';
import type { RecordHeader } from '../protocol/record-batch.js';
import { mergeAckRanges } from './ack-ranges.js';
import type { AckOp } from './ack-ranges.js';
import type { Cluster } from './cluster.js';
import { BrokerConnection } from '../protocol/connection.js';
import type { ConnectionOptions, StreamHandle } from '../protocol/connection.js';
import type { CompiledRetrySettings } from './options.js';
import { intSetting, invalidSetting, oneOfSetting, stringSetting } from './settings.js';

/** Options of a queue consumer (shared consumption: each message goes to one member). */
export interface QueueConsumerOptions {
  /** A queue, or a topic consumed by a shared group. */
  queue: string;
  /** The shared group of a topic; default '' (a queue's built-in group). */
  group?: string;
  /** Most deliveries held (received, not yet settled) at once. Default 100. */
  prefetch?: number;
  /** push (default): one subscription the broker sends on; pull: a loop of long-poll fetches. */
  mode?: 'push' | 'pull';
  /** Pull mode: how long one fetch waits for records, ms. Default 500. */
  maxWaitMs?: number;
  /**
   * Pull mode: most deliveries to receive in all; then fetching stops and deliveries()
   * ends once they are handed out. A consumer that needs N messages holds no more.
   */
  limit?: number;
  /** Where settlement failures go that no caller awaits. Default: logged as warnings. */
  onError?: (err: KmqError) => void;
}

export interface CompiledQueueConsumerOptions {
  queue: string;
  group: string;
  prefetch: number;
  mode: 'push' | 'pull';
  maxWaitMs: number;
  limit: number;
  onError: ((err: KmqError) => void) | undefined;
}

export function compileQueueConsumerOptions(o: QueueConsumerOptions): CompiledQueueConsumerOptions {
  if (typeof o !== 'object' || o === null) throw invalidSetting('options', 'must be an object', o);
  if (o.onError !== undefined && typeof o.onError !== 'function') throw invalidSetting('onError', 'must be a function', typeof o.onError);
  const mode = oneOfSetting('mode', o.mode, 'push', ['push', 'pull'] as const);
  const limit = intSetting('limit', o.limit, Number.MAX_SAFE_INTEGER, 1);
  // The broker pushes within the prefetch whatever the client has received, so only pulls can stop at a count.
  if (o.limit !== undefined && mode !== 'pull') throw invalidSetting('limit', "needs mode 'pull'", o.limit);
  return {
    queue: stringSetting('queue', o.queue ?? '', ''),
    group: stringSetting('group', o.group, '', true),
    prefetch: intSetting('prefetch', o.prefetch, 100, 1, 0xffff),
    mode,
    maxWaitMs: intSetting('maxWaitMs', o.maxWaitMs, 500, 0, 600_000),
    limit,
    onError: o.onError,
  };
}

/**
 * The answer to a settlement (ack, nack, reject, renew): awaitable, and lazy. It
 * becomes a promise only when someone awaits it, so a fire-and-forget `d.ack()` costs
 * no promise and cannot raise an unhandled rejection; its failure then goes to the
 * consumer's onError. Settlements issued in one event-loop turn share one request.
 */
export interface Settlement extends PromiseLike<void> {
  catch(onRejected: (err: KmqError) => void): Promise<void>;
  finally(onFinally: () => void): Promise<void>;
}

const HELD = 0;
const SETTLED = 1;
const RELEASED = 2;

/** One message lent to this member until it acks, nacks or rejects it, or its lock expires. */
export class Delivery {
  /** @internal */ state = HELD;
  /** @internal */ pendingRenew: SettlementOp | undefined;

  constructor(
    private readonly consumer: QueueConsumer,
    readonly queue: string,
    readonly partition: number,
    readonly offset: number,
    /** 1 on the first delivery. */
    readonly deliveryCount: number,
    /** Subarrays of the received frame: valid as long as the delivery is referenced. */
    readonly key: Buffer | null,
    readonly value: Buffer | null,
    readonly headers: RecordHeader[],
    readonly timestamp: number,
    /** When the lock ends (ms since the epoch) unless renewed. */
    readonly lockExpiresAt: number,
  ) {}

  /** Done: the message is gone. */
  ack(): Settlement {
    return this.consumer.settle(this, AckType.ACK_ACCEPT, 0, '');
  }

  /** Redeliver, to any member, after `delayMs`. */
  nack(delayMs = 0): Settlement {
    if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > 0xffffffff) throw invalidSetting('delayMs', 'must be an integer >= 0', delayMs);
    return this.consumer.settle(this, AckType.ACK_RELEASE, delayMs, '');
  }

  /** Dead-letter now (dropped when the queue has no dead-letter queue). */
  reject(reason = ''): Settlement {
    return this.consumer.settle(this, AckType.ACK_REJECT, 0, reason);
  }

  /** Extends the lock by the queue's lock timeout. */
  renew(): Settlement {
    return this.consumer.settle(this, AckType.ACK_RENEW, 0, '');
  }

  /** True once acked, nacked or rejected (or released by close()). */
  get settled(): boolean {
    return this.state !== HELD;
  }

  /** The first header named `key`, as UTF-8. */
  header(key: string): string | undefined {
    for (const h of this.headers) if (h.key === key) return h.value === null ? undefined : h.value.toString('utf8');
    return undefined;
  }
}

/** The settlements of one event-loop turn: one ShareAck request. */
class AckFlush {
  readonly ops: SettlementOp[] = [];
  readonly done: Promise<void>;
  resolveDone!: () => void;
  /** The whole request failed. */
  failure: KmqError | undefined;
  /** Per-offset failures, keyed partition:offset. */
  errors: Map<string, KmqError> | undefined;
  superseded = 0;

  constructor() {
    this.done = new Promise<void>((resolve) => (this.resolveDone = resolve));
  }

  errorOf(op: AckOp): KmqError | undefined {
    return this.failure ?? this.errors?.get(`${op.partition}:${op.offset}`);
  }
}

class SettlementOp implements AckOp, Settlement {
  observed = false;
  /** A renew made pointless by a settlement of the same record in the same turn. */
  superseded = false;

  constructor(
    readonly flush: AckFlush,
    readonly partition: number,
    readonly offset: number,
    readonly type: AckType,
    readonly delayMs: number,
    readonly reason: string,
  ) {}

  then<T1 = void, T2 = never>(onFulfilled?: ((v: void) => T1 | PromiseLike<T1>) | null, onRejected?: ((reason: unknown) => T2 | PromiseLike<T2>) | null): Promise<T1 | T2> {
    this.observed = true;
    return this.flush.done
      .then(() => {
        const err = this.flush.errorOf(this);
        if (err !== undefined) throw err;
      })
      .then(onFulfilled, onRejected);
  }

  catch(onRejected: (err: KmqError) => void): Promise<void> {
    return this.then(undefined, onRejected as (reason: unknown) => void);
  }

  finally(onFinally: () => void): Promise<void> {
    return this.then(
      () => onFinally(),
      (err: unknown) => {
        onFinally();
        throw err;
      },
    );
  }
}

function failedSettlement(err: KmqError): Settlement {
  const flush = new AckFlush();
  flush.failure = err;
  flush.resolveDone();
  return new SettlementOp(flush, -1, -1, AckType.ACK_ACCEPT, 0, '');
}

/**
 * A member of a queue's shared group. Each message it receives is locked to it until
 * it acks, nacks or rejects it (or the lock expires); other members get other
 * messages. Deliveries arrive on a push subscription (default) or by long-poll
 * fetches, at most `prefetch` held at once. Settlements of one event-loop turn go out
 * as one ShareAck request with consecutive offsets merged into ranges.
 *
 * close() stops receiving, sends the settlements already issued, then leaves the
 * group: whatever the member still holds becomes available to others at once.
 * Everything runs on one event loop; deliveries() may be iterated by one loop at a time.
 */
export class QueueConsumer {
  readonly memberId = randomUUID();
  readonly options: CompiledQueueConsumerOptions;
  private buffer: Delivery[] = [];
  private head = 0;
  private held = 0;
  private received = 0;
  /** The pull loop reached the limit: nothing more will arrive. */
  private exhausted = false;
  private waiters: Array<() => void> = [];
  private capacityWaiters: Array<() => void> = [];
  private started = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private failure: KmqError | undefined;
  private loop: Promise<void> | undefined;
  private stream: StreamHandle | undefined;
  private streamConnection: BrokerConnection | undefined;
  private endStream: (() => void) | undefined;
  private current: AckFlush | undefined;
  private readonly inflight = new Set<Promise<void>>();
  private readonly flushNow = (): void => this.flush();

  constructor(
    private readonly cluster: Cluster,
    options: CompiledQueueConsumerOptions,
    private readonly retry: CompiledRetrySettings,
    private readonly log: Logger,
    private readonly connectionOptions: Omit<ConnectionOptions, 'address'>,
  ) {
    this.options = options;
  }

  /** Deliveries held and not yet settled, buffered ones included. */
  get heldCount(): number {
    return this.held;
  }

  /** Starts receiving; deliveries() and batches() call it on their own. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.loop = this.options.mode === 'push' ? this.pushLoop() : this.pullLoop();
  }

  /** Deliveries one by one, until close() (or a fatal error, which is thrown). */
  async *deliveries(): AsyncGenerator<Delivery, void, undefined> {
    this.start();
    for (;;) {
      while (this.head < this.buffer.length) {
        const d = this.buffer[this.head]!;
        this.head++;
        if (this.head === this.buffer.length) {
          this.buffer = [];
          this.head = 0;
        }
        yield d;
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.closed || this.exhausted) return;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Everything received so far, as arrays: fewer awaits than deliveries() at high rates. */
  async *batches(): AsyncGenerator<Delivery[], void, undefined> {
    this.start();
    for (;;) {
      if (this.head < this.buffer.length) {
        const batch = this.head === 0 ? this.buffer : this.buffer.slice(this.head);
        this.buffer = [];
        this.head = 0;
        yield batch;
        continue;
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.closed || this.exhausted) return;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Acks many deliveries with one promise: it rejects with the first failure. */
  ackAll(deliveries: readonly Delivery[]): Promise<void> {
    return this.settleAll(deliveries, AckType.ACK_ACCEPT, 0, '');
  }

  /** Nacks many deliveries with one promise. */
  nackAll(deliveries: readonly Delivery[], delayMs = 0): Promise<void> {
    return this.settleAll(deliveries, AckType.ACK_RELEASE, delayMs, '');
  }

  /** Rejects (dead-letters) many deliveries with one promise. */
  rejectAll(deliveries: readonly Delivery[], reason = ''): Promise<void> {
    return this.settleAll(deliveries, AckType.ACK_REJECT, 0, reason);
  }

  /** Settlement of one delivery; Delivery's methods call this. */
  settle(d: Delivery, type: AckType, delayMs: number, reason: string): Settlement {
    const err = this.checkSettle(d, type);
    if (err !== undefined) return failedSettlement(err);
    return this.enqueue(d, type, delayMs, reason);
  }

  /** Stops receiving, sends issued settlements, leaves the group; idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private settleAll(deliveries: readonly Delivery[], type: AckType, delayMs: number, reason: string): Promise<void> {
    if (deliveries.length === 0) return Promise.resolve();
    const ops: SettlementOp[] = [];
    for (const d of deliveries) {
      const err = this.checkSettle(d, type);
      if (err !== undefined) return Promise.reject(err);
    }
    for (const d of deliveries) {
      const op = this.enqueue(d, type, delayMs, reason);
      op.observed = true;
      ops.push(op);
    }
    const flush = ops[0]!.flush;
    return flush.done.then(() => {
      for (const op of ops) {
        const e = flush.errorOf(op);
        if (e !== undefined) throw e;
      }
    });
  }

  private checkSettle(d: Delivery, type: AckType): KmqError | undefined {
    const context = { queue: this.options.queue, partition: d.partition, offset: d.offset };
    if (this.closed) return new KmqError(ErrorCode.InvalidDelivery, `Queue consumer of ${this.options.queue} is closed; the delivery was released`, context, { retriable: false });
    if (d.state !== HELD) {
      const what = type === AckType.ACK_RENEW ? 'renewed' : 'settled again';
      return new KmqError(ErrorCode.InvalidDelivery, `Delivery ${d.partition}:${d.offset} of ${this.options.queue} is already settled and cannot be ${what}`, context, { retriable: false });
    }
    return undefined;
  }

  private enqueue(d: Delivery, type: AckType, delayMs: number, reason: string): SettlementOp {
    let flush = this.current;
    if (flush === undefined) {
      flush = this.current = new AckFlush();
      // One request per event-loop turn: a for-await loop acks through microtasks, which run before this.
      setImmediate(this.flushNow);
    }
    const op = new SettlementOp(flush, d.partition, d.offset, type, delayMs, reason);
    if (type === AckType.ACK_RENEW) {
      d.pendingRenew = op;
    } else {
      d.state = SETTLED;
      const renew = d.pendingRenew;
      if (renew !== undefined && renew.flush === flush && !renew.superseded) {
        renew.superseded = true;
        flush.superseded++;
      }
      d.pendingRenew = undefined;
      this.held--;
      this.wakeCapacity();
    }
    flush.ops.push(op);
    return op;
  }

  private flush(): void {
    const flush = this.current;
    if (flush === undefined) return;
    this.current = undefined;
    const ops = flush.superseded === 0 ? flush.ops : flush.ops.filter((o) => !o.superseded);
    const ranges = mergeAckRanges(ops);
    const { queue, group } = this.options;
    const p = this.cluster
      .call(() => this.cluster.queueConnection(), Apis.ShareAck, { queue, group, memberId: this.memberId, ranges })
      .then(
        (res) => this.absorbAckErrors(flush, res.header),
        (err: unknown) => {
          flush.failure = toKmqError(err);
        },
      )
      .then(() => {
        flush.resolveDone();
        this.reportUnobserved(flush);
      });
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  private absorbAckErrors(flush: AckFlush, res: ShareAckResponse): void {
    if (res.errors.length === 0) return;
    const errors = new Map<string, KmqError>();
    for (const e of res.errors) {
      const code = errorCodeFromWire(e.errorCode);
      const message = e.errorMessage !== '' ? e.errorMessage : `Settlement of ${e.partition}:${e.offset} failed: ${code}`;
      errors.set(`${e.partition}:${e.offset}`, new KmqError(code, message, { queue: this.options.queue, partition: e.partition, offset: e.offset }));
    }
    flush.errors = errors;
  }

  private reportUnobserved(flush: AckFlush): void {
    if (flush.failure === undefined && flush.errors === undefined) return;
    let reported = 0;
    for (const op of flush.ops) {
      if (op.observed || op.superseded) continue;
      const err = flush.errorOf(op);
      if (err === undefined) continue;
      if (this.options.onError !== undefined) this.options.onError(err);
      else if (reported++ < 10) this.log.warn({ queue: this.options.queue, partition: op.partition, offset: op.offset, code: err.code, err: err.message }, 'Settlement failed');
    }
  }

  private ingest(header: ShareFetchResponse, payload: Buffer): void {
    const acquired = header.acquired;
    if (acquired.length === 0 || this.closed) return;
    const { queue } = this.options;
    const before = this.buffer.length;
    let at = 0;
    for (const data of header.data) {
      const bytes = payload.subarray(at, at + data.recordsLength);
      at += data.recordsLength;
      const ranges = rangesOf(acquired, data.partition);
      if (ranges.length === 0) continue;
      const partition = data.partition;
      let i = 0;
      forEachRecord(bytes, ranges[0]!.firstOffset, (r) => {
        while (i < ranges.length && ranges[i]!.lastOffset < r.offset) i++;
        const range = ranges[i];
        if (range === undefined || r.offset < range.firstOffset) return;
        this.buffer.push(new Delivery(this, queue, partition, r.offset, range.deliveryCount, r.key, r.value, r.headers, r.timestamp, range.lockExpiresAt));
      });
    }
    const added = this.buffer.length - before;
    if (added === 0) return;
    this.held += added;
    this.received += added;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private async pushLoop(): Promise<void> {
    const { queue, group, prefetch } = this.options;
    let attempt = 0;
    while (!this.closed) {
      let err: KmqError | undefined;
      try {
        const conn = await this.openStreamConnection();
        if (this.closed) return;
        err = await new Promise<KmqError | undefined>((resolve) => {
          this.endStream = () => resolve(undefined);
          this.stream = conn.stream(
            Apis.ShareSubscribe,
            { queue, group, memberId: this.memberId, prefetch },
            (r) => {
              attempt = 0;
              this.ingest(r.header, r.payload);
            },
            resolve,
            (h) => h.endOfStream,
          );
        });
      } catch (e) {
        err = toKmqError(e);
      }
      this.stream = undefined;
      this.endStream = undefined;
      if (this.closed) return;
      void this.streamConnection?.close();
      this.streamConnection = undefined;
      err ??= new KmqError(ErrorCode.ShuttingDown, `The broker ended the subscription to ${queue}`, { queue });
      if (!(await this.backoff(err, attempt++))) return;
    }
  }

  /**
   * A connection of its own for the push subscription: pushed records do not queue
   * ahead of settlements, and closing it ends the subscription on the broker, which
   * has no other way to stop one.
   */
  private async openStreamConnection(): Promise<BrokerConnection> {
    const shared = await this.cluster.queueConnection();
    const conn = new BrokerConnection({ ...this.connectionOptions, address: shared.address });
    this.streamConnection = conn;
    await conn.connect();
    return conn;
  }

  private async pullLoop(): Promise<void> {
    const { queue, group, prefetch, maxWaitMs, limit } = this.options;
    let attempt = 0;
    while (!this.closed) {
      if (this.received >= limit) {
        this.exhausted = true;
        this.wakeAll();
        return;
      }
      const want = Math.min(prefetch - this.held, limit - this.received);
      if (want <= 0) {
        await new Promise<void>((resolve) => this.capacityWaiters.push(resolve));
        continue;
      }
      try {
        const conn = await this.cluster.queueConnection();
        const res = await conn.request(
          Apis.ShareFetch,
          { queue, group, memberId: this.memberId, maxRecords: want, maxWaitMs, prefetch },
          undefined,
          { timeoutMs: maxWaitMs + this.cluster.requestTimeoutMs },
        );
        attempt = 0;
        this.ingest(res.header, res.payload);
      } catch (e) {
        if (this.closed) return;
        if (!(await this.backoff(toKmqError(e), attempt++))) return;
      }
    }
  }

  /** Waits before the next attempt; false (and the consumer failed) when it should stop. */
  private async backoff(err: KmqError, attempt: number): Promise<boolean> {
    if (!err.retriable || attempt >= this.retry.retries) {
      this.fail(err);
      return false;
    }
    // The queue host may have moved (cluster): look it up again.
    this.cluster.coordinatorMoved();
    const delay = backoffDelay(attempt, this.retry);
    this.log.debug({ queue: this.options.queue, attempt, delay, err: err.message }, 'Receiving failed; retrying');
    await sleep(delay);
    return !this.closed;
  }

  private fail(err: KmqError): void {
    if (this.failure !== undefined || this.closed) return;
    this.failure = err;
    this.log.error({ queue: this.options.queue, code: err.code, err: err.message }, 'Queue consumer stopped');
    this.wakeAll();
  }

  private wakeCapacity(): void {
    if (this.capacityWaiters.length === 0) return;
    const waiters = this.capacityWaiters;
    this.capacityWaiters = [];
    for (const w of waiters) w();
  }

  private wakeAll(): void {
    this.wakeCapacity();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    // What was received but not handed out is released by the leave below.
    for (let i = this.head; i < this.buffer.length; i++) this.buffer[i]!.state = RELEASED;
    this.held -= this.buffer.length - this.head;
    this.buffer = [];
    this.head = 0;
    this.stream?.cancel();
    this.endStream?.();
    this.wakeAll();
    // A pull in flight may still acquire records; leave only after it has answered.
    await this.loop;
    this.flush();
    await Promise.all([...this.inflight]);
    if (!this.started) return;
    const { queue, group } = this.options;
    try {
      await this.cluster.call(() => this.cluster.queueConnection(), Apis.ShareLeave, { queue, group, memberId: this.memberId });
    } catch (err) {
      // The broker releases the member's records when their locks expire.
      this.log.warn({ queue, err: (err as Error).message }, 'Leaving the shared group failed');
    }
    // Only now: closing the subscription's connection may release what it holds, settled or not.
    await this.streamConnection?.close();
    this.streamConnection = undefined;
  }
}

/** The acquired ranges of one partition, by first offset. */
function rangesOf(acquired: readonly AcquiredRange[], partition: number): AcquiredRange[] {
  const out: AcquiredRange[] = [];
  for (const r of acquired) if (r.partition === partition) out.push(r);
  if (out.length > 1) out.sort((a, b) => a.firstOffset - b.firstOffset);
  return out;
}
