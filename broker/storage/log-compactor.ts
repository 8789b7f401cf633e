/**
 * Key-based compaction of a partition log's closed segments (the active segment is
 * never touched, so a later truncation of it can never remove the only copy of a key).
 *
 * 1. Map every key in the closed segments to its latest offset.
 * 2. Cut the closed segments into runs of consecutive segments whose total size fits
 *    segmentBytes; each run is rewritten into one segment named after its first base
 *    offset, keeping a record only when it is the latest for its key (records without
 *    a key are kept; a tombstone — null value — is dropped once older than retentionMs).
 *    A batch that keeps all its records is copied as is; otherwise each run of
 *    consecutive kept offsets becomes a batch of its own, so offsets never change and
 *    every batch stays valid (its records numbered 0..n-1).
 * 3. Swap, crash-safely: write `<base>.log.cleaned`, fdatasync, rename to
 *    `<base>.log.swap` (the commit point), delete the replaced segments, rename the
 *    swap to `<base>.log`. On open, a .cleaned file is discarded and a .swap finished
 *    (partition-log.ts).
 *
 * Concurrency: one compaction per log at a time (PartitionLog serialises it). Writing
 * the output is interleaved with appends and reads; the swap itself runs in one
 * synchronous step after checking the run is still current, so readers see either the
 * old segments or the new one.
 */
import path from 'node:path';
import { Off, stampBatch } from '../../protocol/batch-header.js';
import { decodeBatch, encodeBatch } from '../../protocol/record-batch.js';
import type { DecodedRecord, RecordInput } from '../../protocol/record-batch.js';
import type { Logger } from '../../lib/logger.js';
import type { FileIo } from './file-io.js';
import type { LogConfig } from './log-config.js';
import { LOG_SUFFIX, LogSegment, MAX_RELATIVE_OFFSET, segmentFileName } from './log-segment.js';

/** What the compactor needs from its PartitionLog. */
export interface CompactionContext {
  dir: string;
  io: FileIo;
  logger: Logger;
  config: Readonly<LogConfig>;
  now: number;
  /** The log's current segment list (last = active). */
  segments: () => readonly LogSegment[];
  /** Whether the run is still in the log, closed and in order. */
  stillCurrent: (run: readonly LogSegment[]) => boolean;
  /** Puts the replacement (or nothing) in place of the run, in memory. */
  replace: (run: readonly LogSegment[], replacement: LogSegment | undefined) => void;
  /** Called with an error that struck mid-swap: the directory needs recovery. */
  swapFailed: (err: unknown) => Error;
}

const OUTPUT_CHUNK_BYTES = 1 << 20;

/** Compacts; returns the number of records removed. */
export async function compactSegments(ctx: CompactionContext): Promise<number> {
  const closed = ctx.segments().slice(0, -1);
  if (closed.length === 0) return 0;

  const latest = new Map<string, number>();
  for (const seg of closed) {
    seg.forEachBatch((batch) => {
      for (const r of decodeBatch(batch).records) {
        if (r.key !== null) latest.set(r.key.toString('latin1'), r.offset);
      }
    });
  }

  const tombstoneCutoff = ctx.config.retentionMs < 0 ? -Infinity : ctx.now - ctx.config.retentionMs;
  let removedTotal = 0;
  for (const run of groupRuns(closed, ctx.config.segmentBytes)) {
    removedTotal += await compactRun(ctx, run, latest, tombstoneCutoff);
  }
  return removedTotal;
}

function groupRuns(closed: LogSegment[], segmentBytes: number): LogSegment[][] {
  const runs: LogSegment[][] = [];
  let current: LogSegment[] = [];
  let bytes = 0;
  for (const seg of closed) {
    const first = current[0];
    if (first !== undefined && (bytes + seg.size > segmentBytes || seg.lastOffset - first.baseOffset > MAX_RELATIVE_OFFSET)) {
      runs.push(current);
      current = [];
      bytes = 0;
    }
    current.push(seg);
    bytes += seg.size;
  }
  if (current.length > 0) runs.push(current);
  return runs;
}

async function compactRun(ctx: CompactionContext, run: LogSegment[], latest: Map<string, number>, tombstoneCutoff: number): Promise<number> {
  const { io, dir } = ctx;
  const base = run[0]!.baseOffset;
  const logName = segmentFileName(base, LOG_SUFFIX);
  const cleanedPath = path.join(dir, logName + '.cleaned');
  const swapPath = path.join(dir, logName + '.swap');
  const finalPath = path.join(dir, logName);

  const keep = (r: DecodedRecord): boolean => {
    if (r.value === null && r.timestamp < tombstoneCutoff) return false;
    return r.key === null || latest.get(r.key.toString('latin1')) === r.offset;
  };

  let removed = 0;
  let outBytes = 0;
  const fd = io.open(cleanedPath);
  try {
    io.truncate(fd, cleanedPath, 0);
    const out = Buffer.allocUnsafe(OUTPUT_CHUNK_BYTES);
    let pending = 0;
    const emit = (bytes: Buffer): void => {
      if (pending + bytes.length > out.length) {
        io.write(fd, cleanedPath, out, outBytes - pending, 0, pending);
        pending = 0;
      }
      if (bytes.length > out.length) {
        io.write(fd, cleanedPath, bytes, outBytes);
      } else {
        bytes.copy(out, pending);
        pending += bytes.length;
      }
      outBytes += bytes.length;
    };
    for (const seg of run) {
      seg.forEachBatch((batch) => {
        const { header, records } = decodeBatch(batch);
        let kept = 0;
        for (const r of records) if (keep(r)) kept++;
        removed += records.length - kept;
        if (kept === records.length) {
          emit(batch);
          return;
        }
        // Each run of consecutive kept offsets becomes one batch with the original producer fields.
        let i = 0;
        while (i < records.length) {
          if (!keep(records[i]!)) {
            i++;
            continue;
          }
          const start = i;
          const inputs: RecordInput[] = [];
          while (i < records.length && keep(records[i]!)) {
            const r = records[i]!;
            inputs.push({ key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp });
            i++;
          }
          const first = records[start]!.offset;
          const rebuilt = encodeBatch(inputs, {
            baseOffset: first,
            producerId: header.producerId,
            producerEpoch: header.producerEpoch,
            baseSequence: header.baseSequence < 0 ? -1 : (header.baseSequence + (first - header.baseOffset)) | 0,
          });
          stampBatch(rebuilt, 0, first, batch.readInt32BE(Off.partitionLeaderEpoch));
          emit(rebuilt);
        }
      });
    }
    if (pending > 0) io.write(fd, cleanedPath, out, outBytes - pending, 0, pending);
    if (outBytes > 0x7fffffff) throw new Error(`compacted output of ${outBytes} bytes exceeds a segment's 2 GiB limit`);
    await io.fdatasync(fd, cleanedPath);
  } catch (err) {
    try {
      io.close(fd, cleanedPath);
      io.unlink(cleanedPath);
    } catch {
      // The original error matters; a leftover .cleaned file is discarded on the next open.
    }
    throw err;
  }
  io.close(fd, cleanedPath);

  // Nothing to gain: a single segment with nothing removed stays as it is.
  if ((removed === 0 && run.length === 1) || !ctx.stillCurrent(run)) {
    io.unlink(cleanedPath);
    return 0;
  }

  // From here to replace() everything is synchronous: readers see the old run or the new segment.
  let replacement: LogSegment | undefined;
  try {
    if (outBytes === 0) {
      for (const seg of run) seg.delete();
      io.unlink(cleanedPath);
    } else {
      io.rename(cleanedPath, swapPath);
      for (const seg of run) seg.delete();
      io.rename(swapPath, finalPath);
      replacement = LogSegment.openExisting(dir, base, io);
      replacement.rebuildIndexes(ctx.config.indexIntervalBytes);
    }
  } catch (err) {
    throw ctx.swapFailed(err);
  }
  ctx.replace(run, replacement);
  ctx.logger.info({ dir, baseOffset: base, segments: run.length, recordsRemoved: removed, bytes: outBytes }, 'Compacted segments');
  await io.syncDir(dir);
  return removed;
}
