/**
 * Consumer-side idempotency for effectively-once subscriptions.
 *
 * A processed-key store is shared by every sidecar of one subscription. Each key is
 * in one of three states: absent, claimed (by one owner, until a short expiry), or
 * processed (until a long expiry, the subscription's dedupe TTL, default 24 h). An
 * owner names one handling of one delivery, not a sidecar, so two deliveries of one
 * key inside one sidecar also exclude each other.
 *
 *   claim(key, owner, claimTtlMs)
 *     processed, unexpired            -> 'processed'  (nothing changes)
 *     claimed by another, unexpired   -> 'busy'       (nothing changes)
 *     claimed by owner, unexpired     -> 'claimed'    (expiry renewed: a repeated call is harmless)
 *     absent or expired               -> 'claimed'    (claimed by owner until now + claimTtlMs)
 *   complete(key, owner, ttlMs)       -> processed until now + ttlMs, whoever holds the claim:
 *                                        the handler succeeded, so the record is the truth.
 *   release(key, owner)               -> absent if claimed by owner; otherwise nothing changes,
 *                                        so a late release never drops another's claim or a
 *                                        processed record.
 * Each call is atomic per key (linearizable). complete() must be durable before it
 * resolves, since the source is acked right after; a lost claim only weakens the
 * concurrency guard, never the processed record.
 *
 * Protocol (IdempotentHandler): claim -> 'processed': skip, count a duplicate, ack ->
 * 'busy': nack with a short delay (not an attempt) -> 'claimed': run the handler ->
 * success: complete, then ack -> failure: release, then nack (the retry policy
 * decides the delay or the dead-letter).
 *
 * Why not "SET NX before processing": that records the key before the handler runs,
 * so a sidecar that dies mid-handling leaves the key marked and the redelivery is
 * skipped — the message is lost. Here the key is marked processed only after the
 * handler succeeded; a sidecar that dies mid-handling leaves only a claim, which
 * expires, and the redelivery is handled. A sidecar that dies after complete() but
 * before the ack causes a redelivery that is skipped as a duplicate.
 *
 * The one window left: a crash after the handler's side effect but before complete()
 * is recorded; the redelivery runs the handler again. Closing it needs the side effect
 * and the record in one transaction, which only the application can do.
 *
 * claimTtlMs must exceed the handler timeout: a claim that expires while its handler
 * still runs lets another sidecar run the same key. When the engine stops waiting for
 * a handler (timeout), handle() still completes or releases once the handler settles,
 * so a late success is recorded and its redelivery skipped.
 */
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { intSetting, invalidSetting, stringSetting } from '../../client/settings.js';

/** The answer of a claim: run the handler, skip it (already done), or come back later (another handler holds the key). */
export type ClaimResult = 'claimed' | 'processed' | 'busy';

/**
 * Where processed keys are kept, shared by all sidecars of one subscription (later
 * kept by the broker, replicated). Semantics in this file's header.
 */
export interface ProcessedKeyStore {
  /** Claims `key` for `owner` for claimTtlMs unless it is processed or claimed by another owner. */
  claim(key: string, owner: string, claimTtlMs: number): Promise<ClaimResult>;
  /** Records `key` as processed for ttlMs; durable when it resolves. */
  complete(key: string, owner: string, ttlMs: number): Promise<void>;
  /** Drops `owner`'s claim on `key`, if it still holds it. */
  release(key: string, owner: string): Promise<void>;
}

export interface IdempotentHandlerOptions {
  /** Names this sidecar (e.g. the pod name); owners are `<instance>#<n>`. */
  instance: string;
  /** The handler timeout of the subscription's retry policy, if any: claimTtlMs must exceed it. */
  handlerTimeoutMs?: number;
  /** How long a claim holds without complete or release. Default twice handlerTimeoutMs, else 60 s. */
  claimTtlMs?: number;
  /** How long a processed key is remembered (the dedupe window). Default 24 h. */
  processedTtlMs?: number;
  /** Delay of the redelivery of a key another handler holds. Default 1 s. */
  busyRetryDelayMs?: number;
}

/** What handle() came to, and how to settle the source. */
export type IdempotentOutcome<T> =
  /** The handler ran and succeeded; the key is recorded (unless completeError): ack. */
  | { readonly kind: 'handled'; readonly settle: 'ack'; readonly result: T; readonly completeError?: unknown }
  /** The key was processed before; the handler did not run: ack. */
  | { readonly kind: 'duplicate'; readonly settle: 'ack' }
  /** Another handler holds the key; the handler did not run: nack after delayMs, not counted as an attempt. */
  | { readonly kind: 'busy'; readonly settle: 'nack'; readonly delayMs: number }
  /** The store could not be reached; the handler did not run: nack after delayMs, not counted as an attempt. */
  | { readonly kind: 'store-error'; readonly settle: 'nack'; readonly delayMs: number; readonly error: unknown }
  /** The handler failed (threw, or returned a result `isSuccess` refused); the claim is released: nack per the retry policy. */
  | { readonly kind: 'failed'; readonly settle: 'nack'; readonly error: unknown; readonly result: T | undefined };

/** Outcome counts since creation, for metrics. */
export interface IdempotencyCounts {
  handled: number;
  duplicates: number;
  busy: number;
  failed: number;
  storeErrors: number;
}

const DUPLICATE = Object.freeze({ kind: 'duplicate', settle: 'ack' } as const);
const DAY_MS = 86_400_000;

/** Runs a handler at most once per key across every sidecar sharing `store` (see the file header). */
export class IdempotentHandler {
  readonly instance: string;
  readonly claimTtlMs: number;
  readonly processedTtlMs: number;
  readonly busyRetryDelayMs: number;
  readonly counts: IdempotencyCounts = { handled: 0, duplicates: 0, busy: 0, failed: 0, storeErrors: 0 };
  private readonly busy: IdempotentOutcome<never>;
  private seq = 0;

  constructor(
    private readonly store: ProcessedKeyStore,
    o: IdempotentHandlerOptions,
  ) {
    this.instance = stringSetting('idempotency.instance', o.instance, '');
    if (o.instance === undefined) throw invalidSetting('idempotency.instance', 'is required', o.instance);
    const timeout = o.handlerTimeoutMs === undefined ? undefined : intSetting('idempotency.handlerTimeoutMs', o.handlerTimeoutMs, 0, 1);
    this.claimTtlMs = intSetting('idempotency.claimTtlMs', o.claimTtlMs, timeout === undefined ? 60_000 : 2 * timeout, 1);
    if (timeout !== undefined && this.claimTtlMs <= timeout) {
      throw invalidSetting('idempotency.claimTtlMs', `must exceed the handler timeout (${timeout} ms)`, o.claimTtlMs);
    }
    this.processedTtlMs = intSetting('idempotency.processedTtlMs', o.processedTtlMs, DAY_MS, 1);
    this.busyRetryDelayMs = intSetting('idempotency.busyRetryDelayMs', o.busyRetryDelayMs, 1_000, 0);
    this.busy = Object.freeze({ kind: 'busy', settle: 'nack', delayMs: this.busyRetryDelayMs });
  }

  /**
   * Handles one delivery of `key`. `handler` runs only when this call wins the claim;
   * it succeeds when it resolves and `isSuccess` (default: always) accepts its result.
   * Never rejects for a handler or store failure: the outcome says what happened.
   */
  async handle<T>(key: string, handler: () => Promise<T> | T, isSuccess?: (result: T) => boolean): Promise<IdempotentOutcome<T>> {
    if (typeof key !== 'string' || key === '') throw new KmqError(ErrorCode.InvalidRequest, 'An effectively-once delivery needs a non-empty idempotency key');
    const owner = `${this.instance}#${++this.seq}`;
    let claim: ClaimResult;
    try {
      claim = await this.store.claim(key, owner, this.claimTtlMs);
    } catch (error) {
      this.counts.storeErrors++;
      return { kind: 'store-error', settle: 'nack', delayMs: this.busyRetryDelayMs, error };
    }
    if (claim === 'processed') {
      this.counts.duplicates++;
      return DUPLICATE;
    }
    if (claim === 'busy') {
      this.counts.busy++;
      return this.busy;
    }

    let result: T | undefined;
    let error: unknown;
    let ok = false;
    try {
      result = await handler();
      ok = isSuccess === undefined || isSuccess(result);
    } catch (err) {
      error = err;
    }
    if (!ok) {
      this.counts.failed++;
      try {
        await this.store.release(key, owner);
      } catch {
        // The claim expires on its own; the redelivery waits for it as 'busy'.
        this.counts.storeErrors++;
      }
      return { kind: 'failed', settle: 'nack', error, result };
    }
    this.counts.handled++;
    try {
      await this.store.complete(key, owner, this.processedTtlMs);
    } catch (completeError) {
      // Ack anyway: a nack would redeliver into a second run once the claim expires,
      // while the ack ends this message and the claim still guards near duplicates.
      this.counts.storeErrors++;
      return { kind: 'handled', settle: 'ack', result: result as T, completeError };
    }
    return { kind: 'handled', settle: 'ack', result: result as T };
  }
}

const CLAIMED = 0;
const PROCESSED = 1;

interface KeyEntry {
  state: typeof CLAIMED | typeof PROCESSED;
  owner: string;
  expiresAt: number;
}

/** The state of one key in a MemoryProcessedKeyStore, for inspection. */
export type KeyState = { state: 'claimed'; owner: string; expiresAt: number } | { state: 'processed'; expiresAt: number };

export interface MemoryProcessedKeyStoreOptions {
  /** Time source, ms. Default Date.now. */
  clock?: () => number;
  /** Expired keys are removed by a scan at most this often. Default 10 s. */
  sweepIntervalMs?: number;
}

/**
 * A ProcessedKeyStore in one process's memory: for `kmq dev` (one sidecar) and tests.
 * Not shared between processes and lost on restart. Expired keys read as absent at
 * once and are removed by a periodic scan driven by calls.
 */
export class MemoryProcessedKeyStore implements ProcessedKeyStore {
  private readonly keys = new Map<string, KeyEntry>();
  private readonly clock: () => number;
  private readonly sweepIntervalMs: number;
  private nextSweepAt: number;

  constructor(o: MemoryProcessedKeyStoreOptions = {}) {
    this.clock = o.clock ?? Date.now;
    this.sweepIntervalMs = intSetting('processedKeyStore.sweepIntervalMs', o.sweepIntervalMs, 10_000, 0);
    this.nextSweepAt = this.clock() + this.sweepIntervalMs;
  }

  claim(key: string, owner: string, claimTtlMs: number): Promise<ClaimResult> {
    checkTtl('claimTtlMs', claimTtlMs);
    const now = this.now();
    const e = this.live(key, now);
    if (e === undefined) {
      this.keys.set(key, { state: CLAIMED, owner, expiresAt: now + claimTtlMs });
      return Promise.resolve('claimed');
    }
    if (e.state === PROCESSED) return Promise.resolve('processed');
    if (e.owner !== owner) return Promise.resolve('busy');
    e.expiresAt = now + claimTtlMs;
    return Promise.resolve('claimed');
  }

  complete(key: string, owner: string, ttlMs: number): Promise<void> {
    checkTtl('ttlMs', ttlMs);
    const now = this.now();
    const e = this.keys.get(key);
    if (e === undefined) this.keys.set(key, { state: PROCESSED, owner, expiresAt: now + ttlMs });
    else {
      e.expiresAt = e.state === PROCESSED && e.expiresAt > now ? Math.max(e.expiresAt, now + ttlMs) : now + ttlMs;
      e.state = PROCESSED;
      e.owner = owner;
    }
    return Promise.resolve();
  }

  release(key: string, owner: string): Promise<void> {
    const e = this.live(key, this.now());
    if (e !== undefined && e.state === CLAIMED && e.owner === owner) this.keys.delete(key);
    return Promise.resolve();
  }

  /** The live state of `key`, or undefined when absent or expired. */
  peek(key: string): KeyState | undefined {
    const e = this.live(key, this.clock());
    if (e === undefined) return undefined;
    return e.state === PROCESSED ? { state: 'processed', expiresAt: e.expiresAt } : { state: 'claimed', owner: e.owner, expiresAt: e.expiresAt };
  }

  /** Keys held, expired ones not yet removed included. */
  get size(): number {
    return this.keys.size;
  }

  /** Removes every expired key now. */
  sweep(now: number = this.clock()): void {
    for (const [key, e] of this.keys) if (e.expiresAt <= now) this.keys.delete(key);
    this.nextSweepAt = now + this.sweepIntervalMs;
  }

  private now(): number {
    const now = this.clock();
    if (now >= this.nextSweepAt) this.sweep(now);
    return now;
  }

  private live(key: string, now: number): KeyEntry | undefined {
    const e = this.keys.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= now) {
      this.keys.delete(key);
      return undefined;
    }
    return e;
  }
}

function checkTtl(name: string, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new KmqError(ErrorCode.InvalidRequest, `${name} must be a positive whole number of milliseconds (got ${ms})`);
}
