import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { splitBatches, validateBatch } from '../../protocol/record-batch.js';
import type { BatchHeader } from '../../protocol/batch-header.js';
import { PartitionLog } from '../storage/partition-log.js';
import type { LogConfig, LogDeps } from '../storage/partition-log.js';
import { ProducerStateTable } from './producer-state.js';

export interface AppendResult {
  baseOffset: number;
  lastOffset: number;
  /** The batch was a producer retry: nothing new was written. */
  duplicate: boolean;
  records: number;
  bytes: number;
}

/**
 * One partition of a topic on this broker: its log, idempotent-producer state and
 * the long-poll listeners waiting for new data. Appends are validated here (batch
 * framing, CRC, size, producer sequence) and never decode individual records.
 * Event-loop only: offsets are assigned synchronously inside append().
 */
export class Partition {
  private readonly producers = new ProducerStateTable();
  private readonly listeners = new Set<() => void>();
  private failed: KmqError | undefined;

  private constructor(
    readonly topic: string,
    readonly index: number,
    readonly log: PartitionLog,
    private readonly logger: Logger,
  ) {}

  static open(topic: string, index: number, dir: string, config: LogConfig, deps: LogDeps & { logger: Logger }): Partition {
    const logger = deps.logger.child({ topic, partition: index });
    const log = PartitionLog.open(dir, config, { ...deps, logger });
    const p = new Partition(topic, index, log, logger);
    // Producer state is rebuilt from batch headers, so retries across a restart are still detected.
    log.scanBatchHeaders(log.logStartOffset, (h: BatchHeader) => {
      if (h.producerId >= 0) {
        p.producers.record(h.producerId, h.producerEpoch, h.baseSequence, h.recordCount, h.baseOffset, h.baseOffset + h.lastOffsetDelta);
      }
    });
    return p;
  }

  get logStartOffset(): number {
    return this.log.logStartOffset;
  }

  get logEndOffset(): number {
    return this.log.logEndOffset;
  }

  /** Validates and appends a produce payload (one or more batches). */
  append(payload: Buffer, maxMessageBytes: number): Promise<AppendResult> {
    const ctx = { topic: this.topic, partition: this.index };
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (payload.length === 0) return Promise.reject(new KmqError(ErrorCode.CorruptMessage, 'Produce request carries no record batch', ctx));
    let batches: Buffer[];
    const headers: BatchHeader[] = [];
    try {
      batches = splitBatches(payload, false);
      for (const b of batches) {
        if (b.length > maxMessageBytes) {
          throw new KmqError(ErrorCode.MessageTooLarge, `Record batch of ${b.length} bytes exceeds the maximum message size of ${maxMessageBytes} bytes for topic "${this.topic}"`, ctx);
        }
        headers.push(validateBatch(b));
      }
    } catch (err) {
      if (err instanceof KmqError) {
        if (err.context.topic === undefined) Object.assign(err.context, ctx);
        return Promise.reject(err);
      }
      return Promise.reject(new KmqError(ErrorCode.CorruptMessage, `Malformed record batch: ${(err as Error).message}`, ctx));
    }

    let records = 0;
    try {
      for (const h of headers) {
        records += h.recordCount;
        if (h.producerId < 0) continue;
        const check = this.producers.check(h.producerId, h.producerEpoch, h.baseSequence, h.recordCount, ctx);
        if (check.kind === 'duplicate') {
          if (headers.length !== 1) throw new KmqError(ErrorCode.InvalidRequest, 'A retried idempotent batch must be sent alone', ctx);
          return Promise.resolve({ baseOffset: check.baseOffset, lastOffset: check.lastOffset, duplicate: true, records: 0, bytes: 0 });
        }
      }
    } catch (err) {
      return Promise.reject(err);
    }

    // The log assigns offsets synchronously from its end; record producer state now so
    // a retry that arrives while this append is being flushed is still recognised.
    const base = this.log.logEndOffset;
    let next = base;
    for (const h of headers) {
      if (h.producerId >= 0) this.producers.record(h.producerId, h.producerEpoch, h.baseSequence, h.recordCount, next, next + h.lastOffsetDelta);
      next += h.lastOffsetDelta + 1;
    }
    const appended = this.log.append(payload);
    this.notify();
    return appended.then(
      (r) => ({ baseOffset: r.baseOffset, lastOffset: r.lastOffset, duplicate: false, records, bytes: payload.length }),
      (err: unknown) => {
        const e = err instanceof KmqError ? err : new KmqError(ErrorCode.StorageError, String(err), ctx, { cause: err });
        // A failed write leaves the log in doubt: refuse further appends until restart.
        this.failed = e;
        this.logger.error({ err: e }, 'Append failed; partition is offline until restart');
        throw e;
      },
    );
  }

  read(offset: number, maxBytes: number): Buffer {
    return this.log.read(offset, maxBytes);
  }

  offsetForTimestamp(ts: number): number {
    return this.log.offsetForTimestamp(ts);
  }

  /** Registers a one-shot listener for the next append; returns a function that removes it. */
  onNextAppend(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private notify(): void {
    if (this.listeners.size === 0) return;
    const fns = [...this.listeners];
    this.listeners.clear();
    for (const fn of fns) fn();
  }

  close(): Promise<void> {
    return this.log.close();
  }
}
