/**
 * The processed-key store the broker keeps for consumer idempotency (effectively-once
 * subscriptions). A key lives in a scope (the subscription name) and is absent,
 * claimed by one owner until a short expiry, or processed until a long one:
 *
 *   claim(owner, claimTtl)   processed -> 'processed'; claimed by another -> 'busy';
 *                            claimed by owner -> 'claimed', expiry renewed;
 *                            absent or expired -> 'claimed' until now + claimTtl
 *   complete(owner, ttl)     -> processed until now + ttl (never shortened), whoever holds it
 *   release(owner)           -> absent if claimed by owner; otherwise no change
 *
 * Journal: every change is one record of the compacted topic `__processed_keys`,
 * key = scope NUL key (UTF-8), value = [state u8][expiresAt float64 BE][owner UTF-8], a
 * null value (tombstone) for a key that is gone. The latest record per key wins;
 * start() replays them and tombstones what expired meanwhile.
 *
 * Durability: complete() resolves once its record is durable (the source is acked
 * right after). claim() and release() are journaled too, in order, but answered
 * without waiting for the flush: a claim survives a broker restart (until it
 * expires) once its write reached the log, and one lost in a crash only weakens the
 * concurrency guard, never the processed record.
 *
 * State changes apply in memory synchronously, so each call is atomic per key; a
 * claim arriving while a complete is being flushed already sees 'processed'.
 * Expired entries read as absent at once; tick() removes them (at most every
 * sweepIntervalMs, a scan of every entry) and writes their tombstones.
 *
 * Event-loop only.
 */
import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';

export type ClaimOutcome = 'claimed' | 'processed' | 'busy';

const CLAIMED = 0;
const PROCESSED = 1;
type State = typeof CLAIMED | typeof PROCESSED;

const MAX_SCOPE_CHARS = 256;
const MAX_KEY_BYTES = 1024;
const MAX_OWNER_CHARS = 256;
const VALUE_HEADER_BYTES = 9;

interface Entry {
  state: State;
  owner: string;
  expiresAt: number;
}

/** One journal record: a null value deletes the key. */
export interface JournalEntry {
  key: Buffer;
  value: Buffer | null;
}

/** Where the store's changes are kept (a CompactedStore in the broker). */
export interface ProcessedKeysJournal {
  /** Appends every entry in order; resolves once durable. */
  append(entries: JournalEntry[]): Promise<void>;
  /** Every entry from the start, in order. */
  load(): Iterable<JournalEntry>;
}

export interface ProcessedKeysOptions {
  journal: ProcessedKeysJournal;
  logger: Logger;
  /** Time source, ms. Default Date.now. */
  clock?: () => number;
  /** Expired entries are removed (and tombstoned) at most this often, ms. Default 1000. */
  sweepIntervalMs?: number;
}

/** The broker's processed-key store (see the file header). */
export class ProcessedKeys {
  private readonly entries = new Map<string, Entry>();
  private readonly journal: ProcessedKeysJournal;
  private readonly logger: Logger;
  private readonly clock: () => number;
  private readonly sweepIntervalMs: number;
  private nextSweepAt = 0;

  constructor(o: ProcessedKeysOptions) {
    this.journal = o.journal;
    this.logger = o.logger;
    this.clock = o.clock ?? Date.now;
    this.sweepIntervalMs = o.sweepIntervalMs ?? 1000;
  }

  /** Replays the journal; what expired while the broker was down is tombstoned. */
  async start(): Promise<void> {
    for (const { key, value } of this.journal.load()) {
      const k = key.toString('utf8');
      if (value === null) this.entries.delete(k);
      else this.entries.set(k, decodeValue(value));
    }
    const now = this.clock();
    const gone = this.removeExpired(now);
    this.nextSweepAt = now + this.sweepIntervalMs;
    if (gone.length > 0) await this.journal.append(gone);
    this.logger.info({ keys: this.entries.size, expired: gone.length }, 'Processed keys loaded');
  }

  /** Keys held, expired ones not yet removed included. */
  get size(): number {
    return this.entries.size;
  }

  claim(scope: string, key: string, owner: string, claimTtlMs: number): ClaimOutcome {
    const k = entryKey(scope, key);
    checkOwner(owner);
    checkTtl('claim_ttl_ms', claimTtlMs);
    const now = this.clock();
    const e = this.live(k, now);
    if (e !== undefined && e.state === PROCESSED) return 'processed';
    if (e !== undefined && e.owner !== owner) return 'busy';
    const next: Entry = { state: CLAIMED, owner, expiresAt: now + claimTtlMs };
    this.entries.set(k, next);
    this.write(k, next);
    return 'claimed';
  }

  /** Resolves once the processed record is durable. */
  complete(scope: string, key: string, owner: string, ttlMs: number): Promise<void> {
    const k = entryKey(scope, key);
    checkOwner(owner);
    checkTtl('ttl_ms', ttlMs);
    const now = this.clock();
    const e = this.live(k, now);
    const expiresAt = e !== undefined && e.state === PROCESSED ? Math.max(e.expiresAt, now + ttlMs) : now + ttlMs;
    const next: Entry = { state: PROCESSED, owner, expiresAt };
    this.entries.set(k, next);
    return this.journal.append([{ key: Buffer.from(k, 'utf8'), value: encodeValue(next) }]);
  }

  release(scope: string, key: string, owner: string): void {
    const k = entryKey(scope, key);
    checkOwner(owner);
    const e = this.live(k, this.clock());
    if (e === undefined || e.state !== CLAIMED || e.owner !== owner) return;
    this.entries.delete(k);
    this.write(k, null);
  }

  /** The live state of a key, for inspection. */
  peek(scope: string, key: string): { state: 'claimed' | 'processed'; owner: string; expiresAt: number } | undefined {
    const e = this.live(entryKey(scope, key), this.clock());
    if (e === undefined) return undefined;
    return { state: e.state === PROCESSED ? 'processed' : 'claimed', owner: e.owner, expiresAt: e.expiresAt };
  }

  /** Called on the broker's tick: removes expired entries and tombstones them. */
  tick(now: number = this.clock()): number {
    if (now < this.nextSweepAt) return 0;
    this.nextSweepAt = now + this.sweepIntervalMs;
    const gone = this.removeExpired(now);
    if (gone.length > 0) {
      this.journal.append(gone).catch((err: unknown) => this.logger.error({ err }, 'Writing processed-key tombstones failed'));
    }
    return gone.length;
  }

  private removeExpired(now: number): JournalEntry[] {
    const gone: JournalEntry[] = [];
    for (const [k, e] of this.entries) {
      if (e.expiresAt > now) continue;
      this.entries.delete(k);
      gone.push({ key: Buffer.from(k, 'utf8'), value: null });
    }
    return gone;
  }

  private live(k: string, now: number): Entry | undefined {
    const e = this.entries.get(k);
    // Left in place: the sweep removes it and writes its tombstone.
    return e === undefined || e.expiresAt <= now ? undefined : e;
  }

  /** Journals a claim or a release without waiting for the flush (see the file header). */
  private write(k: string, e: Entry | null): void {
    this.journal.append([{ key: Buffer.from(k, 'utf8'), value: e === null ? null : encodeValue(e) }]).catch((err: unknown) => {
      this.logger.error({ err }, 'Journaling a processed-key claim failed');
    });
  }
}

function entryKey(scope: string, key: string): string {
  if (typeof scope !== 'string' || scope === '' || scope.length > MAX_SCOPE_CHARS || scope.includes('\u0000')) {
    throw new KmqError(ErrorCode.InvalidRequest, `scope must be 1-${MAX_SCOPE_CHARS} characters without NUL (the subscription name)`, { scope });
  }
  if (typeof key !== 'string' || key === '' || Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new KmqError(ErrorCode.InvalidRequest, `key must be 1-${MAX_KEY_BYTES} bytes`, { scope });
  }
  return `${scope}\u0000${key}`;
}

function checkOwner(owner: string): void {
  if (typeof owner !== 'string' || owner === '' || owner.length > MAX_OWNER_CHARS) {
    throw new KmqError(ErrorCode.InvalidRequest, `owner must be 1-${MAX_OWNER_CHARS} characters`);
  }
}

function checkTtl(name: string, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new KmqError(ErrorCode.InvalidRequest, `${name} must be a positive whole number of milliseconds (got ${ms})`);
}

function encodeValue(e: Entry): Buffer {
  const owner = Buffer.from(e.owner, 'utf8');
  const b = Buffer.allocUnsafe(VALUE_HEADER_BYTES + owner.length);
  b.writeUInt8(e.state, 0);
  b.writeDoubleBE(e.expiresAt, 1);
  owner.copy(b, VALUE_HEADER_BYTES);
  return b;
}

function decodeValue(b: Buffer): Entry {
  if (b.length < VALUE_HEADER_BYTES || (b[0] !== CLAIMED && b[0] !== PROCESSED)) {
    throw new KmqError(ErrorCode.CorruptMessage, `Processed-key record of ${b.length} bytes is malformed`);
  }
  return { state: b[0] as State, expiresAt: b.readDoubleBE(1), owner: b.toString('utf8', VALUE_HEADER_BYTES) };
}
