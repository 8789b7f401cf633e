/**
 * One segment of a partition log: `<baseOffset>.log` plus its two indexes, the base
 * offset written as 20 zero-padded digits (00000000000000000000.log).
 *
 * .log format: RecordBatches (protocol/batch-header.ts) back to back, exactly as
 * produced, with baseOffset and partitionLeaderEpoch stamped by the broker. No
 * segment header, no padding.
 *
 * Invariants:
 * - every batch's base offset >= the segment's base offset, and batches are in
 *   strictly increasing offset order (compaction may leave gaps between them);
 * - lastOffset - baseOffset of the segment <= MAX_RELATIVE_OFFSET, so relative
 *   offsets fit the indexes' u32;
 * - `size` counts whole batches only; bytes past it (a torn write) are truncated on
 *   recovery before anything else is appended;
 * - only the active (last) segment of a log is appended to.
 *
 * Concurrency: one owner (its PartitionLog) on the event loop. The only asynchronous
 * operation is sync(); close() waits for in-flight syncs before closing the fd.
 */
import path from 'node:path';
import { BATCH_HEADER_BYTES, BATCH_LOG_OVERHEAD, BATCH_MAGIC, Off, batchCrcValid, readInt64 } from '../../protocol/batch-header.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { FileIo } from './file-io.js';
import { OffsetIndex } from './offset-index.js';
import { TimeIndex } from './time-index.js';

export const LOG_SUFFIX = '.log';
export const INDEX_SUFFIX = '.index';
export const TIME_INDEX_SUFFIX = '.timeindex';
/** Relative offsets are kept within int32 so every reader of the u32 agrees. */
export const MAX_RELATIVE_OFFSET = 0x7fffffff;

const SEGMENT_NAME = /^(\d{20})\.(log|index|timeindex)$/;

export function segmentFileName(baseOffset: number, suffix: string): string {
  return String(baseOffset).padStart(20, '0') + suffix;
}

/** Parses `<20 digits>.log|.index|.timeindex`; undefined for anything else. */
export function parseSegmentFileName(name: string): { baseOffset: number; suffix: string } | undefined {
  const m = SEGMENT_NAME.exec(name);
  if (m === null) return undefined;
  const baseOffset = Number(m[1]);
  if (!Number.isSafeInteger(baseOffset)) return undefined;
  return { baseOffset, suffix: '.' + m[2]! };
}

/**
 * A reusable read window over batch headers, so walking many small batches costs one
 * pread per window rather than one per header. Valid within one synchronous call:
 * callers reset() it before use.
 */
export class HeaderWindow {
  readonly buf: Buffer;
  private seg: LogSegment | undefined;
  private start = 0;
  private end = 0;

  constructor(bytes = 16 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(bytes, BATCH_HEADER_BYTES));
  }

  reset(): void {
    this.seg = undefined;
  }

  /** Offset within `buf` of the header at `position`, or -1 if no whole header lies below seg.size. */
  at(seg: LogSegment, position: number): number {
    if (position + BATCH_HEADER_BYTES > seg.size) return -1;
    if (seg !== this.seg || position < this.start || position + BATCH_HEADER_BYTES > this.end) {
      this.seg = undefined;
      const got = seg.readAt(this.buf, 0, Math.min(this.buf.length, seg.size - position), position);
      if (got < BATCH_HEADER_BYTES) return -1;
      this.seg = seg;
      this.start = position;
      this.end = position + got;
    }
    return position - this.start;
  }
}

/** Outcome of a validating scan: where the valid batches end, and why it stopped early. */
export interface ScanResult {
  end: number;
  nextOffset: number;
  problem?: string;
}

type BatchVisitor = (baseOffset: number, lastOffset: number, position: number, bytes: number, maxTimestamp: number) => void;

export class LogSegment {
  readonly logPath: string;
  readonly indexPath: string;
  readonly timeIndexPath: string;
  readonly offsetIndex: OffsetIndex;
  readonly timeIndex: TimeIndex;
  /** Bytes of whole batches. */
  size: number;
  /** Offset after the last batch (the base offset when empty). */
  nextOffset: number;
  /** Largest batch maxTimestamp, -Infinity when empty. */
  maxTimestamp = -Infinity;
  /** Broker time of the first append (or recovered estimate), -1 when empty: drives roll by age. */
  firstAppendMs = -1;

  private relOffsetOfMax = 0;
  private bytesSinceIndexEntry = 0;
  private timeIndexedMax = -Infinity;
  private syncsInFlight = 0;
  private closing = false;
  private fdOpen = true;

  private constructor(
    readonly baseOffset: number,
    dir: string,
    private readonly io: FileIo,
    private readonly fd: number,
    size: number,
    logPath?: string,
  ) {
    this.logPath = logPath ?? path.join(dir, segmentFileName(baseOffset, LOG_SUFFIX));
    this.indexPath = path.join(dir, segmentFileName(baseOffset, INDEX_SUFFIX));
    this.timeIndexPath = path.join(dir, segmentFileName(baseOffset, TIME_INDEX_SUFFIX));
    this.offsetIndex = new OffsetIndex(this.indexPath);
    this.timeIndex = new TimeIndex(this.timeIndexPath);
    this.size = size;
    this.nextOffset = baseOffset;
  }

  /** Creates a new, empty segment (any stale index files of that name are removed). */
  static create(dir: string, baseOffset: number, io: FileIo): LogSegment {
    const logPath = path.join(dir, segmentFileName(baseOffset, LOG_SUFFIX));
    const fd = io.open(logPath);
    const seg = new LogSegment(baseOffset, dir, io, fd, 0);
    try {
      const existing = io.size(fd, logPath);
      if (existing !== 0) {
        throw new KmqError(ErrorCode.StorageError, `Cannot create segment ${logPath}: a file of ${existing} bytes is already there`, {
          path: logPath,
        });
      }
      io.unlink(seg.indexPath);
      io.unlink(seg.timeIndexPath);
    } catch (err) {
      seg.close();
      throw err;
    }
    return seg;
  }

  /**
   * Opens an existing .log (at `logPath`, default its canonical name) with empty
   * indexes; the caller then runs recover() or loadClosed().
   */
  static openExisting(dir: string, baseOffset: number, io: FileIo, logPath?: string): LogSegment {
    const p = logPath ?? path.join(dir, segmentFileName(baseOffset, LOG_SUFFIX));
    const fd = io.open(p);
    try {
      return new LogSegment(baseOffset, dir, io, fd, io.size(fd, p), p);
    } catch (err) {
      io.close(fd, p);
      throw err;
    }
  }

  /** Last offset stored, or baseOffset - 1 when empty. */
  get lastOffset(): number {
    return this.nextOffset - 1;
  }

  /**
   * Writes stamped batches at the end of the log and indexes them. `nextOffset` is the
   * offset after the last of them. On a failed write the segment is unchanged (the
   * caller truncates back to `size`).
   */
  appendBatches(batches: Buffer, nextOffset: number, now: number, indexIntervalBytes: number): number {
    const position = this.size;
    this.io.write(this.fd, this.logPath, batches, position);
    let at = 0;
    while (at < batches.length) {
      const bytes = batches.readInt32BE(at + Off.batchLength) + BATCH_LOG_OVERHEAD;
      this.indexBatch(readInt64(batches, at + Off.baseOffset), position + at, bytes, readInt64(batches, at + Off.maxTimestamp), indexIntervalBytes);
      at += bytes;
    }
    this.size += batches.length;
    this.nextOffset = nextOffset;
    if (this.firstAppendMs < 0) this.firstAppendMs = now;
    return position;
  }

  /** Cuts the file at `position` (a batch boundary) and rebuilds the in-memory indexes. */
  truncateAt(position: number, indexIntervalBytes: number, now: number): void {
    this.io.truncate(this.fd, this.logPath, position);
    this.recover(indexIntervalBytes, now);
  }

  /** Cuts the file back to `size` after a failed write. */
  truncateToSize(): void {
    this.io.truncate(this.fd, this.logPath, this.size);
  }

  /** Reads raw bytes; returns the count read. */
  readAt(into: Buffer, offset: number, length: number, position: number): number {
    return this.io.read(this.fd, this.logPath, into, offset, length, position);
  }

  /**
   * Position of the first batch whose last offset is >= `offset` (the batch containing
   * it, or the next one across a compaction gap), or -1 when there is none here.
   */
  locate(offset: number, window: HeaderWindow): number {
    if (offset >= this.nextOffset) return -1;
    let position = offset <= this.baseOffset ? 0 : this.offsetIndex.lookup(offset - this.baseOffset);
    for (;;) {
      const h = window.at(this, position);
      if (h < 0) return -1;
      const buf = window.buf;
      const last = readInt64(buf, h + Off.baseOffset) + buf.readInt32BE(h + Off.lastOffsetDelta);
      if (last >= offset) return position;
      position += this.batchBytesAt(buf, h, position);
    }
  }

  /** Position of the first batch whose maxTimestamp >= ts, or -1 when there is none here. */
  locateTimestamp(ts: number, window: HeaderWindow): number {
    if (!(this.maxTimestamp >= ts)) return -1;
    const rel = this.timeIndex.lookupBefore(ts);
    let position = rel < 0 ? 0 : this.offsetIndex.lookup(rel);
    for (;;) {
      const h = window.at(this, position);
      if (h < 0) return -1;
      if (readInt64(window.buf, h + Off.maxTimestamp) >= ts) return position;
      position += this.batchBytesAt(window.buf, h, position);
    }
  }

  /** Calls fn with each header (in window.buf at `at`) from `position` to the end; stops when fn returns false. */
  forEachHeader(position: number, window: HeaderWindow, fn: (buf: Buffer, at: number, position: number) => boolean | void): boolean {
    for (;;) {
      const h = window.at(this, position);
      if (h < 0) return true;
      if (fn(window.buf, h, position) === false) return false;
      position += this.batchBytesAt(window.buf, h, position);
    }
  }

  private batchBytesAt(buf: Buffer, h: number, position: number): number {
    const bytes = buf.readInt32BE(h + Off.batchLength) + BATCH_LOG_OVERHEAD;
    if (bytes < BATCH_HEADER_BYTES || position + bytes > this.size) {
      throw new KmqError(ErrorCode.StorageError, `Corrupt batch of ${bytes} bytes at position ${position} of ${this.logPath}`, {
        path: this.logPath,
        position,
      });
    }
    return bytes;
  }

  private indexBatch(baseOffset: number, position: number, bytes: number, maxTimestamp: number, indexIntervalBytes: number): void {
    if (this.bytesSinceIndexEntry > indexIntervalBytes) {
      this.offsetIndex.append(baseOffset - this.baseOffset, position);
      this.bytesSinceIndexEntry = 0;
      this.addTimeEntryIfGrown();
    }
    if (maxTimestamp > this.maxTimestamp) {
      this.maxTimestamp = maxTimestamp;
      this.relOffsetOfMax = baseOffset - this.baseOffset;
    }
    this.bytesSinceIndexEntry += bytes;
  }

  private addTimeEntryIfGrown(): void {
    if (this.maxTimestamp > this.timeIndexedMax) {
      this.timeIndex.append(this.maxTimestamp, this.relOffsetOfMax);
      this.timeIndexedMax = this.maxTimestamp;
    }
  }

  private resetIndexes(): void {
    this.offsetIndex.clear();
    this.timeIndex.clear();
    this.bytesSinceIndexEntry = 0;
    this.timeIndexedMax = -Infinity;
    this.maxTimestamp = -Infinity;
    this.relOffsetOfMax = 0;
  }

  /**
   * Walks batches from `position`, checking framing, offset order and (if verifyCrc)
   * the CRC of each, until the end of the file or the first bad batch.
   */
  scanValid(position: number, expectedOffset: number, verifyCrc: boolean, visit?: BatchVisitor): ScanResult {
    const fileBytes = this.io.size(this.fd, this.logPath);
    let chunk = Buffer.allocUnsafe(verifyCrc ? 1 << 20 : 16 * 1024);
    let cStart = 0;
    let cEnd = 0;
    const ensure = (p: number, n: number): number => {
      if (p >= cStart && p + n <= cEnd) return p - cStart;
      if (n > chunk.length) chunk = Buffer.allocUnsafe(n);
      const got = this.readAt(chunk, 0, Math.min(chunk.length, fileBytes - p), p);
      cStart = p;
      cEnd = p + got;
      return got >= n ? 0 : -1;
    };
    let next = expectedOffset;
    let problem: string | undefined;
    while (position < fileBytes) {
      const remaining = fileBytes - position;
      if (remaining < BATCH_HEADER_BYTES) {
        problem = `partial batch header of ${remaining} bytes`;
        break;
      }
      let h = ensure(position, BATCH_HEADER_BYTES);
      if (h < 0) {
        problem = 'short read';
        break;
      }
      const bytes = chunk.readInt32BE(h + Off.batchLength) + BATCH_LOG_OVERHEAD;
      const base = readInt64(chunk, h + Off.baseOffset);
      const delta = chunk.readInt32BE(h + Off.lastOffsetDelta);
      if (bytes < BATCH_HEADER_BYTES) {
        problem = `impossible batch length ${bytes}`;
        break;
      }
      if (bytes > remaining) {
        problem = `partial batch: ${remaining} of ${bytes} bytes`;
        break;
      }
      if (chunk.readInt8(h + Off.magic) !== BATCH_MAGIC) {
        problem = `bad magic ${chunk.readInt8(h + Off.magic)}`;
        break;
      }
      if (base < next || delta < 0 || base + delta - this.baseOffset > MAX_RELATIVE_OFFSET) {
        problem = `offsets ${base}..${base + delta} out of order (expected >= ${next})`;
        break;
      }
      if (verifyCrc) {
        h = ensure(position, bytes);
        if (h < 0) {
          problem = 'short read';
          break;
        }
        if (!batchCrcValid(chunk.subarray(h, h + bytes))) {
          problem = 'CRC mismatch';
          break;
        }
      }
      visit?.(base, base + delta, position, bytes, readInt64(chunk, h + Off.maxTimestamp));
      next = base + delta + 1;
      position += bytes;
    }
    return problem === undefined ? { end: position, nextOffset: next } : { end: position, nextOffset: next, problem };
  }

  /**
   * Full check of the segment (the active one on open): every batch's framing and CRC.
   * Rebuilds both indexes in memory. At the first bad batch the file is truncated;
   * returns what was cut, if anything.
   */
  recover(indexIntervalBytes: number, now: number): { position: number; bytesRemoved: number; reason: string } | undefined {
    this.resetIndexes();
    this.size = this.io.size(this.fd, this.logPath);
    let firstMax = -Infinity;
    const result = this.scanValid(0, this.baseOffset, true, (base, _last, position, bytes, maxTs) => {
      if (position === 0) firstMax = maxTs;
      this.indexBatch(base, position, bytes, maxTs, indexIntervalBytes);
    });
    const fileBytes = this.size;
    this.size = result.end;
    this.nextOffset = result.nextOffset;
    // Age of a recovered segment: its first batch's timestamp, capped at now so future
    // timestamps cannot postpone rolling; past ones cause at most one early roll.
    this.firstAppendMs = result.end === 0 ? -1 : Math.min(now, Math.max(0, firstMax));
    if (result.problem === undefined) return undefined;
    this.io.truncate(this.fd, this.logPath, result.end);
    return { position: result.end, bytesRemoved: fileBytes - result.end, reason: result.problem };
  }

  /**
   * Loads a closed segment: index files are checked and used when sound (else rebuilt
   * from the log and rewritten); the tail after the last index entry is scanned for the
   * segment's end and newest timestamp. Returns why the indexes were rebuilt and what
   * was truncated from a structurally broken tail, if anything.
   */
  loadClosed(indexIntervalBytes: number): { rebuilt?: string; truncated?: { position: number; bytesRemoved: number; reason: string } } {
    this.resetIndexes();
    const out: { rebuilt?: string; truncated?: { position: number; bytesRemoved: number; reason: string } } = {};
    const fileBytes = this.io.size(this.fd, this.logPath);
    this.size = fileBytes;
    let problem = this.loadIndexFiles(fileBytes);
    let tail: ScanResult | undefined;
    let tailMax = -Infinity;
    if (problem === undefined) {
      const start = this.offsetIndex.lastPosition;
      tail = this.scanValid(start, this.baseOffset + this.offsetIndex.lastRelativeOffset, false, (_b, _l, _p, _n, maxTs) => {
        if (maxTs > tailMax) tailMax = maxTs;
      });
      if (this.timeIndex.entries > 0 && this.timeIndex.lastRelativeOffset > tail.nextOffset - 1 - this.baseOffset) {
        problem = 'time index names offsets beyond the log';
      }
    }
    if (problem !== undefined) {
      out.rebuilt = problem;
      this.resetIndexes();
      tail = this.scanValid(0, this.baseOffset, false, (base, _last, position, bytes, maxTs) =>
        this.indexBatch(base, position, bytes, maxTs, indexIntervalBytes),
      );
      tailMax = this.maxTimestamp;
    }
    const t = tail!;
    this.size = t.end;
    this.nextOffset = t.nextOffset;
    this.maxTimestamp = Math.max(this.timeIndex.lastTimestamp, tailMax);
    if (t.problem !== undefined) {
      this.io.truncate(this.fd, this.logPath, t.end);
      out.truncated = { position: t.end, bytesRemoved: fileBytes - t.end, reason: t.problem };
    }
    if (problem !== undefined) this.persistIndexes();
    return out;
  }

  private loadIndexFiles(logBytes: number): string | undefined {
    if (this.io.sizeOf(this.indexPath) < 0) return 'offset index missing';
    if (this.io.sizeOf(this.timeIndexPath) < 0) return 'time index missing';
    const problem = this.offsetIndex.load(this.io.readFile(this.indexPath), logBytes);
    if (problem !== undefined) return `offset index: ${problem}`;
    if (this.offsetIndex.entries > 0) {
      // The last entry must point at the batch it names.
      const h = Buffer.allocUnsafe(Off.batchLength);
      const got = this.readAt(h, 0, h.length, this.offsetIndex.lastPosition);
      if (got < h.length || readInt64(h, 0) !== this.baseOffset + this.offsetIndex.lastRelativeOffset) {
        return 'offset index: last entry does not point at its batch';
      }
    }
    const tProblem = this.timeIndex.load(this.io.readFile(this.timeIndexPath), MAX_RELATIVE_OFFSET);
    if (tProblem !== undefined) return `time index: ${tProblem}`;
    return undefined;
  }

  /** Rebuilds both indexes from the log (no CRC check) and writes them. */
  rebuildIndexes(indexIntervalBytes: number): void {
    this.resetIndexes();
    const r = this.scanValid(0, this.baseOffset, false, (base, _last, position, bytes, maxTs) =>
      this.indexBatch(base, position, bytes, maxTs, indexIntervalBytes),
    );
    this.size = r.end;
    this.nextOffset = r.nextOffset;
    this.persistIndexes();
  }

  /**
   * Calls fn with each whole batch from the start of the segment. `batch` is a view of
   * a reused read buffer, valid only during the call.
   */
  forEachBatch(fn: (batch: Buffer, position: number) => void): void {
    let chunk = Buffer.allocUnsafe(Math.min(1 << 20, Math.max(this.size, BATCH_HEADER_BYTES)));
    let cStart = 0;
    let cEnd = 0;
    let position = 0;
    while (position + BATCH_HEADER_BYTES <= this.size) {
      if (position + BATCH_HEADER_BYTES > cEnd) {
        cStart = position;
        cEnd = position + this.readAt(chunk, 0, Math.min(chunk.length, this.size - position), position);
      }
      const bytes = this.batchBytesAt(chunk, position - cStart, position);
      if (position + bytes > cEnd) {
        if (bytes > chunk.length) chunk = Buffer.allocUnsafe(bytes);
        cStart = position;
        cEnd = position + this.readAt(chunk, 0, Math.min(chunk.length, this.size - position), position);
        if (position + bytes > cEnd) throw new KmqError(ErrorCode.StorageError, `Short read at ${position} of ${this.logPath}`, { path: this.logPath, position });
      }
      fn(chunk.subarray(position - cStart, position - cStart + bytes), position);
      position += bytes;
    }
  }

  /** The segment stops being active: record its final largest timestamp and write the indexes. */
  onRoll(): void {
    this.addTimeEntryIfGrown();
    this.persistIndexes();
  }

  persistIndexes(): void {
    this.offsetIndex.persist(this.io);
    this.timeIndex.persist(this.io);
  }

  /** fdatasync of the .log. */
  async sync(): Promise<void> {
    if (this.closing) return;
    this.syncsInFlight++;
    try {
      await this.io.fdatasync(this.fd, this.logPath);
    } finally {
      this.syncsInFlight--;
      if (this.closing && this.syncsInFlight === 0) this.closeFdQuietly();
    }
  }

  /** Closes the fd now, or after in-flight syncs finish. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.syncsInFlight === 0 && this.fdOpen) {
      this.fdOpen = false;
      this.io.close(this.fd, this.logPath);
    }
  }

  private closeFdQuietly(): void {
    if (!this.fdOpen) return;
    this.fdOpen = false;
    try {
      this.io.close(this.fd, this.logPath);
    } catch {
      // Deferred close after a sync: nobody is left to tell, and the data is already synced or reported.
    }
  }

  /** Closes and removes the segment's three files. */
  delete(): void {
    this.close();
    this.io.unlink(this.logPath);
    this.io.unlink(this.indexPath);
    this.io.unlink(this.timeIndexPath);
  }
}
