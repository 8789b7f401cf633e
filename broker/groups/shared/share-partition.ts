/**
 * The state of one shared group on one topic partition: which records are available,
 * acquired (by whom, until when), acked or archived, and how often each was delivered.
 *
 * Offsets below `startOffset` are done (acked, archived or removed by retention).
 * Records in [startOffset, endOffset) are tracked in a ring of typed arrays indexed by
 * offset % capacity; records in [endOffset, logEndOffset) have not been read into the
 * state yet and count as available with delivery count 0. The window
 * endOffset - startOffset never exceeds maxInFlightRecords.
 *
 * Durability (write-ahead): every change marks its block dirty and touches the
 * ShareStateWriter; `acquire` resolves only after the append that carries the new
 * delivery counts, and `ack`, `release`, `reject`, `purge` only after theirs, so a
 * crash never loses a delivery count nor an answered ack. Lock deadlines and renewals
 * are not journaled: locks die with the broker.
 *
 * Event-loop only. The synchronous part of each method runs to completion, so two
 * members never acquire the same record; the returned promise only waits for the
 * journal.
 */
import { ErrorCode, KmqError } from '../../../lib/errors.js';
import type { CompiledSharedGroupOptions } from './share-options.js';
import { ShareMembers } from './share-members.js';
import type { MemberRecordsHolder, ShareMember } from './share-members.js';
import type { JournalEntry } from './share-state-journal.js';
import {
  BLOCK_SIZE,
  RecordState,
  ShareKeyType,
  encodeBlockKey,
  encodeBlockValue,
  encodeShareKeyPrefix,
  encodeStartValue,
  newBlockState,
} from './share-state-record.js';
import type { BlockState } from './share-state-record.js';
import type { JournalSource, ShareStateWriter } from './share-state-writer.js';

const NONE = RecordState.None;
const AVAILABLE = RecordState.Available;
const ACQUIRED = RecordState.Acquired;
const ACKED = RecordState.Acked;
const ARCHIVED = RecordState.Archived;
const NO_OFFSET = Number.MAX_SAFE_INTEGER;
const INITIAL_CAPACITY = 256;

/** Offsets acquired together: contiguous, with one delivery count. */
export interface AcquiredRange {
  firstOffset: number;
  lastOffset: number;
  /** Deliveries including this one. */
  deliveryCount: number;
}

/** A record the caller must dead-letter (and then forget: it is archived already). */
export interface DeadLetter {
  offset: number;
  deliveryCount: number;
  /** 'max-deliveries', or the reason given to reject. */
  reason: string;
  /** ms since the epoch of the first and last failed delivery (release, lock expiry, member gone, reject). */
  firstFailureAt: number;
  lastFailureAt: number;
}

export interface AcquireResult {
  acquired: AcquiredRange[];
  deadLetters: DeadLetter[];
}

/** Per offset, in the order given: null when applied, else why not (nothing changed for it). */
export type OffsetResults = Array<ErrorCode | null>;

export interface RejectResult {
  results: OffsetResults;
  deadLetters: DeadLetter[];
}

export interface AcquireOptions {
  /** How long the member may hold the records before they are redelivered. */
  lockTimeoutMs: number;
  /** The partition's log end offset: new records are read up to it. */
  logEndOffset: number;
  /**
   * Per-key ordering: the key of the record at an offset (undefined = no key). Then at
   * most one record per key is acquired at a time, in offset order per key. Costs a scan
   * of the whole window per call.
   */
  keyOf?: (offset: number) => string | undefined;
}

export interface ShareDepth {
  /** Deliverable now, including records not yet read into the state. */
  ready: number;
  /** Acquired. */
  inFlight: number;
  /** Released with a delay that has not passed yet. */
  delayed: number;
}

/** Counters since the state was loaded, for metrics. */
export interface SharePartitionStats {
  /** Acquisitions, first deliveries and redeliveries. */
  delivered: number;
  /** Acquisitions of a record delivered before. */
  redelivered: number;
  acked: number;
  released: number;
  lockExpired: number;
  rejected: number;
  /** Archived because of maxDeliveries. */
  deadLettered: number;
}

export interface SharePartitionDeps {
  group: string;
  topic: string;
  partition: number;
  writer: ShareStateWriter;
  options: CompiledSharedGroupOptions;
  /** Shared with the other partitions of the coordinator; default a private registry. */
  members?: ShareMembers;
  /** ms since the epoch, for the methods that take no `now`; default Date.now. */
  clock?: () => number;
  /** Where a new share-partition starts. Default 0. */
  startOffset?: number;
}

export class SharePartition implements JournalSource, MemberRecordsHolder {
  readonly group: string;
  readonly topic: string;
  readonly partition: number;
  /** 0 = unlimited; may be changed at any time. */
  maxDeliveries: number;
  readonly maxInFlightRecords: number;
  readonly stats: SharePartitionStats = { delivered: 0, redelivered: 0, acked: 0, released: 0, lockExpired: 0, rejected: 0, deadLettered: 0 };

  private readonly writer: ShareStateWriter;
  private readonly members: ShareMembers;
  private readonly clock: () => number;

  private start: number;
  private end: number;
  /** The last log end offset seen, for describe without one. */
  lastLogEndOffset = 0;

  private cap = INITIAL_CAPACITY;
  private state = new Uint8Array(INITIAL_CAPACITY);
  private deliveries = new Uint32Array(INITIAL_CAPACITY);
  private owner = new Int32Array(INITIAL_CAPACITY);
  /** Lock expiry when acquired, due time when available (-1 = now). */
  private deadline = new Float64Array(INITIAL_CAPACITY);
  private firstFailure = new Float64Array(INITIAL_CAPACITY);
  private lastFailure = new Float64Array(INITIAL_CAPACITY);

  private nAvailable = 0;
  private nAcquired = 0;
  /** No available record lies below this offset. */
  private availableHint = NO_OFFSET;
  /** No lock expires before this time. */
  private minLockDeadline = Infinity;

  private readonly startKey: Buffer;
  private readonly blockPrefix: Buffer;
  private readonly dirtyBlocks = new Set<number>();
  private lastDirtyBlock = -1;
  private startDirty = false;
  private rewriteAll = false;
  /** Blocks with a live (non-tombstoned) entry in the journal. */
  private readonly journaledBlocks = new Set<number>();
  private tombstonesDue = false;
  private readonly scratch: BlockState = newBlockState();

  constructor(deps: SharePartitionDeps) {
    this.group = deps.group;
    this.topic = deps.topic;
    this.partition = deps.partition;
    this.writer = deps.writer;
    this.members = deps.members ?? new ShareMembers();
    this.clock = deps.clock ?? Date.now;
    this.maxDeliveries = deps.options.maxDeliveries;
    this.maxInFlightRecords = deps.options.maxInFlightRecords;
    this.startKey = encodeShareKeyPrefix(ShareKeyType.Start, this.group, this.topic, this.partition);
    this.blockPrefix = encodeShareKeyPrefix(ShareKeyType.Block, this.group, this.topic, this.partition);
    const start = deps.startOffset ?? 0;
    checkOffset(start, 'startOffset');
    this.start = start;
    this.end = start;
    if (start !== 0) {
      this.startDirty = true;
      this.writer.touch(this);
    }
  }

  /** Every record below is acked, archived or gone. */
  get startOffset(): number {
    return this.start;
  }

  /** Records up to here have been read into the state. */
  get endOffset(): number {
    return this.end;
  }

  /** Records acquired here by `memberId` and not settled yet. */
  heldBy(memberId: string): number {
    const m = this.members.get(memberId);
    if (m === undefined || this.nAcquired === 0) return 0;
    let n = 0;
    for (let o = this.start; o < this.end; o++) {
      const i = o % this.cap;
      if (this.state[i] === ACQUIRED && this.owner[i] === m.index) n++;
    }
    return n;
  }

  /**
   * Acquires up to `maxRecords` for `memberId`: due redeliveries first, then new records
   * up to the log end and the window limit. Resolves once the new delivery counts are
   * durable. Records at maxDeliveries are archived instead and returned as dead letters.
   */
  async acquire(memberId: string, maxRecords: number, now: number, opts: AcquireOptions): Promise<AcquireResult> {
    if (!Number.isSafeInteger(maxRecords) || maxRecords < 0) throw this.invalid(`maxRecords must be a non-negative integer, got ${maxRecords}`);
    if (!Number.isSafeInteger(opts.lockTimeoutMs) || opts.lockTimeoutMs <= 0) throw this.invalid(`lockTimeoutMs must be a positive integer, got ${opts.lockTimeoutMs}`);
    checkOffset(opts.logEndOffset, 'logEndOffset');
    const member = this.members.seen(memberId, now);
    member.partitions.add(this);
    if (opts.logEndOffset > this.lastLogEndOffset) this.lastLogEndOffset = opts.logEndOffset;
    this.expireLocks(now);
    const result: AcquireResult = { acquired: [], deadLetters: [] };
    if (maxRecords === 0) return result;
    const lockUntil = now + opts.lockTimeoutMs;
    const taken =
      opts.keyOf === undefined
        ? this.acquireUnordered(member, maxRecords, now, lockUntil, opts.logEndOffset, result)
        : this.acquireByKey(member, maxRecords, now, lockUntil, opts.logEndOffset, opts.keyOf, result);
    if (result.deadLetters.length > 0) this.advanceStart();
    if (taken === 0 && result.deadLetters.length === 0) return result;
    if (lockUntil < this.minLockDeadline) this.minLockDeadline = lockUntil;
    try {
      await this.writer.durable();
    } catch (err) {
      // Not handed out: make them available again at once (their counts only grew).
      this.unacquire(member, result.acquired);
      throw err;
    }
    return result;
  }

  private acquireUnordered(member: ShareMember, maxRecords: number, now: number, lockUntil: number, logEnd: number, out: AcquireResult): number {
    let remaining = maxRecords;
    if (this.nAvailable > 0) {
      let firstLeft = NO_OFFSET;
      let o = Math.max(this.start, this.availableHint);
      for (; o < this.end && remaining > 0; o++) {
        const i = o % this.cap;
        if (this.state[i] !== AVAILABLE) continue;
        if (this.deadline[i]! > now) {
          if (firstLeft === NO_OFFSET) firstLeft = o;
          continue;
        }
        if (this.maxDeliveries > 0 && this.deliveries[i]! >= this.maxDeliveries) {
          this.nAvailable--;
          this.deadLetter(o, i, now, out.deadLetters);
          continue;
        }
        this.nAvailable--;
        this.take(o, i, member, lockUntil, out.acquired);
        remaining--;
      }
      this.availableHint = Math.min(firstLeft, o < this.end ? o : NO_OFFSET);
    }
    const limit = Math.min(logEnd, this.start + this.maxInFlightRecords);
    while (remaining > 0 && this.end < limit) {
      const o = this.end;
      const i = this.admit(o);
      this.take(o, i, member, lockUntil, out.acquired);
      remaining--;
    }
    return maxRecords - remaining;
  }

  private acquireByKey(
    member: ShareMember,
    maxRecords: number,
    now: number,
    lockUntil: number,
    logEnd: number,
    keyOf: (offset: number) => string | undefined,
    out: AcquireResult,
  ): number {
    let remaining = maxRecords;
    // Keys with an earlier record acquired or waiting: their later records wait too.
    const blocked = new Set<string>();
    let firstLeft = NO_OFFSET;
    for (let o = this.start; o < this.end && remaining > 0; o++) {
      const i = o % this.cap;
      const s = this.state[i];
      if (s === ACQUIRED) {
        const k = keyOf(o);
        if (k !== undefined) blocked.add(k);
        continue;
      }
      if (s !== AVAILABLE) continue;
      const k = keyOf(o);
      if (this.deadline[i]! > now || (k !== undefined && blocked.has(k))) {
        if (firstLeft === NO_OFFSET) firstLeft = o;
        if (k !== undefined) blocked.add(k);
        continue;
      }
      if (this.maxDeliveries > 0 && this.deliveries[i]! >= this.maxDeliveries) {
        this.nAvailable--;
        this.deadLetter(o, i, now, out.deadLetters);
        continue;
      }
      this.nAvailable--;
      this.take(o, i, member, lockUntil, out.acquired);
      remaining--;
      if (k !== undefined) blocked.add(k);
    }
    const limit = Math.min(logEnd, this.start + this.maxInFlightRecords);
    while (remaining > 0 && this.end < limit) {
      const o = this.end;
      const i = this.admit(o);
      const k = keyOf(o);
      if (k !== undefined && blocked.has(k)) {
        this.state[i] = AVAILABLE;
        this.nAvailable++;
        if (firstLeft === NO_OFFSET) firstLeft = o;
        continue;
      }
      this.take(o, i, member, lockUntil, out.acquired);
      remaining--;
      if (k !== undefined) blocked.add(k);
    }
    this.availableHint = Math.min(this.availableHint, firstLeft);
    return maxRecords - remaining;
  }

  /** Reads offset `end` into the state (fresh, not yet delivered) and returns its slot. */
  private admit(o: number): number {
    if (o - this.start >= this.cap) this.grow(o - this.start + 1);
    const i = o % this.cap;
    this.state[i] = NONE;
    this.deliveries[i] = 0;
    this.owner[i] = -1;
    this.deadline[i] = -1;
    this.firstFailure[i] = -1;
    this.lastFailure[i] = -1;
    this.end = o + 1;
    return i;
  }

  private take(o: number, i: number, member: ShareMember, lockUntil: number, out: AcquiredRange[]): void {
    const dc = this.deliveries[i]! + 1;
    this.state[i] = ACQUIRED;
    this.deliveries[i] = dc;
    this.owner[i] = member.index;
    this.deadline[i] = lockUntil;
    this.nAcquired++;
    member.held++;
    this.stats.delivered++;
    if (dc > 1) this.stats.redelivered++;
    this.markDirty(o);
    const last = out.length === 0 ? undefined : out[out.length - 1];
    if (last !== undefined && last.lastOffset === o - 1 && last.deliveryCount === dc) last.lastOffset = o;
    else out.push({ firstOffset: o, lastOffset: o, deliveryCount: dc });
  }

  private deadLetter(o: number, i: number, _now: number, out: DeadLetter[]): void {
    this.state[i] = ARCHIVED;
    this.deadline[i] = -1;
    this.stats.deadLettered++;
    this.markDirty(o);
    out.push({ offset: o, deliveryCount: this.deliveries[i]!, reason: 'max-deliveries', firstFailureAt: this.firstFailure[i]!, lastFailureAt: this.lastFailure[i]! });
  }

  private unacquire(member: ShareMember, ranges: AcquiredRange[]): void {
    for (const r of ranges) {
      for (let o = r.firstOffset; o <= r.lastOffset; o++) {
        if (!this.heldHere(o, member)) continue;
        const i = o % this.cap;
        this.makeAvailable(o, i, member, -1);
      }
    }
  }

  /** Marks the records done. Resolves once durable. */
  async ack(memberId: string, offsets: readonly number[], now: number = this.clock()): Promise<OffsetResults> {
    const member = this.touchMember(memberId, now);
    const results: OffsetResults = new Array<ErrorCode | null>(offsets.length);
    let applied = 0;
    for (let k = 0; k < offsets.length; k++) {
      const o = offsets[k]!;
      if (member === undefined || !this.heldLive(o, member, now)) {
        results[k] = ErrorCode.InvalidDelivery;
        continue;
      }
      const i = o % this.cap;
      this.state[i] = ACKED;
      this.deadline[i] = -1;
      this.nAcquired--;
      member.held--;
      this.markDirty(o);
      results[k] = null;
      applied++;
    }
    this.stats.acked += applied;
    if (applied === 0) return results;
    this.advanceStart();
    await this.writer.durable();
    return results;
  }

  /** Makes the records available again, at once or after `delayMs`. A release is a failed delivery. Resolves once durable. */
  async release(memberId: string, offsets: readonly number[], delayMs = 0, now: number = this.clock()): Promise<OffsetResults> {
    if (!Number.isSafeInteger(delayMs) || delayMs < 0) throw this.invalid(`delayMs must be a non-negative integer, got ${delayMs}`);
    const member = this.touchMember(memberId, now);
    const results: OffsetResults = new Array<ErrorCode | null>(offsets.length);
    let applied = 0;
    const availableAt = delayMs > 0 ? now + delayMs : -1;
    for (let k = 0; k < offsets.length; k++) {
      const o = offsets[k]!;
      if (member === undefined || !this.heldLive(o, member, now)) {
        results[k] = ErrorCode.InvalidDelivery;
        continue;
      }
      const i = o % this.cap;
      this.failed(i, now);
      this.makeAvailable(o, i, member, availableAt);
      results[k] = null;
      applied++;
    }
    this.stats.released += applied;
    if (applied === 0) return results;
    await this.writer.durable();
    return results;
  }

  /** Archives the records (the caller dead-letters them with the returned history). Resolves once durable. */
  async reject(memberId: string, offsets: readonly number[], reason: string, now: number = this.clock()): Promise<RejectResult> {
    const member = this.touchMember(memberId, now);
    const out: RejectResult = { results: new Array<ErrorCode | null>(offsets.length), deadLetters: [] };
    for (let k = 0; k < offsets.length; k++) {
      const o = offsets[k]!;
      if (member === undefined || !this.heldLive(o, member, now)) {
        out.results[k] = ErrorCode.InvalidDelivery;
        continue;
      }
      const i = o % this.cap;
      this.failed(i, now);
      this.state[i] = ARCHIVED;
      this.deadline[i] = -1;
      this.nAcquired--;
      member.held--;
      this.markDirty(o);
      out.results[k] = null;
      out.deadLetters.push({ offset: o, deliveryCount: this.deliveries[i]!, reason, firstFailureAt: this.firstFailure[i]!, lastFailureAt: this.lastFailure[i]! });
    }
    this.stats.rejected += out.deadLetters.length;
    if (out.deadLetters.length === 0) return out;
    this.advanceStart();
    await this.writer.durable();
    return out;
  }

  /** Extends the locks to now + lockTimeoutMs. Locks are not journaled, so this is immediate. */
  renew(memberId: string, offsets: readonly number[], now: number, lockTimeoutMs: number): OffsetResults {
    if (!Number.isSafeInteger(lockTimeoutMs) || lockTimeoutMs <= 0) throw this.invalid(`lockTimeoutMs must be a positive integer, got ${lockTimeoutMs}`);
    const member = this.touchMember(memberId, now);
    const results: OffsetResults = new Array<ErrorCode | null>(offsets.length);
    for (let k = 0; k < offsets.length; k++) {
      const o = offsets[k]!;
      if (member === undefined || !this.heldLive(o, member, now)) {
        results[k] = ErrorCode.InvalidDelivery;
        continue;
      }
      this.deadline[o % this.cap] = now + lockTimeoutMs;
      results[k] = null;
    }
    return results;
  }

  /** Acquired records whose lock expired by `now` become available (a failed delivery). Returns how many. */
  expireLocks(now: number): number {
    if (this.nAcquired === 0 || now < this.minLockDeadline) return 0;
    let n = 0;
    let nextMin = Infinity;
    for (let o = this.start; o < this.end; o++) {
      const i = o % this.cap;
      if (this.state[i] !== ACQUIRED) continue;
      const d = this.deadline[i]!;
      if (d > now) {
        if (d < nextMin) nextMin = d;
        continue;
      }
      const m = this.members.at(this.owner[i]!);
      this.failed(i, now);
      this.makeAvailable(o, i, m, -1);
      n++;
    }
    this.minLockDeadline = nextMin;
    this.stats.lockExpired += n;
    return n;
  }

  /** Makes every record `memberIndex` holds here available (a failed delivery). */
  releaseMember(memberIndex: number, now: number): number {
    if (this.nAcquired === 0) return 0;
    const m = this.members.at(memberIndex);
    let n = 0;
    for (let o = this.start; o < this.end; o++) {
      const i = o % this.cap;
      if (this.state[i] !== ACQUIRED || this.owner[i] !== memberIndex) continue;
      this.failed(i, now);
      this.makeAvailable(o, i, m, -1);
      n++;
    }
    this.stats.released += n;
    return n;
  }

  /** Retention removed the records below `logStartOffset`: they are dropped from the state. */
  onLogStart(logStartOffset: number): void {
    checkOffset(logStartOffset, 'logStartOffset');
    if (logStartOffset <= this.start) return;
    this.dropBelow(logStartOffset);
  }

  /** Marks everything below `logEndOffset` done (queue purge). Resolves once durable. */
  async purge(logEndOffset: number): Promise<void> {
    checkOffset(logEndOffset, 'logEndOffset');
    if (logEndOffset <= this.start) return;
    this.dropBelow(logEndOffset);
    await this.writer.durable();
  }

  /** Depth for metrics and describe; `logEndOffset` counts records not read yet. */
  depth(logEndOffset: number, now: number): ShareDepth {
    let ready = Math.max(0, logEndOffset - this.end);
    let delayed = 0;
    if (this.nAvailable > 0) {
      for (let o = this.start; o < this.end; o++) {
        const i = o % this.cap;
        if (this.state[i] !== AVAILABLE) continue;
        if (this.deadline[i]! > now) delayed++;
        else ready++;
      }
    }
    return { ready, inFlight: this.nAcquired, delayed };
  }

  /** The state of one offset, for inspection and tests. */
  recordAt(offset: number): { state: RecordState; deliveryCount: number; memberId?: string; firstFailureAt: number; lastFailureAt: number; deadline: number } {
    if (offset < this.start) return { state: ACKED, deliveryCount: 0, firstFailureAt: -1, lastFailureAt: -1, deadline: -1 };
    if (offset >= this.end) return { state: NONE, deliveryCount: 0, firstFailureAt: -1, lastFailureAt: -1, deadline: -1 };
    const i = offset % this.cap;
    const s = this.state[i]! as RecordState;
    const memberId = s === ACQUIRED ? this.members.at(this.owner[i]!)?.id : undefined;
    return {
      state: s === NONE ? AVAILABLE : s,
      deliveryCount: this.deliveries[i]!,
      ...(memberId === undefined ? {} : { memberId }),
      firstFailureAt: this.firstFailure[i]!,
      lastFailureAt: this.lastFailure[i]!,
      deadline: this.deadline[i]!,
    };
  }

  // --- journal -------------------------------------------------------------------

  collectJournalEntries(out: JournalEntry[]): void {
    if (this.rewriteAll) {
      this.rewriteAll = false;
      this.startDirty = true;
      this.tombstonesDue = true;
      for (let b = this.start - (this.start % BLOCK_SIZE); b < this.end; b += BLOCK_SIZE) this.dirtyBlocks.add(b);
    }
    if (this.startDirty) {
      this.startDirty = false;
      out.push({ key: this.startKey, value: encodeStartValue(this.start) });
    }
    for (const base of this.dirtyBlocks) {
      if (base + BLOCK_SIZE <= this.start) continue;
      this.fillScratch(base);
      out.push({ key: encodeBlockKey(this.blockPrefix, base), value: encodeBlockValue(this.scratch) });
      this.journaledBlocks.add(base);
    }
    this.dirtyBlocks.clear();
    this.lastDirtyBlock = -1;
    if (this.tombstonesDue) {
      this.tombstonesDue = false;
      for (const base of this.journaledBlocks) {
        if (base + BLOCK_SIZE > this.start) continue;
        out.push({ key: encodeBlockKey(this.blockPrefix, base), value: null });
        this.journaledBlocks.delete(base);
      }
    }
  }

  journalFailed(): void {
    this.rewriteAll = true;
  }

  /**
   * Loads the journaled state: the start offset and the blocks at or above it. Acquired
   * records become available (their locks died); delivery counts and failure times stay.
   * Called once, on a fresh share-partition, before any other method.
   */
  restore(startOffset: number, blocks: ReadonlyArray<{ baseOffset: number; block: BlockState }>): void {
    this.start = startOffset;
    let end = startOffset;
    for (const { baseOffset, block } of blocks) {
      this.journaledBlocks.add(baseOffset);
      if (baseOffset + BLOCK_SIZE <= startOffset) this.tombstonesDue = true;
      for (let j = BLOCK_SIZE - 1; j >= 0; j--) {
        if (block.state[j] !== NONE) {
          end = Math.max(end, baseOffset + j + 1);
          break;
        }
      }
    }
    if (end - startOffset > this.cap) this.grow(end - startOffset);
    for (let o = startOffset; o < end; o++) {
      const i = o % this.cap;
      this.state[i] = AVAILABLE;
      this.deliveries[i] = 0;
      this.owner[i] = -1;
      this.deadline[i] = -1;
      this.firstFailure[i] = -1;
      this.lastFailure[i] = -1;
    }
    for (const { baseOffset, block } of blocks) {
      for (let j = 0; j < BLOCK_SIZE; j++) {
        const o = baseOffset + j;
        if (o < startOffset || o >= end || block.state[j] === NONE) continue;
        const i = o % this.cap;
        const s = block.state[j]!;
        this.state[i] = s === ACQUIRED ? AVAILABLE : s;
        this.deliveries[i] = block.deliveryCount[j]!;
        this.firstFailure[i] = block.firstFailureAt[j]!;
        this.lastFailure[i] = block.lastFailureAt[j]!;
        this.deadline[i] = s === AVAILABLE ? block.availableAt[j]! : -1;
      }
    }
    this.end = end;
    this.nAvailable = 0;
    for (let o = startOffset; o < end; o++) if (this.state[o % this.cap] === AVAILABLE) this.nAvailable++;
    this.availableHint = this.nAvailable > 0 ? startOffset : NO_OFFSET;
    this.advanceStart();
    if (this.tombstonesDue) this.writer.touch(this);
  }

  // --- internals -----------------------------------------------------------------

  private touchMember(memberId: string, now: number): ShareMember | undefined {
    const m = this.members.get(memberId);
    if (m !== undefined && now > m.lastSeenAt) m.lastSeenAt = now;
    return m;
  }

  private heldHere(o: number, m: ShareMember): boolean {
    if (!Number.isSafeInteger(o) || o < this.start || o >= this.end) return false;
    const i = o % this.cap;
    return this.state[i] === ACQUIRED && this.owner[i] === m.index;
  }

  /** Held by `m` with a lock that has not expired at `now`. */
  private heldLive(o: number, m: ShareMember, now: number): boolean {
    return this.heldHere(o, m) && this.deadline[o % this.cap]! > now;
  }

  private failed(i: number, now: number): void {
    if (this.firstFailure[i]! < 0) this.firstFailure[i] = now;
    this.lastFailure[i] = now;
  }

  private makeAvailable(o: number, i: number, m: ShareMember | undefined, availableAt: number): void {
    this.state[i] = AVAILABLE;
    this.deadline[i] = availableAt;
    this.owner[i] = -1;
    this.nAcquired--;
    this.nAvailable++;
    if (m !== undefined) m.held--;
    if (o < this.availableHint) this.availableHint = o;
    this.markDirty(o);
  }

  private advanceStart(): void {
    const before = this.start;
    let o = before;
    while (o < this.end) {
      const s = this.state[o % this.cap];
      if (s !== ACKED && s !== ARCHIVED) break;
      o++;
    }
    if (o === before) return;
    this.setStart(o);
  }

  /** Drops every record below `offset` (acked by purge, or removed by retention). */
  private dropBelow(offset: number): void {
    const top = Math.min(offset, this.end);
    for (let o = this.start; o < top; o++) {
      const i = o % this.cap;
      const s = this.state[i];
      if (s === ACQUIRED) {
        this.nAcquired--;
        const m = this.members.at(this.owner[i]!);
        if (m !== undefined) m.held--;
      } else if (s === AVAILABLE) {
        this.nAvailable--;
      }
    }
    if (this.end < offset) this.end = offset;
    this.setStart(offset);
    this.advanceStart();
  }

  private setStart(o: number): void {
    if (Math.floor(o / BLOCK_SIZE) !== Math.floor(this.start / BLOCK_SIZE)) this.tombstonesDue = true;
    this.start = o;
    if (this.availableHint < o) this.availableHint = o;
    if (this.nAvailable === 0) this.availableHint = NO_OFFSET;
    this.startDirty = true;
    this.writer.touch(this);
  }

  private markDirty(o: number): void {
    const base = o - (o % BLOCK_SIZE);
    if (base === this.lastDirtyBlock) return;
    this.lastDirtyBlock = base;
    this.dirtyBlocks.add(base);
    this.writer.touch(this);
  }

  private fillScratch(base: number): void {
    const b = this.scratch;
    for (let j = 0; j < BLOCK_SIZE; j++) {
      const o = base + j;
      if (o < this.start || o >= this.end) {
        b.state[j] = NONE;
        b.deliveryCount[j] = 0;
        b.firstFailureAt[j] = -1;
        b.lastFailureAt[j] = -1;
        b.availableAt[j] = -1;
        continue;
      }
      const i = o % this.cap;
      const s = this.state[i]!;
      b.state[j] = s;
      b.deliveryCount[j] = this.deliveries[i]!;
      b.firstFailureAt[j] = this.firstFailure[i]!;
      b.lastFailureAt[j] = this.lastFailure[i]!;
      b.availableAt[j] = s === AVAILABLE ? this.deadline[i]! : -1;
    }
  }

  /** Grows the ring to hold at least `needed` records, keeping every tracked one. */
  private grow(needed: number): void {
    let cap = this.cap;
    while (cap < needed) cap *= 2;
    const state = new Uint8Array(cap);
    const deliveries = new Uint32Array(cap);
    const owner = new Int32Array(cap);
    const deadline = new Float64Array(cap);
    const firstFailure = new Float64Array(cap);
    const lastFailure = new Float64Array(cap);
    for (let o = this.start; o < this.end; o++) {
      const i = o % this.cap;
      const j = o % cap;
      state[j] = this.state[i]!;
      deliveries[j] = this.deliveries[i]!;
      owner[j] = this.owner[i]!;
      deadline[j] = this.deadline[i]!;
      firstFailure[j] = this.firstFailure[i]!;
      lastFailure[j] = this.lastFailure[i]!;
    }
    this.cap = cap;
    this.state = state;
    this.deliveries = deliveries;
    this.owner = owner;
    this.deadline = deadline;
    this.firstFailure = firstFailure;
    this.lastFailure = lastFailure;
  }

  private invalid(message: string): KmqError {
    return new KmqError(ErrorCode.InvalidRequest, message, { group: this.group, topic: this.topic, partition: this.partition });
  }
}

function checkOffset(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new KmqError(ErrorCode.InvalidRequest, `${what} must be a non-negative safe integer, got ${n}`);
}
