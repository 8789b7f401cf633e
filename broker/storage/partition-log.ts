/**
 * The log of one partition: an ordered list of segments (log-segment.ts) in one
 * directory, the last of which is active and receives appends.
 *
 * Directory contents:
 *   <20-digit base offset>.log / .index / .timeindex   one segment (see log-segment.ts)
 *   <base>.log.cleaned    compaction output being written: discarded on open
 *   <base>.log.swap       compaction output committed but not yet renamed: the swap is
 *                         finished on open (segments it replaces are removed)
 *
 * Invariants: segment base offsets strictly increase and each segment's offsets lie
 * below the next one's base; logStartOffset is the first segment's base offset and
 * logEndOffset the active segment's next offset; there is always an active segment
 * (possibly empty); the active segment is never removed by retention or compaction.
 *
 * Concurrency: one PartitionLog per directory per process, used from the event loop.
 * append/read/scan/retention run synchronously to completion (file I/O through
 * FileIo), so they never interleave with each other; only fdatasync (append's wait in
 * 'every-batch' mode, flush, close) and compaction's output sync are asynchronous.
 * After a write-path I/O failure the log goes offline: every later call throws
 * StorageError, because what reached the disk is no longer known.
 */
import path from 'node:path';
import { BATCH_HEADER_BYTES, BATCH_LOG_OVERHEAD, BATCH_MAGIC, Off, readBatchHeader, readInt64, stampBatch } from '../../protocol/batch-header.js';
import type { BatchHeader } from '../../protocol/batch-header.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
import { FileIo } from './file-io.js';
import { compileLogConfig } from './log-config.js';
import type { LogConfig } from './log-config.js';
import { compactSegments } from './log-compactor.js';
import { HeaderWindow, LOG_SUFFIX, LogSegment, MAX_RELATIVE_OFFSET, parseSegmentFileName, segmentFileName } from './log-segment.js';

export type { LogConfig, FlushConfig } from './log-config.js';
export { defaultLogConfig } from './log-config.js';

/** Injected collaborators; each has a production default. */
export interface LogDeps {
  /** Broker time in ms; default Date.now. Drives roll by age and retention. */
  clock?: () => number;
  logger?: Logger;
  io?: FileIo;
}

/** Where an append landed. */
export interface AppendResult {
  baseOffset: number;
  lastOffset: number;
  maxTimestamp: number;
  /** Byte position of the first batch in its segment. */
  position: number;
}

const EMPTY = Buffer.alloc(0);

export class PartitionLog {
  readonly dir: string;
  private config: Readonly<LogConfig>;
  private readonly io: FileIo;
  private readonly clock: () => number;
  private readonly logger: Logger;
  private segments: LogSegment[] = [];
  private readonly window = new HeaderWindow();
  private readonly dirty = new Set<LogSegment>();
  private syncInFlight: Promise<void> | undefined;
  private syncQueued: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private compaction: Promise<number> | undefined;
  private offline: KmqError | undefined;
  private closed = false;

  private constructor(dir: string, config: Readonly<LogConfig>, deps: LogDeps) {
    this.dir = dir;
    this.config = config;
    this.io = deps.io ?? new FileIo();
    this.clock = deps.clock ?? Date.now;
    this.logger = deps.logger ?? silentLogger();
  }

  /** Opens the log in `dir` (created if needed) and recovers it; see the header comment. */
  static open(dir: string, config: LogConfig, deps: LogDeps = {}): PartitionLog {
    const log = new PartitionLog(dir, compileLogConfig(config), deps);
    try {
      log.recover();
    } catch (err) {
      for (const s of log.segments) {
        try {
          s.close();
        } catch {
          // Already failing; the first error is the one to report.
        }
      }
      throw err;
    }
    log.startFlushTimer();
    return log;
  }

  get logStartOffset(): number {
    return this.segments[0]!.baseOffset;
  }

  /** The offset the next appended record gets. */
  get logEndOffset(): number {
    return this.active.nextOffset;
  }

  get sizeBytes(): number {
    let total = 0;
    for (const s of this.segments) total += s.size;
    return total;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  private get active(): LogSegment {
    return this.segments[this.segments.length - 1]!;
  }

  updateConfig(config: LogConfig): void {
    const next = compileLogConfig(config);
    const timerChanged = next.flush.mode !== this.config.flush.mode || next.flush.intervalMs !== this.config.flush.intervalMs;
    this.config = next;
    if (timerChanged) this.startFlushTimer();
  }

  /**
   * Appends whole, validated RecordBatches laid back to back in `batches` (stamped in
   * place with offsets and `leaderEpoch`). Rolls first when the active segment is full
   * or old. Resolves once the flush policy is met: after fdatasync for 'every-batch'
   * (concurrent appends share one), right after the write otherwise.
   */
  append(batches: Buffer, leaderEpoch = -1): Promise<AppendResult> {
    try {
      return this.appendNow(batches, leaderEpoch, false);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Appends batches copied from a partition leader: their offsets and epochs are kept
   * as the leader stamped them, and the first must start at logEndOffset (a follower's
   * log is a prefix of the leader's).
   */
  appendReplicated(batches: Buffer): Promise<AppendResult> {
    try {
      return this.appendNow(batches, -1, true);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private appendNow(batches: Buffer, leaderEpoch: number, replicated: boolean): Promise<AppendResult> {
    this.checkUsable();
    if (batches.length === 0) throw new KmqError(ErrorCode.InvalidRequest, 'Append of zero bytes', { dir: this.dir });
    const baseOffset = this.active.nextOffset;
    let next = baseOffset;
    let maxTimestamp = -Infinity;
    let at = 0;
    // One pass over the headers: framing check, offsets and epoch stamped in place.
    while (at < batches.length) {
      const remaining = batches.length - at;
      const bytes = remaining >= BATCH_HEADER_BYTES ? batches.readInt32BE(at + Off.batchLength) + BATCH_LOG_OVERHEAD : -1;
      const delta = remaining >= BATCH_HEADER_BYTES ? batches.readInt32BE(at + Off.lastOffsetDelta) : -1;
      if (bytes < BATCH_HEADER_BYTES || bytes > remaining || batches[at + Off.magic] !== BATCH_MAGIC || delta < 0) {
        throw new KmqError(ErrorCode.CorruptMessage, `Malformed batch at byte ${at} of an append of ${batches.length} bytes`, {
          dir: this.dir,
          position: at,
        });
      }
      if (replicated) {
        const base = readInt64(batches, at + Off.baseOffset);
        if (base !== next) {
          throw new KmqError(ErrorCode.CorruptMessage, `Replicated batch starts at offset ${base}, the log ends at ${next}`, { dir: this.dir, offset: base });
        }
      } else {
        stampBatch(batches, at, next, leaderEpoch);
      }
      const ts = readInt64(batches, at + Off.maxTimestamp);
      if (ts > maxTimestamp) maxTimestamp = ts;
      next += delta + 1;
      at += bytes;
    }
    const lastOffset = next - 1;

    const now = this.clock();
    if (this.shouldRoll(batches.length, lastOffset, now)) this.roll();
    const seg = this.active;
    let position: number;
    try {
      position = seg.appendBatches(batches, next, now, this.config.indexIntervalBytes);
    } catch (err) {
      try {
        seg.truncateToSize();
      } catch {
        // The truncate failing too is covered by going offline below.
      }
      throw this.goOffline(err);
    }
    this.dirty.add(seg);
    const result: AppendResult = { baseOffset, lastOffset, maxTimestamp, position };
    if (this.config.flush.mode !== 'every-batch') return Promise.resolve(result);
    return this.requestSync().then(() => result);
  }

  private shouldRoll(appendBytes: number, lastOffset: number, now: number): boolean {
    const seg = this.active;
    if (seg.size === 0) return false;
    if (seg.size + appendBytes > this.config.segmentBytes) return true;
    if (seg.firstAppendMs >= 0 && now - seg.firstAppendMs >= this.config.segmentMs) return true;
    return lastOffset - seg.baseOffset > MAX_RELATIVE_OFFSET;
  }

  private roll(): void {
    const old = this.active;
    try {
      old.onRoll();
      this.segments.push(LogSegment.create(this.dir, old.nextOffset, this.io));
    } catch (err) {
      throw this.goOffline(err);
    }
    this.logger.debug({ dir: this.dir, baseOffset: old.nextOffset, previousBytes: old.size }, 'Rolled segment');
  }

  /**
   * Whole batches from the one containing `offset` (or the next one after a compaction
   * gap), up to `maxBytes` but always at least one batch, from a single segment, none
   * starting at or after `endOffset` (default the log end; a leader passes its high
   * watermark). Empty at endOffset and beyond; OffsetOutOfRange outside
   * [logStartOffset, logEndOffset].
   */
  read(offset: number, maxBytes: number, endOffset = Infinity): Buffer {
    this.checkReadable();
    const start = this.logStartOffset;
    const end = this.logEndOffset;
    if (!Number.isSafeInteger(offset) || offset < start || offset > end) {
      throw new KmqError(ErrorCode.OffsetOutOfRange, `Offset ${offset} is outside the log's range [${start}, ${end}]`, {
        offset,
        logStartOffset: start,
        logEndOffset: end,
        dir: this.dir,
      });
    }
    if (offset === end || offset >= endOffset) return EMPTY;
    this.window.reset();
    for (let i = this.segmentIndexFor(offset); i < this.segments.length; i++) {
      const seg = this.segments[i]!;
      const position = seg.locate(offset, this.window);
      if (position < 0) continue;
      const h = this.window.at(seg, position);
      const firstBytes = this.window.buf.readInt32BE(h + Off.batchLength) + BATCH_LOG_OVERHEAD;
      const want = Math.min(seg.size - position, Math.max(maxBytes, firstBytes));
      const out = Buffer.allocUnsafe(want);
      const got = seg.readAt(out, 0, want, position);
      // Keep whole batches only.
      let used = 0;
      while (used + BATCH_HEADER_BYTES <= got) {
        const bytes = out.readInt32BE(used + Off.batchLength) + BATCH_LOG_OVERHEAD;
        if (used + bytes > got || (used > 0 && readInt64(out, used + Off.baseOffset) >= endOffset)) break;
        used += bytes;
      }
      return used === out.length ? out : out.subarray(0, used);
    }
    return EMPTY;
  }

  /**
   * Removes every record at or after `offset`: a follower drops history its new leader
   * does not have. A batch holding `offset` goes whole (the log then ends at its base
   * offset, which is returned). Below logStartOffset the log is emptied and restarts at
   * `offset`. Whole later segments are deleted; the cut is fdatasynced before this
   * resolves, so the removed records cannot come back after a crash.
   */
  async truncateTo(offset: number): Promise<number> {
    this.checkUsable();
    if (!Number.isSafeInteger(offset) || offset < 0) throw new KmqError(ErrorCode.InvalidRequest, `Cannot truncate to offset ${offset}`, { dir: this.dir, offset });
    if (offset >= this.logEndOffset) return this.logEndOffset;
    if (this.compaction !== undefined) await this.compaction.catch(() => undefined);
    try {
      if (offset <= this.logStartOffset) {
        this.replaceWithEmpty(offset);
        return this.logEndOffset;
      }
      while (this.segments.length > 1 && this.active.baseOffset >= offset) {
        const s = this.segments.pop()!;
        this.dirty.delete(s);
        s.delete();
      }
      const seg = this.active;
      let cut = -1;
      let cutOffset = offset;
      seg.scanValid(0, seg.baseOffset, false, (base, last, position) => {
        if (cut < 0 && last >= offset) {
          cut = position;
          cutOffset = base;
        }
      });
      if (cut >= 0) {
        seg.truncateAt(cut, this.config.indexIntervalBytes, this.clock());
      }
      await seg.sync();
      this.logger.info({ dir: this.dir, offset: cutOffset }, 'Truncated log');
      return this.logEndOffset;
    } catch (err) {
      throw this.goOffline(err);
    }
  }

  /** Empties the log; it restarts at `offset` (a follower below its leader's log start). */
  async resetTo(offset: number): Promise<void> {
    this.checkUsable();
    if (!Number.isSafeInteger(offset) || offset < 0) throw new KmqError(ErrorCode.InvalidRequest, `Cannot reset to offset ${offset}`, { dir: this.dir, offset });
    if (this.compaction !== undefined) await this.compaction.catch(() => undefined);
    try {
      this.replaceWithEmpty(offset);
    } catch (err) {
      throw this.goOffline(err);
    }
  }

  private replaceWithEmpty(start: number): void {
    // A crash in between leaves an empty folder: an empty log the follower fills again.
    for (const s of this.segments) {
      this.dirty.delete(s);
      s.delete();
    }
    this.segments = [LogSegment.create(this.dir, start, this.io)];
    this.logger.info({ dir: this.dir, offset: start }, 'Emptied log');
  }

  /** First offset of the first batch whose maxTimestamp >= ts, or logEndOffset if none. */
  offsetForTimestamp(ts: number): number {
    this.checkReadable();
    this.window.reset();
    for (const seg of this.segments) {
      const position = seg.locateTimestamp(ts, this.window);
      if (position < 0) continue;
      const h = this.window.at(seg, position);
      return readInt64(this.window.buf, h + Off.baseOffset);
    }
    return this.logEndOffset;
  }

  /** Calls fn for each batch header from the batch containing fromOffset to the end of the log. */
  scanBatchHeaders(fromOffset: number, fn: (h: BatchHeader) => void): void {
    this.checkReadable();
    if (fromOffset >= this.logEndOffset) return;
    const from = Math.max(fromOffset, this.logStartOffset);
    this.window.reset();
    for (let i = this.segmentIndexFor(from); i < this.segments.length; i++) {
      const seg = this.segments[i]!;
      const position = seg.locate(from, this.window);
      if (position < 0) continue;
      seg.forEachHeader(position, this.window, (buf, at) => {
        fn(readBatchHeader(buf, at));
      });
    }
  }

  /**
   * Removes whole segments, oldest first, while the oldest is past retentionMs (by its
   * newest timestamp) or the log is larger than retentionBytes. The active segment is
   * kept. Only for cleanupPolicy 'delete'. Returns the number of segments removed.
   */
  enforceRetention(now: number = this.clock()): number {
    this.checkUsable();
    if (this.config.cleanupPolicy !== 'delete') return 0;
    const { retentionMs, retentionBytes } = this.config;
    let size = this.sizeBytes;
    let removed = 0;
    while (this.segments.length > 1) {
      const oldest = this.segments[0]!;
      const expired = retentionMs >= 0 && oldest.maxTimestamp < now - retentionMs;
      // As in Kafka: drop a segment only if what stays is still at least retentionBytes.
      const tooBig = retentionBytes >= 0 && size - oldest.size >= retentionBytes;
      if (!expired && !tooBig) break;
      this.segments.shift();
      this.dirty.delete(oldest);
      try {
        oldest.delete();
      } catch (err) {
        throw this.goOffline(err);
      }
      size -= oldest.size;
      removed++;
      this.logger.info(
        { dir: this.dir, baseOffset: oldest.baseOffset, bytes: oldest.size, reason: expired ? 'time' : 'size', logStartOffset: this.logStartOffset },
        'Deleted segment by retention',
      );
    }
    return removed;
  }

  /**
   * Removes whole closed segments all of whose records lie below `offset`: a queue's
   * fully acknowledged prefix ('consumed'), or what the leader no longer has ('leader-log-start',
   * on a follower). The active segment is kept. Returns how many went.
   */
  deleteSegmentsBelow(offset: number, reason: 'consumed' | 'leader-log-start' = 'consumed'): number {
    this.checkUsable();
    let removed = 0;
    while (this.segments.length > 1 && this.segments[1]!.baseOffset <= offset) {
      const oldest = this.segments.shift()!;
      this.dirty.delete(oldest);
      try {
        oldest.delete();
      } catch (err) {
        throw this.goOffline(err);
      }
      removed++;
      this.logger.info(
        { dir: this.dir, baseOffset: oldest.baseOffset, bytes: oldest.size, reason, logStartOffset: this.logStartOffset },
        reason === 'consumed' ? 'Deleted segment: every record acknowledged' : 'Deleted segment: below the leader\'s log start',
      );
    }
    return removed;
  }

  /**
   * For cleanupPolicy 'compact': rewrites the closed segments keeping only the latest
   * record per key; tombstones (null values) older than retentionMs are dropped too.
   * Offsets are kept, leaving gaps. Returns the number of records removed.
   */
  compact(): Promise<number> {
    try {
      this.checkUsable();
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.config.cleanupPolicy !== 'compact') return Promise.resolve(0);
    if (this.compaction !== undefined) return this.compaction;
    const run = compactSegments({
      dir: this.dir,
      io: this.io,
      logger: this.logger,
      config: this.config,
      now: this.clock(),
      segments: () => this.segments,
      stillCurrent: (segs) => this.isClosedRun(segs),
      replace: (segs, replacement) => {
        this.segments.splice(this.segments.indexOf(segs[0]!), segs.length, ...(replacement === undefined ? [] : [replacement]));
        for (const s of segs) this.dirty.delete(s);
      },
      swapFailed: (err) => this.goOffline(err),
    }).finally(() => {
      this.compaction = undefined;
    });
    this.compaction = run;
    return run;
  }

  /** True when `segs` are consecutive closed segments of this log, in order. */
  private isClosedRun(segs: readonly LogSegment[]): boolean {
    const i = this.segments.indexOf(segs[0]!);
    if (i < 0 || i + segs.length > this.segments.length - 1) return false;
    for (let k = 0; k < segs.length; k++) if (this.segments[i + k] !== segs[k]) return false;
    return !this.closed && this.offline === undefined;
  }

  /** fdatasyncs everything appended so far. */
  async flush(): Promise<void> {
    this.checkUsable();
    await this.requestSync();
  }

  /** Flushes and closes every file. The log cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.stopFlushTimer();
    if (this.compaction !== undefined) await this.compaction.catch(() => undefined);
    let failure: unknown;
    if (this.offline === undefined) {
      try {
        await this.requestSync();
        this.active.persistIndexes();
      } catch (err) {
        failure = err;
      }
    }
    this.closed = true;
    for (const s of this.segments) {
      try {
        s.close();
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== undefined) throw failure;
  }

  /** Closes the log and removes its directory. */
  async deleteAll(): Promise<void> {
    try {
      await this.close();
    } catch {
      // The files are going away; a failed final flush does not matter.
    }
    this.io.removeDir(this.dir);
  }

  // --- flushing ---------------------------------------------------------------------

  /**
   * Group commit: one fdatasync covers every write made before it starts. A request
   * while one is in flight joins the single queued sync that starts after it.
   */
  private requestSync(): Promise<void> {
    if (this.syncQueued !== undefined) return this.syncQueued;
    if (this.syncInFlight !== undefined) {
      const queued = this.syncInFlight
        .catch(() => undefined)
        .then(() => {
          this.syncQueued = undefined;
          return this.startSync();
        });
      this.syncQueued = queued;
      return queued;
    }
    return this.startSync();
  }

  private startSync(): Promise<void> {
    if (this.offline !== undefined) return Promise.reject(this.offline);
    const segs = [...this.dirty];
    this.dirty.clear();
    const run: Promise<void> = Promise.all(segs.map((s) => s.sync())).then(
      () => {
        if (this.syncInFlight === run) this.syncInFlight = undefined;
      },
      (err: unknown) => {
        if (this.syncInFlight === run) this.syncInFlight = undefined;
        throw this.goOffline(err);
      },
    );
    this.syncInFlight = run;
    return run;
  }

  private startFlushTimer(): void {
    this.stopFlushTimer();
    if (this.config.flush.mode !== 'interval') return;
    this.flushTimer = setInterval(() => {
      if (this.dirty.size === 0 || this.offline !== undefined || this.closed) return;
      this.requestSync().catch((err: unknown) => {
        this.logger.error({ dir: this.dir, err }, 'Periodic flush failed');
      });
    }, this.config.flush.intervalMs);
    this.flushTimer.unref();
  }

  private stopFlushTimer(): void {
    if (this.flushTimer !== undefined) clearInterval(this.flushTimer);
    this.flushTimer = undefined;
  }

  // --- state ------------------------------------------------------------------------

  private goOffline(err: unknown): KmqError {
    const e =
      err instanceof KmqError && err.code === ErrorCode.StorageError
        ? err
        : new KmqError(ErrorCode.StorageError, `Storage failure in ${this.dir}: ${String(err)}`, { dir: this.dir }, { cause: err });
    if (this.offline === undefined) {
      this.offline = e;
      this.stopFlushTimer();
      this.logger.error({ dir: this.dir, err: e }, 'Log is offline after an I/O failure');
    }
    return e;
  }

  private checkUsable(): void {
    if (this.closed) throw new KmqError(ErrorCode.StorageError, `Log ${this.dir} is closed`, { dir: this.dir }, { retriable: false });
    if (this.offline !== undefined) {
      throw new KmqError(ErrorCode.StorageError, `Log ${this.dir} is offline after an I/O failure: ${this.offline.message}`, { dir: this.dir }, {
        cause: this.offline,
        retriable: false,
      });
    }
  }

  private checkReadable(): void {
    if (this.closed) throw new KmqError(ErrorCode.StorageError, `Log ${this.dir} is closed`, { dir: this.dir }, { retriable: false });
  }

  /** Index of the last segment whose base offset is <= offset (0 if none). */
  private segmentIndexFor(offset: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.segments[mid]!.baseOffset <= offset) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  // --- recovery ---------------------------------------------------------------------

  private recover(): void {
    this.io.mkdir(this.dir);
    const names = this.io.readdir(this.dir).sort();
    const logBases: number[] = [];
    const indexFiles: { name: string; baseOffset: number }[] = [];
    const swaps: number[] = [];
    for (const name of names) {
      if (name.endsWith('.cleaned')) {
        this.io.unlink(path.join(this.dir, name));
        this.logger.warn({ path: path.join(this.dir, name) }, 'Discarded unfinished compaction output');
        continue;
      }
      if (name.endsWith('.swap')) {
        const parsed = parseSegmentFileName(name.slice(0, -'.swap'.length));
        if (parsed !== undefined && parsed.suffix === LOG_SUFFIX) swaps.push(parsed.baseOffset);
        else this.io.unlink(path.join(this.dir, name));
        continue;
      }
      const parsed = parseSegmentFileName(name);
      if (parsed === undefined) continue;
      if (parsed.suffix === LOG_SUFFIX) logBases.push(parsed.baseOffset);
      else indexFiles.push({ name, baseOffset: parsed.baseOffset });
    }

    for (const base of swaps) this.finishSwap(base, logBases);

    const known = new Set(logBases);
    for (const f of indexFiles) {
      if (!known.has(f.baseOffset)) {
        this.io.unlink(path.join(this.dir, f.name));
        this.logger.warn({ path: path.join(this.dir, f.name) }, 'Removed index without a log segment');
      }
    }

    logBases.sort((a, b) => a - b);
    const now = this.clock();
    for (let i = 0; i < logBases.length; i++) {
      const seg = LogSegment.openExisting(this.dir, logBases[i]!, this.io);
      this.segments.push(seg);
      if (i < logBases.length - 1) {
        const r = seg.loadClosed(this.config.indexIntervalBytes);
        if (r.rebuilt !== undefined) this.logger.warn({ path: seg.indexPath, reason: r.rebuilt }, 'Rebuilt segment indexes');
        if (r.truncated !== undefined) this.logTruncation(seg, r.truncated);
      } else {
        const t = seg.recover(this.config.indexIntervalBytes, now);
        if (t !== undefined) this.logTruncation(seg, t);
      }
    }
    if (this.segments.length === 0) this.segments.push(LogSegment.create(this.dir, 0, this.io));

    for (let i = 0; i + 1 < this.segments.length; i++) {
      const a = this.segments[i]!;
      const b = this.segments[i + 1]!;
      if (a.nextOffset > b.baseOffset) {
        throw new KmqError(ErrorCode.StorageError, `Segments overlap: ${a.logPath} ends at ${a.nextOffset}, ${b.logPath} starts at ${b.baseOffset}`, {
          dir: this.dir,
        });
      }
    }
    // Offsets continue from the active segment's base even when it is empty.
    this.logger.info(
      { dir: this.dir, segments: this.segments.length, logStartOffset: this.logStartOffset, logEndOffset: this.logEndOffset },
      'Opened partition log',
    );
  }

  private logTruncation(seg: LogSegment, t: { position: number; bytesRemoved: number; reason: string }): void {
    this.logger.warn({ path: seg.logPath, position: t.position, bytesRemoved: t.bytesRemoved, reason: t.reason }, 'Truncated torn write');
  }

  /**
   * Finishes a committed compaction swap: the .swap file replaces every segment whose
   * base offset lies in [its base, the offset after its last batch).
   */
  private finishSwap(base: number, logBases: number[]): void {
    const swapPath = path.join(this.dir, segmentFileName(base, LOG_SUFFIX) + '.swap');
    const swap = LogSegment.openExisting(this.dir, base, this.io, swapPath);
    let end: number;
    try {
      end = swap.scanValid(0, base, true).nextOffset;
    } finally {
      swap.close();
    }
    if (end === base) {
      // Compaction never commits an empty swap; one without a valid batch is not trusted over the originals.
      this.io.unlink(swapPath);
      this.logger.warn({ path: swapPath }, 'Discarded compaction swap without valid batches');
      return;
    }
    for (let i = logBases.length - 1; i >= 0; i--) {
      const b = logBases[i]!;
      if (b >= base && b < end) {
        for (const suffix of [LOG_SUFFIX, '.index', '.timeindex']) this.io.unlink(path.join(this.dir, segmentFileName(b, suffix)));
        logBases.splice(i, 1);
      }
    }
    this.io.unlink(path.join(this.dir, segmentFileName(base, '.index')));
    this.io.unlink(path.join(this.dir, segmentFileName(base, '.timeindex')));
    this.io.rename(swapPath, path.join(this.dir, segmentFileName(base, LOG_SUFFIX)));
    logBases.push(base);
    this.logger.warn({ path: swapPath, baseOffset: base, endOffset: end }, 'Finished interrupted compaction swap');
  }
}
