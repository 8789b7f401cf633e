/**
 * Which offset an ordered subscription may commit for one partition.
 *
 * Records are delivered in offset order and acknowledged in any order. The
 * committable offset (the next offset to consume, as commits store it) is the first
 * delivered record not yet acknowledged, or one past the last delivered record when
 * every one is acknowledged. Offsets absent from the delivered sequence — removed by
 * compaction, or never delivered because the subscription filtered them out
 * (`skipped`) — count as acknowledged.
 *
 * Invariants: committable() never passes an unacknowledged delivered record; it never
 * goes backwards; committed <= committable().
 *
 * State: a ring buffer of the delivered offsets from the first unacknowledged one
 * on, with one acknowledged flag each; acknowledged records at its head are dropped
 * as they become contiguous. A delivery costs no allocation unless the buffer grows;
 * an ack finds its record directly when offsets are contiguous, by binary search
 * otherwise.
 *
 * Not safe for concurrent use from several threads; calls from one event loop in any
 * order are fine.
 */
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { intSetting } from '../../client/settings.js';

export interface OffsetCommitTrackerOptions {
  topic: string;
  partition: number;
  /** The position consumption starts from: the committed offset, or the reset position. */
  position: number;
  /** Commit once this many records were acknowledged since the last commit. Default 1000. */
  maxCount?: number;
  /** Commit once this long passed since the last commit (or since creation). Default 1000 ms. */
  intervalMs?: number;
  /** Time source, ms; injectable for tests. Default Date.now. */
  clock?: () => number;
}

const INITIAL_CAPACITY = 256;

/** The commit position of one partition of an ordered subscription. */
export class OffsetCommitTracker {
  readonly topic: string;
  readonly partition: number;
  readonly maxCount: number;
  readonly intervalMs: number;
  private readonly clock: () => number;

  private offsets = new Float64Array(INITIAL_CAPACITY);
  private acks = new Uint8Array(INITIAL_CAPACITY);
  private mask = INITIAL_CAPACITY - 1;
  private head = 0;
  private size = 0;
  private last: number;
  private unacked = 0;
  private committedOffset: number;
  private acksSinceCommit = 0;
  private lastCommitAt: number;

  constructor(o: OffsetCommitTrackerOptions) {
    this.topic = o.topic;
    this.partition = o.partition;
    const position = intSetting('offsetCommit.position', o.position, 0, 0);
    this.maxCount = intSetting('offsetCommit.maxCount', o.maxCount, 1_000, 1);
    this.intervalMs = intSetting('offsetCommit.intervalMs', o.intervalMs, 1_000, 0);
    this.clock = o.clock ?? Date.now;
    this.last = position - 1;
    this.committedOffset = position;
    this.lastCommitAt = this.clock();
  }

  /** The last offset committed (or the start position). */
  get committed(): number {
    return this.committedOffset;
  }

  /** Records delivered and not yet acknowledged. */
  get inFlight(): number {
    return this.unacked;
  }

  /** The last offset delivered or skipped, or position - 1 before any. */
  get lastDelivered(): number {
    return this.last;
  }

  /** Records `offset`, handed to the application. Offsets must increase. */
  delivered(offset: number): void {
    this.push(offset, 0);
    this.unacked++;
  }

  /** Records `offset` as passed over without delivery (filtered out): it counts as acknowledged. */
  skipped(offset: number): void {
    this.push(offset, 1);
    this.acksSinceCommit++;
    this.dropAckedHead();
  }

  /**
   * Records the acknowledgement of delivered `offset`, in any order. Returns false for
   * a repeated acknowledgement (or one below the tracked range, e.g. from before a
   * reassignment); throws InvalidDelivery for an offset that was never delivered.
   */
  acked(offset: number): boolean {
    if (offset > this.last || !Number.isSafeInteger(offset)) throw this.notDelivered(offset);
    if (this.size === 0) return false;
    const first = this.offsets[this.head]!;
    if (offset < first) return false;
    const i = this.indexOf(offset, first);
    if (i < 0) throw this.notDelivered(offset);
    const slot = (this.head + i) & this.mask;
    if (this.acks[slot] === 1) return false;
    this.acks[slot] = 1;
    this.unacked--;
    this.acksSinceCommit++;
    if (i === 0) this.dropAckedHead();
    return true;
  }

  /** The next offset to commit: the first unacknowledged delivered offset, or one past the last delivered. */
  committable(): number {
    return this.size > 0 ? this.offsets[this.head]! : this.last + 1;
  }

  /** True when committable() is ahead of the last commit. */
  get hasUncommitted(): boolean {
    return this.committable() > this.committedOffset;
  }

  /** True when there is something new to commit and maxCount acks or intervalMs have passed since the last commit. */
  shouldCommit(now: number = this.clock()): boolean {
    if (!this.hasUncommitted) return false;
    return this.acksSinceCommit >= this.maxCount || now - this.lastCommitAt >= this.intervalMs;
  }

  /** Records a successful commit of `offset` (a value committable() returned); starts the next batch. */
  markCommitted(offset: number, now: number = this.clock()): void {
    if (offset > this.committable()) {
      throw new KmqError(ErrorCode.InvalidRequest, `Commit of offset ${offset} would pass unacknowledged offset ${this.committable()}`, {
        topic: this.topic,
        partition: this.partition,
        offset,
      });
    }
    if (offset > this.committedOffset) this.committedOffset = offset;
    this.acksSinceCommit = 0;
    this.lastCommitAt = now;
  }

  private push(offset: number, acked: 0 | 1): void {
    if (!Number.isSafeInteger(offset) || offset <= this.last) {
      throw new KmqError(ErrorCode.InvalidDelivery, `Offset ${offset} delivered out of order (last delivered ${this.last})`, {
        topic: this.topic,
        partition: this.partition,
        offset,
      });
    }
    if (this.size === this.offsets.length) this.grow();
    const slot = (this.head + this.size) & this.mask;
    this.offsets[slot] = offset;
    this.acks[slot] = acked;
    this.size++;
    this.last = offset;
  }

  private dropAckedHead(): void {
    while (this.size > 0 && this.acks[this.head] === 1) {
      this.head = (this.head + 1) & this.mask;
      this.size--;
    }
  }

  /** Position of `offset` from the head, or -1. Offsets increase along the buffer. */
  private indexOf(offset: number, first: number): number {
    const direct = offset - first;
    if (direct < this.size && this.offsets[(this.head + direct) & this.mask] === offset) return direct;
    let lo = 0;
    let hi = Math.min(this.size, direct) - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.offsets[(this.head + mid) & this.mask]!;
      if (v === offset) return mid;
      if (v < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  private grow(): void {
    const capacity = this.offsets.length * 2;
    const offsets = new Float64Array(capacity);
    const acks = new Uint8Array(capacity);
    for (let i = 0; i < this.size; i++) {
      const slot = (this.head + i) & this.mask;
      offsets[i] = this.offsets[slot]!;
      acks[i] = this.acks[slot]!;
    }
    this.offsets = offsets;
    this.acks = acks;
    this.mask = capacity - 1;
    this.head = 0;
  }

  private notDelivered(offset: number): KmqError {
    return new KmqError(ErrorCode.InvalidDelivery, `Offset ${offset} was not delivered`, { topic: this.topic, partition: this.partition, offset });
  }
}
