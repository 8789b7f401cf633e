import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { splitBatches, validateBatch } from '../../protocol/record-batch.js';
import { BATCH_HEADER_BYTES, BATCH_LOG_OVERHEAD, readBatchHeader } from '../../protocol/batch-header.js';
import type { BatchHeader } from '../../protocol/batch-header.js';
import { PartitionLog } from '../storage/partition-log.js';
import type { LogConfig, LogDeps } from '../storage/partition-log.js';
import { ProducerStateTable } from './producer-state.js';
import { LeaderEpochCache } from './leader-epoch-cache.js';
import { LeaderState } from './leader-state.js';

export interface AppendResult {
  baseOffset: number;
  lastOffset: number;
  /** The batch was a producer retry: nothing new was written. */
  duplicate: boolean;
  records: number;
  bytes: number;
}

/**
 * How this broker holds a partition. `standalone`: a single-node broker, whose
 * high watermark is its log end. In a cluster: the partition's `leader` (takes
 * produce, serves consumers below the high watermark, tracks its followers),
 * a `follower` of another broker (copies the leader's log), or `none` (no
 * leader known, or not a replica: every client request is refused NotLeader).
 */
export type PartitionRole =
  | { kind: 'standalone' }
  | { kind: 'leader'; state: LeaderState }
  | { kind: 'follower'; leader: number; epoch: number }
  | { kind: 'none'; epoch: number };

interface CommitWaiter {
  lastOffset: number;
  resolve: () => void;
  reject: (err: KmqError) => void;
  timer: NodeJS.Timeout;
}

/**
 * One partition of a topic on this broker: its log, idempotent-producer state,
 * leader epochs, its replication role and high watermark, and the long-poll
 * listeners waiting for new data. Appends are validated here (batch framing,
 * CRC, size, producer sequence) and never decode individual records.
 * Event-loop only: offsets are assigned synchronously inside append().
 */
export class Partition {
  private producers = new ProducerStateTable();
  private readonly listeners = new Set<() => void>();
  private failed: KmqError | undefined;
  readonly epochs = new LeaderEpochCache();
  private currentRole: PartitionRole = { kind: 'standalone' };
  /** Below this offset every in-sync replica has the record; meaningful in a cluster role only. */
  private hw = 0;
  private commitWaiters: CommitWaiter[] = [];
  /** acks=all is refused while the in-sync set is smaller (the topic's setting, applied by the replica manager). */
  minInSyncReplicas = 1;

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
    p.rebuildFromLog();
    return p;
  }

  /** Producer state and leader epochs come from batch headers, so retries across a restart are still detected. */
  private rebuildFromLog(): void {
    this.producers = new ProducerStateTable();
    this.epochs.clear();
    this.log.scanBatchHeaders(this.log.logStartOffset, (h: BatchHeader) => this.recordHeader(h, h.baseOffset));
  }

  private recordHeader(h: BatchHeader, baseOffset: number): void {
    if (h.producerId >= 0) this.producers.record(h.producerId, h.producerEpoch, h.baseSequence, h.recordCount, baseOffset, baseOffset + h.lastOffsetDelta);
    this.epochs.assign(h.partitionLeaderEpoch, baseOffset);
  }

  get logStartOffset(): number {
    return this.log.logStartOffset;
  }

  get logEndOffset(): number {
    return this.log.logEndOffset;
  }

  /** Consumers read below this: the log end on a single node; in a cluster, what every in-sync replica has. */
  get highWatermark(): number {
    return this.currentRole.kind === 'standalone' ? this.log.logEndOffset : this.hw;
  }

  get role(): PartitionRole {
    return this.currentRole;
  }

  /** Throws NotLeader unless this broker takes client requests for the partition. */
  checkLeader(): void {
    const r = this.currentRole;
    if (r.kind === 'standalone' || r.kind === 'leader') return;
    const where = r.kind === 'follower' ? `broker ${r.leader} leads it` : 'it has no leader right now';
    throw new KmqError(ErrorCode.NotLeader, `This broker is not the leader of ${this.topic}-${this.index}: ${where}`, { topic: this.topic, partition: this.index });
  }

  /** Validates and appends a produce payload (one or more batches). `acksAll` refuses it while the in-sync set is too small. */
  append(payload: Buffer, maxMessageBytes: number, acksAll = false): Promise<AppendResult> {
    const ctx = { topic: this.topic, partition: this.index };
    if (this.failed !== undefined) return Promise.reject(this.failed);
    try {
      this.checkLeader();
      this.checkInSync(acksAll);
    } catch (err) {
      return Promise.reject(err);
    }
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
    const epoch = this.currentRole.kind === 'leader' ? this.currentRole.state.epoch : -1;
    let next = base;
    for (const h of headers) {
      if (h.producerId >= 0) this.producers.record(h.producerId, h.producerEpoch, h.baseSequence, h.recordCount, next, next + h.lastOffsetDelta);
      next += h.lastOffsetDelta + 1;
    }
    this.epochs.assign(epoch, base);
    const appended = this.log.append(payload, epoch);
    this.advanceHighWatermark();
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

  /** Whole batches from `offset` for consumers: below the high watermark only. */
  read(offset: number, maxBytes: number): Buffer {
    return this.log.read(offset, maxBytes, this.highWatermark);
  }

  /** Whole batches from `offset` for a follower: up to the log end. */
  readForReplica(offset: number, maxBytes: number): Buffer {
    return this.log.read(offset, maxBytes);
  }

  // --- replication ------------------------------------------------------------------

  private checkInSync(acksAll: boolean): void {
    const r = this.currentRole;
    if (!acksAll || r.kind !== 'leader' || r.state.isr.size >= this.minInSyncReplicas) return;
    throw new KmqError(
      ErrorCode.NotEnoughReplicas,
      `${this.topic}-${this.index} has ${r.state.isr.size} in-sync replica(s) (${[...r.state.isr].join(', ')}), fewer than min.insync.replicas ${this.minInSyncReplicas}: acks=all produce refused`,
      { topic: this.topic, partition: this.index },
    );
  }

  /**
   * Takes the partition's leadership at `epoch`. The epoch starts at the current log
   * end: the leader's history is the truth its followers truncate to.
   */
  becomeLeader(brokerId: number, epoch: number, replicas: readonly number[], isr: readonly number[], now: number): void {
    const r = this.currentRole;
    if (r.kind === 'leader' && r.state.epoch === epoch) {
      r.state.setReplicas(replicas, now);
      this.updateIsr(isr);
      return;
    }
    this.epochs.assign(epoch, this.log.logEndOffset);
    this.currentRole = { kind: 'leader', state: new LeaderState(brokerId, epoch, replicas, isr, this.log.logEndOffset, now) };
    if (this.hw > this.log.logEndOffset) this.hw = this.log.logEndOffset;
    this.logger.info({ epoch, isr, logEndOffset: this.log.logEndOffset, highWatermark: this.hw }, 'Became partition leader');
    this.advanceHighWatermark();
  }

  /** Follows `leader` at `epoch` (the replica fetcher copies its log); or no role at all (`leader` -1). */
  becomeFollower(leader: number, epoch: number): void {
    const r = this.currentRole;
    if (r.kind === 'follower' && r.leader === leader && r.epoch === epoch) return;
    const wasLeader = r.kind === 'leader';
    this.currentRole = leader < 0 ? { kind: 'none', epoch } : { kind: 'follower', leader, epoch };
    this.failCommitWaiters(new KmqError(ErrorCode.NotLeader, `${this.topic}-${this.index} changed leader (epoch ${epoch}) before the records were replicated`, { topic: this.topic, partition: this.index }));
    if (wasLeader || leader >= 0) this.logger.info({ leader, epoch }, leader < 0 ? 'Partition has no leader' : 'Following partition leader');
    this.notify();
  }

  /** The in-sync set the coordination store now holds for this leadership. */
  updateIsr(isr: readonly number[]): void {
    if (this.currentRole.kind !== 'leader') return;
    this.currentRole.state.setIsr(isr);
    this.advanceHighWatermark();
    this.settleCommitWaiters();
  }

  /**
   * A follower fetched from `fetchOffset` under `epoch`: fences stale epochs, records
   * its progress and advances the high watermark. Returns true when the follower
   * should join the in-sync set.
   */
  onReplicaFetch(replica: number, epoch: number, fetchOffset: number, now: number): boolean {
    const r = this.currentRole;
    const ctx = { topic: this.topic, partition: this.index };
    if (r.kind !== 'leader') this.checkLeader();
    const state = (r as { state: LeaderState }).state;
    if (epoch !== state.epoch) {
      throw new KmqError(ErrorCode.FencedLeaderEpoch, `Replica ${replica} fetches ${this.topic}-${this.index} at leader epoch ${epoch}; the leader is at ${state.epoch}`, ctx);
    }
    if (!state.isReplica(replica)) throw new KmqError(ErrorCode.InvalidRequest, `Broker ${replica} is not a replica of ${this.topic}-${this.index}`, ctx);
    if (fetchOffset > this.log.logEndOffset) {
      throw new KmqError(ErrorCode.OffsetOutOfRange, `Replica ${replica} fetches ${this.topic}-${this.index} from ${fetchOffset}, past the leader's log end ${this.log.logEndOffset}`, ctx);
    }
    const join = state.onFetch(replica, fetchOffset, this.log.logEndOffset, this.hw, now);
    this.advanceHighWatermark();
    return join;
  }

  /** A proposed in-sync follower was not written to the store (refused, failed, fenced). */
  abandonIsrJoin(replica: number): void {
    if (this.currentRole.kind !== 'leader') return;
    this.currentRole.state.abandonJoin(replica);
    this.advanceHighWatermark();
  }

  /** Followers of this leadership that have not caught up within `lagMs`. */
  laggingReplicas(now: number, lagMs: number): number[] {
    return this.currentRole.kind === 'leader' ? this.currentRole.state.lagging(now, lagMs) : [];
  }

  /** A follower appends batches copied from its leader, offsets and epochs as stamped there. */
  appendReplicated(payload: Buffer, leaderHighWatermark: number): Promise<void> {
    if (this.currentRole.kind !== 'follower') return Promise.reject(new KmqError(ErrorCode.NotLeader, `${this.topic}-${this.index} is not following a leader`, { topic: this.topic, partition: this.index }));
    if (payload.length === 0) {
      this.setFollowerHighWatermark(leaderHighWatermark);
      return Promise.resolve();
    }
    for (let at = 0; at + BATCH_HEADER_BYTES <= payload.length; ) {
      const h = readBatchHeader(payload, at);
      this.recordHeader(h, h.baseOffset);
      at += h.batchLength + BATCH_LOG_OVERHEAD;
    }
    return this.log.appendReplicated(payload).then(
      () => {
        this.setFollowerHighWatermark(leaderHighWatermark);
        this.notify();
      },
      (err: unknown) => {
        // What was written is in doubt: rebuild the derived state from the log as it is.
        this.rebuildFromLog();
        throw err;
      },
    );
  }

  /**
   * A follower drops whole segments below the leader's log start (Kafka's follower log
   * start): what the leader deleted (a queue's acknowledged segments, retention) is
   * never fetched again, so the copy would only grow.
   */
  followLogStart(leaderLogStart: number): void {
    if (this.currentRole.kind !== 'follower' || !(leaderLogStart > this.log.logStartOffset)) return;
    try {
      this.log.deleteSegmentsBelow(Math.min(leaderLogStart, this.hw), 'leader-log-start');
    } catch (err) {
      this.logger.error({ err }, 'Dropping segments below the leader\'s log start failed');
    }
  }

  private setFollowerHighWatermark(leaderHighWatermark: number): void {
    const hw = Math.min(leaderHighWatermark, this.log.logEndOffset);
    if (hw > this.hw) this.hw = hw;
  }

  /** Drops records at or after `offset` (history the leader does not have); returns the new log end. */
  async truncateTo(offset: number): Promise<number> {
    const before = this.log.logEndOffset;
    const end = await this.log.truncateTo(offset);
    if (end < before) {
      this.rebuildFromLog();
      this.logger.warn({ from: before, to: end }, 'Truncated records the leader does not have');
    }
    if (this.hw > end) this.hw = end;
    return end;
  }

  /** Empties the log and restarts it at `offset` (the follower fell below the leader's log start). */
  async resetTo(offset: number): Promise<void> {
    await this.log.resetTo(offset);
    this.rebuildFromLog();
    this.hw = Math.min(this.hw, this.log.logEndOffset);
  }

  /**
   * Resolves once every in-sync replica has the records up to `lastOffset` (acks=all),
   * with the in-sync set still at least min.insync.replicas; rejects with NotLeader if
   * leadership moves first, RequestTimedOut after `timeoutMs`.
   */
  waitForCommit(lastOffset: number, timeoutMs: number): Promise<void> {
    if (this.currentRole.kind === 'standalone') return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.commitWaiters = this.commitWaiters.filter((w) => w !== waiter);
        reject(new KmqError(ErrorCode.RequestTimedOut, `Records up to offset ${lastOffset} of ${this.topic}-${this.index} were not replicated to the in-sync replicas within ${timeoutMs} ms`, { topic: this.topic, partition: this.index }));
      }, timeoutMs);
      const waiter: CommitWaiter = { lastOffset, resolve, reject, timer };
      this.commitWaiters.push(waiter);
      this.settleCommitWaiters();
    });
  }

  private advanceHighWatermark(): void {
    const r = this.currentRole;
    if (r.kind !== 'leader') return;
    const hw = r.state.highWatermark(this.log.logEndOffset);
    if (hw === undefined || hw <= this.hw) return;
    this.hw = hw;
    this.settleCommitWaiters();
    this.notify();
  }

  private settleCommitWaiters(): void {
    if (this.commitWaiters.length === 0) return;
    const r = this.currentRole;
    if (r.kind !== 'leader') return;
    const keep: CommitWaiter[] = [];
    for (const w of this.commitWaiters) {
      if (w.lastOffset >= this.hw) {
        keep.push(w);
        continue;
      }
      clearTimeout(w.timer);
      // Replicated, but to fewer copies than asked: the producer retries (its retry is a duplicate, answered once the set recovers).
      if (r.state.isr.size < this.minInSyncReplicas) {
        w.reject(new KmqError(ErrorCode.NotEnoughReplicas, `${this.topic}-${this.index} has ${r.state.isr.size} in-sync replica(s), fewer than min.insync.replicas ${this.minInSyncReplicas}`, { topic: this.topic, partition: this.index }));
      } else {
        w.resolve();
      }
    }
    this.commitWaiters = keep;
  }

  private failCommitWaiters(err: KmqError): void {
    const waiters = this.commitWaiters;
    this.commitWaiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
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
    this.failCommitWaiters(new KmqError(ErrorCode.ShuttingDown, `${this.topic}-${this.index} is closing`, { topic: this.topic, partition: this.index }));
    return this.log.close();
  }
}

/**
 * Resolves on the next append to any of `partitions` (appends and high-watermark
 * moves wake long polls), after `ms`, or when `alsoWake` calls the wake-up it is
 * given (it returns how to cancel that). Every registration is removed on the way out.
 */
export function nextAppend(partitions: Iterable<Partition>, ms: number, alsoWake?: (wake: () => void) => () => void): Promise<void> {
  return new Promise((resolve) => {
    const cancels: Array<() => void> = [];
    const done = (): void => {
      clearTimeout(timer);
      for (const c of cancels) c();
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (alsoWake !== undefined) cancels.push(alsoWake(done));
    for (const p of partitions) cancels.push(p.onNextAppend(done));
  });
}
