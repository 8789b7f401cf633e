import { backoffDelay } from '../lib/backoff.js';
import { ErrorCode, KmqError, toKmqError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { Acks } from '../protocol/gen/kmq/broker/v1/broker.js';
import type { ProduceRequest, ProduceResponse } from '../protocol/gen/kmq/broker/v1/broker.js';
import { Apis } from '../protocol/apis.js';
import { errorCodeFromWire } from '../protocol/error-codes.js';
import { BatchBuilder } from '../protocol/record-batch.js';
import type { RecordHeader } from '../protocol/record-batch.js';
import type { Cluster } from './cluster.js';
import type { BrokerConnection } from '../protocol/connection.js';
import type { CompiledRetrySettings } from './options.js';
import type { CompiledProducerOptions } from './producer-options.js';
import { addSequence, restampSequence } from './produce-batch.js';
import type { Run, SealedBatch, SendCall } from './produce-batch.js';

/** What a partition queue shares with its producer. */
export interface ProducerContext {
  cluster: Cluster;
  options: CompiledProducerOptions;
  backoff: CompiledRetrySettings;
  log: Logger;
  producerId: number;
  producerEpoch: number;
  /** A batch of `bytes` was sealed / settled (memory accounting). */
  buffered(bytes: number): void;
  released(bytes: number): void;
  /** The open batch of (topic, partition) was sealed (sticky partitioning moves on). */
  sealed(topic: string, partition: number): void;
}

const ACKS: Record<CompiledProducerOptions['acks'], Acks> = { none: Acks.ACKS_NONE, leader: Acks.ACKS_LEADER, all: Acks.ACKS_ALL };

// Errors after which the leader may have moved: look it up again before retrying.
const ROUTE_ERRORS: ReadonlySet<string> = new Set([ErrorCode.NotLeader, ErrorCode.ConnectionClosed, ErrorCode.BrokerNotAvailable, ErrorCode.UnknownPartition, ErrorCode.RequestTimedOut]);
/** The smallest first buffer of a batch builder: under 4 KiB, Buffer.allocUnsafe takes it from its shared pool. */
const MIN_BUILDER_BYTES = 1024;

/**
 * The outgoing records of one partition: the open batch being filled, then sealed
 * batches in sequence order until the broker acknowledges them.
 *
 * Ordering: up to maxInFlightPerPartition batches are in flight, written in
 * sequence order on one connection. After an error the queue stops sending, waits
 * until every in-flight batch has answered, then resends the unacknowledged ones
 * from the oldest with the same producer id and sequence (the broker answers a
 * batch it already has with `duplicate`), one at a time until one succeeds. A batch
 * that fails for good is dropped and, when idempotent, the batches behind it are
 * renumbered so the broker's expected sequence has no gap.
 */
export class PartitionQueue {
  private builder: BatchBuilder | null = null;
  private builderSequence = 0;
  /** The size of the last batch sealed: the next builder starts near it (it grows by doubling past that). */
  private lastBatchBytes = 0;
  private runs: Run[] = [];
  /** Seals the open batch: a timer for lingerMs, or an immediate for 0 (setTimeout would wait 1 ms). */
  private lingerTimer: { kind: 'timeout'; t: NodeJS.Timeout } | { kind: 'immediate'; t: NodeJS.Immediate } | undefined;
  /** Sequence of the next batch to seal. */
  private nextSequence = 0;
  /** The broker's expected sequence: after the last acknowledged batch. */
  private ackedSequence = 0;
  private readonly pending: SealedBatch[] = [];
  /** pending[0, sent) are written in the current round. */
  private sent = 0;
  private inFlight = 0;
  private blocked = false;
  private resumeTimer: NodeJS.Timeout | undefined;
  private needResequence = false;
  private oneAtATime = false;
  private pumping = false;
  private aborted = false;
  private idleWaiters: Array<() => void> = [];
  private readonly request: ProduceRequest;

  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly ctx: ProducerContext,
  ) {
    this.request = { topic, partition, acks: ACKS[ctx.options.acks], timeoutMs: ctx.cluster.requestTimeoutMs };
  }

  /** Bytes in the open batch. */
  get openBytes(): number {
    return this.builder === null ? 0 : this.builder.sizeBytes;
  }

  get idle(): boolean {
    return this.builder === null && this.pending.length === 0;
  }

  /** Appends a record for slot `resultIndex` of `call`; `estimate` is its encoded size, roughly. */
  append(call: SendCall, resultIndex: number, key: Buffer | null, value: Buffer | null, headers: RecordHeader[] | null, timestamp: number | undefined, estimate: number): void {
    const { batchSizeBytes, lingerMs } = this.ctx.options;
    if (this.builder !== null && this.builder.sizeBytes + estimate > batchSizeBytes) this.seal();
    if (this.builder === null) {
      this.builderSequence = this.nextSequence;
      this.builder = new BatchBuilder(
        this.ctx.options.idempotent ? { producerId: this.ctx.producerId, producerEpoch: this.ctx.producerEpoch, baseSequence: this.builderSequence } : {},
        // Sized like the last batch, not at a fixed 16 KiB: at a low rate each batch carries a
        // record or two, and a 16 KiB buffer per record was most of the producer's garbage.
        Math.min(batchSizeBytes + 1024, Math.max(MIN_BUILDER_BYTES, estimate * 2, this.lastBatchBytes + (this.lastBatchBytes >> 2))),
      );
      this.lingerTimer = lingerMs === 0 ? { kind: 'immediate', t: setImmediate(() => this.seal()) } : { kind: 'timeout', t: setTimeout(() => this.seal(), lingerMs) };
    }
    this.builder.append(key, value, headers, timestamp);
    const last = this.runs[this.runs.length - 1];
    if (last !== undefined && last.call === call && last.resultStart + last.count === resultIndex) last.count++;
    else this.runs.push({ call, resultStart: resultIndex, count: 1 });
    if (this.builder.sizeBytes >= batchSizeBytes) this.seal();
  }

  private cancelLinger(): void {
    const t = this.lingerTimer;
    if (t === undefined) return;
    this.lingerTimer = undefined;
    if (t.kind === 'immediate') clearImmediate(t.t);
    else clearTimeout(t.t);
  }

  /** Closes the open batch and queues it for sending. */
  seal(): void {
    const builder = this.builder;
    if (builder === null) return;
    this.cancelLinger();
    this.builder = null;
    const bytes = builder.build();
    this.lastBatchBytes = bytes.length;
    const count = builder.count;
    const baseSequence = this.nextSequence;
    if (this.ctx.options.idempotent && baseSequence !== this.builderSequence) restampSequence(bytes, baseSequence);
    this.nextSequence = addSequence(baseSequence, count);
    this.pending.push({ bytes, baseSequence, count, runs: this.runs, attempts: 0 });
    this.runs = [];
    this.ctx.buffered(bytes.length);
    this.ctx.sealed(this.topic, this.partition);
    void this.pump();
  }

  /** Resolves once nothing is open or unacknowledged. */
  whenIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Fails everything still queued (producer closing without flush). */
  abort(err: KmqError): void {
    this.aborted = true;
    this.cancelLinger();
    clearTimeout(this.resumeTimer);
    for (const r of this.runs) r.call.fail(err);
    this.runs = [];
    this.builder = null;
    for (const b of this.pending.splice(0)) this.drop(b, err);
    this.checkIdle();
  }

  private limit(): number {
    return this.oneAtATime ? 1 : this.ctx.options.maxInFlightPerPartition;
  }

  private canSend(): boolean {
    return !this.blocked && !this.aborted && this.sent < this.pending.length && this.inFlight < this.limit();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.canSend()) {
        let conn: BrokerConnection;
        try {
          conn = await this.ctx.cluster.leaderConnection(this.topic, this.partition);
          if (conn.backpressured) await conn.drained();
        } catch (err) {
          // No batch was written: count the failure against the oldest unsent one.
          const b = this.pending[this.sent];
          if (b === undefined) return;
          this.sent++;
          this.inFlight++;
          this.onError(b, err);
          return;
        }
        // Written synchronously, so the batches reach the socket in sequence order.
        while (this.canSend()) {
          const b = this.pending[this.sent++]!;
          this.inFlight++;
          this.dispatch(conn, b);
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  private dispatch(conn: BrokerConnection, b: SealedBatch): void {
    if (this.ctx.options.acks === 'none') {
      conn.send(Apis.Produce, this.request, [b.bytes]).then(
        () => this.onSuccess(b, null),
        (err: unknown) => this.onError(b, err),
      );
      return;
    }
    let response;
    try {
      response = conn.request(Apis.Produce, this.request, [b.bytes]);
    } catch (err) {
      response = Promise.reject(err);
    }
    response.then(
      (res) => {
        if (res.header.errorCode === 0) this.onSuccess(b, res.header);
        else this.onError(b, this.brokerError(res.header));
      },
      (err: unknown) => this.onError(b, err),
    );
  }

  private brokerError(h: ProduceResponse): KmqError {
    const code = errorCodeFromWire(h.errorCode);
    const what = `Produce to ${this.topic}[${this.partition}] failed`;
    return new KmqError(code, h.errorMessage === '' ? `${what}: ${code}` : `${what}: ${h.errorMessage}`, { topic: this.topic, partition: this.partition });
  }

  private onSuccess(b: SealedBatch, h: ProduceResponse | null): void {
    this.inFlight--;
    if (this.aborted) return;
    this.remove(b);
    this.oneAtATime = false;
    if (this.ctx.options.idempotent) this.ackedSequence = addSequence(b.baseSequence, b.count);
    let offset = h === null ? -1 : h.baseOffset;
    for (const r of b.runs) {
      r.call.complete(this.topic, this.partition, r.resultStart, r.count, offset);
      if (offset >= 0) offset += r.count;
    }
    this.ctx.released(b.bytes.length);
    this.afterResponse();
  }

  private onError(b: SealedBatch, raw: unknown): void {
    this.inFlight--;
    if (this.aborted) return;
    const err = toKmqError(raw, ErrorCode.Unknown, { topic: this.topic, partition: this.partition });
    // An out-of-order sequence behind a failed batch heals once that batch is resent.
    const behindFailure = err.code === ErrorCode.OutOfOrderSequence && (this.blocked || this.pending[0] !== b);
    if ((err.retriable || behindFailure) && b.attempts < this.ctx.options.retries) {
      b.attempts++;
      if (ROUTE_ERRORS.has(err.code)) this.ctx.cluster.invalidate(this.topic);
      this.ctx.log.debug({ topic: this.topic, partition: this.partition, attempt: b.attempts, err: err.message }, 'Retrying produce');
    } else {
      this.remove(b);
      this.drop(b, err);
      if (this.ctx.options.idempotent) this.needResequence = true;
      if (err.code === ErrorCode.UnknownTopic || err.code === ErrorCode.UnknownPartition) this.ctx.cluster.invalidate(this.topic);
    }
    this.blocked = true;
    this.afterResponse();
  }

  private afterResponse(): void {
    if (this.blocked) {
      if (this.inFlight === 0 && this.resumeTimer === undefined) this.scheduleResume();
    } else {
      void this.pump();
    }
    this.checkIdle();
  }

  private scheduleResume(): void {
    let attempts = 0;
    for (const b of this.pending) if (b.attempts > attempts) attempts = b.attempts;
    const delay = attempts === 0 ? 0 : backoffDelay(attempts - 1, this.ctx.backoff);
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = undefined;
      this.blocked = false;
      this.sent = 0;
      this.oneAtATime = true;
      if (this.needResequence) this.resequence();
      void this.pump();
      this.checkIdle();
    }, delay);
  }

  /** Renumbers unacknowledged batches from the broker's expected sequence. */
  private resequence(): void {
    this.needResequence = false;
    let seq = this.ackedSequence;
    for (const b of this.pending) {
      if (b.baseSequence !== seq) {
        restampSequence(b.bytes, seq);
        b.baseSequence = seq;
      }
      seq = addSequence(seq, b.count);
    }
    this.nextSequence = seq;
  }

  private remove(b: SealedBatch): void {
    const i = this.pending.indexOf(b);
    if (i < 0) return;
    this.pending.splice(i, 1);
    if (i < this.sent) this.sent--;
  }

  private drop(b: SealedBatch, err: KmqError): void {
    for (const r of b.runs) r.call.fail(err);
    this.ctx.released(b.bytes.length);
  }

  private checkIdle(): void {
    if (!this.idle || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
