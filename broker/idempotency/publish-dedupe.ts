/**
 * Producer-side dedupe of publishes by idempotency key.
 *
 * A published record that carries the header `x-kmq-idempotency-key` is appended at
 * most once per destination (queue or topic name) within the dedupe window: the map
 * holds destination + key -> where the first one landed (partition, offset) and when
 * that memory expires (append time + window). A repeat inside the window is dropped
 * and answered with the original position.
 *
 * Invariants: entries sit in the map in expiry order (every entry gets the same window,
 * time only moves forward, and rebuild() inserts in timestamp order), so expiry and
 * eviction walk from the front and stop at the first live entry. The map holds at most
 * maxEntries keys; past that the entries closest to expiry go first, so a bound too small
 * for the traffic shortens the window rather than growing memory.
 *
 * State is memory only. At broker start rebuild() re-reads, through the time index, the
 * records of the last window of each destination partition (batches without the header
 * bytes are skipped undecoded), so a repeat after a restart is still dropped.
 *
 * Topic produces are not checked here (the Produce path never decodes records): they
 * get dedupe from the idempotent producer's id and sequence numbers instead.
 *
 * Event-loop only: check and remember run synchronously, before the append's await, so
 * two concurrent publishes of one key cannot both pass.
 */
import { BATCH_HEADER_BYTES, batchBaseOffset, batchLastOffsetDelta, batchTotalBytes } from '../../protocol/batch-header.js';
import { forEachRecord } from '../../protocol/record-batch.js';
import type { RecordHeader } from '../../protocol/record-batch.js';

/** The record header naming a message's idempotency key. */
export const IDEMPOTENCY_KEY_HEADER = 'x-kmq-idempotency-key';
const HEADER_BYTES = Buffer.from(IDEMPOTENCY_KEY_HEADER, 'utf8');
const SCAN_CHUNK_BYTES = 1024 * 1024;

/** Where the first record of a key landed. */
export interface DedupePosition {
  partition: number;
  offset: number;
}

interface Entry extends DedupePosition {
  expiresAt: number;
}

export interface PublishDedupeOptions {
  /** How long a key is remembered, ms; 0 disables dedupe. */
  windowMs: number;
  /** Most keys remembered over every destination. */
  maxEntries: number;
  /** Time source, ms. Default Date.now. */
  clock?: () => number;
}

/** What rebuild() reads: one partition of one destination. */
export interface DedupeSource {
  destination: string;
  partition: number;
  logEndOffset: number;
  offsetForTimestamp(ts: number): number;
  read(offset: number, maxBytes: number): Buffer;
}

/** True when `buf` may hold a record with the idempotency-key header (a byte search, no decoding). */
export function mayCarryIdempotencyKey(buf: Buffer): boolean {
  return buf.indexOf(HEADER_BYTES) >= 0;
}

/** The idempotency key of a record's headers, or undefined. */
export function idempotencyKeyOf(headers: readonly RecordHeader[]): string | undefined {
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i]!;
    if (h.key === IDEMPOTENCY_KEY_HEADER && h.value !== null && h.value.length > 0) return h.value.toString('utf8');
  }
  return undefined;
}

/** The dedupe window of published records (see the file header). */
export class PublishDedupe {
  readonly windowMs: number;
  readonly maxEntries: number;
  private readonly clock: () => number;
  private readonly entries = new Map<string, Entry>();
  private evicted = 0;

  constructor(o: PublishDedupeOptions) {
    this.windowMs = o.windowMs;
    this.maxEntries = o.maxEntries;
    this.clock = o.clock ?? Date.now;
  }

  get enabled(): boolean {
    return this.windowMs > 0 && this.maxEntries > 0;
  }

  /** Keys held (expired ones not yet removed included). */
  get size(): number {
    return this.entries.size;
  }

  /** Keys dropped for room before they expired, since start. */
  get evictedCount(): number {
    return this.evicted;
  }

  /** Where `key` was appended to `destination` within the window, or undefined. */
  lookup(destination: string, key: string): DedupePosition | undefined {
    const e = this.entries.get(mapKey(destination, key));
    if (e === undefined || e.expiresAt <= this.clock()) return undefined;
    return e;
  }

  /** Remembers that `key` was appended to `destination` now (or at `timestamp`). */
  remember(destination: string, key: string, partition: number, offset: number, timestamp: number = this.clock()): void {
    if (!this.enabled) return;
    const k = mapKey(destination, key);
    // Re-inserted at the back, to keep expiry order.
    this.entries.delete(k);
    this.entries.set(k, { partition, offset, expiresAt: timestamp + this.windowMs });
    if (this.entries.size > this.maxEntries) this.expire(true);
  }

  /** Forgets `key` if it still points at (partition, offset): its append failed. */
  forget(destination: string, key: string, partition: number, offset: number): void {
    const k = mapKey(destination, key);
    const e = this.entries.get(k);
    if (e !== undefined && e.partition === partition && e.offset === offset) this.entries.delete(k);
  }

  /** Forgets every key of a destination (it was deleted). */
  forgetDestination(destination: string): void {
    const prefix = `${destination}\u0000`;
    for (const k of this.entries.keys()) if (k.startsWith(prefix)) this.entries.delete(k);
  }

  /** Removes expired keys, and the oldest ones while over the bound. */
  expire(overBound = false): void {
    const now = this.clock();
    for (const [k, e] of this.entries) {
      const full = overBound && this.entries.size > this.maxEntries;
      if (e.expiresAt > now && !full) break;
      if (e.expiresAt > now) this.evicted++;
      this.entries.delete(k);
    }
  }

  /**
   * Reloads the keys of the last window from the logs: each partition is read from the
   * first batch at or after now - window (time index). A record counts from its own
   * timestamp, so one stamped by its producer in the past expires earlier.
   */
  rebuild(sources: Iterable<DedupeSource>): number {
    if (!this.enabled) return 0;
    const now = this.clock();
    const since = now - this.windowMs;
    const found: Array<{ destination: string; key: string; partition: number; offset: number; timestamp: number }> = [];
    for (const s of sources) {
      let next = s.offsetForTimestamp(since);
      while (next < s.logEndOffset) {
        const chunk = s.read(next, SCAN_CHUNK_BYTES);
        if (chunk.length === 0) break;
        let end = next;
        if (mayCarryIdempotencyKey(chunk)) {
          end = forEachRecord(chunk, next, (r) => {
            if (r.timestamp <= since) return;
            const key = idempotencyKeyOf(r.headers);
            if (key !== undefined) found.push({ destination: s.destination, key, partition: s.partition, offset: r.offset, timestamp: r.timestamp });
          });
        } else {
          end = lastOffsetAfter(chunk, next);
        }
        if (end <= next) break;
        next = end;
      }
    }
    found.sort((a, b) => a.timestamp - b.timestamp);
    for (const f of found) {
      const k = mapKey(f.destination, f.key);
      // The first append of a key is the one a repeat is answered with.
      if (this.entries.has(k)) continue;
      this.remember(f.destination, f.key, f.partition, f.offset, f.timestamp);
    }
    return found.length;
  }
}

function mapKey(destination: string, key: string): string {
  return `${destination}\u0000${key}`;
}

/** The offset after the last whole batch of `chunk`, from batch headers only. */
function lastOffsetAfter(chunk: Buffer, from: number): number {
  let at = 0;
  let next = from;
  while (at + BATCH_HEADER_BYTES <= chunk.length) {
    const size = batchTotalBytes(chunk, at);
    if (at + size > chunk.length) break;
    next = Math.max(next, batchBaseOffset(chunk, at) + batchLastOffsetDelta(chunk, at) + 1);
    at += size;
  }
  return next;
}
