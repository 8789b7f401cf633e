import { backoffDelay } from '../../lib/backoff.js';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';

/**
 * How long a key waits before it is retried, as in client-go's workqueue: `when`
 * records a failure and returns the delay, `forget` clears the key's history.
 */
export interface RateLimiter {
  when(key: string): number;
  forget(key: string): void;
  /** Failures recorded for `key` since it was last forgotten. */
  numRequeues(key: string): number;
}

/** Options of the per-key exponential limiter. */
export interface ItemBackoffOptions {
  /** Delay after the first failure, ms (default 5). */
  baseMs?: number;
  /** Upper bound of the delay, ms (default 300,000 = 5 min). */
  maxMs?: number;
  /** Growth per failure (default 2). */
  multiplier?: number;
}

/** Per-key exponential backoff: base · multiplier^failures, capped at max; no jitter, so tests can pin it. */
export class ItemExponentialRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();
  private readonly options: { initialMs: number; maxMs: number; multiplier: number; jitter: number };

  constructor(options: ItemBackoffOptions = {}) {
    this.options = { initialMs: options.baseMs ?? 5, maxMs: options.maxMs ?? 300_000, multiplier: options.multiplier ?? 2, jitter: 0 };
    if (!(this.options.initialMs > 0)) throw new RangeError(`baseMs must be > 0, got ${this.options.initialMs}`);
    if (!(this.options.maxMs >= this.options.initialMs)) throw new RangeError(`maxMs must be >= baseMs, got ${this.options.maxMs}`);
    if (!(this.options.multiplier >= 1)) throw new RangeError(`multiplier must be >= 1, got ${this.options.multiplier}`);
  }

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    return backoffDelay(n, this.options);
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/** Options of the overall token bucket. */
export interface BucketOptions {
  /** Tokens added per second (default 10). */
  qps?: number;
  /** Bucket size (default 100). */
  burst?: number;
}

/** One token bucket for all keys: bounds the overall retry rate when many keys fail at once. */
export class BucketRateLimiter implements RateLimiter {
  private readonly qps: number;
  private readonly burst: number;
  private tokens: number;
  private last: number;

  constructor(
    options: BucketOptions = {},
    private readonly clock: Clock = systemClock,
  ) {
    this.qps = options.qps ?? 10;
    this.burst = options.burst ?? 100;
    if (!(this.qps > 0)) throw new RangeError(`qps must be > 0, got ${this.qps}`);
    if (!(this.burst >= 1)) throw new RangeError(`burst must be >= 1, got ${this.burst}`);
    this.tokens = this.burst;
    this.last = clock.now();
  }

  /** Reserves a token and returns how long until it is available (tokens may go negative: reservations queue up). */
  when(_key: string): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.qps) / 1000);
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.qps);
  }

  forget(_key: string): void {}

  numRequeues(_key: string): number {
    return 0;
  }
}

/** The longest delay of several limiters: client-go's DefaultControllerRateLimiter shape. */
export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }

  when(key: string): number {
    return Math.max(0, ...this.limiters.map((l) => l.when(key)));
  }

  forget(key: string): void {
    for (const l of this.limiters) l.forget(key);
  }

  numRequeues(key: string): number {
    return Math.max(0, ...this.limiters.map((l) => l.numRequeues(key)));
  }
}

/** Options of the default controller rate limiter. */
export interface RateLimiterOptions extends ItemBackoffOptions, BucketOptions {}

/** Per-key exponential backoff (5 ms … 5 min) combined with an overall bucket (10 qps, burst 100). */
export function defaultControllerRateLimiter(options: RateLimiterOptions = {}, clock: Clock = systemClock): RateLimiter {
  return new MaxOfRateLimiter(new ItemExponentialRateLimiter(options), new BucketRateLimiter(options, clock));
}
