import { isRetriable } from './errors.js';

/** Exponential backoff with jitter, shared by every retry loop. */
export interface BackoffOptions {
  /** Delay before the first retry, ms. */
  initialMs: number;
  /** Upper bound of any delay, ms. */
  maxMs: number;
  /** Growth factor per attempt (>= 1). */
  multiplier: number;
  /** Random spread as a fraction of the delay, in [0, 1]: 0.2 means ±20 %. */
  jitter: number;
}

/**
 * The delay before retry number `attempt` (0 = first retry):
 * min(maxMs, initialMs · multiplier^attempt), spread by ±jitter and capped at maxMs.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const base = Math.min(options.maxMs, options.initialMs * Math.pow(options.multiplier, Math.max(0, attempt)));
  const spread = base * options.jitter * (2 * random() - 1);
  return Math.max(0, Math.min(options.maxMs, Math.round(base + spread)));
}

export interface RetryOptions extends BackoffOptions {
  /** Retries after the first attempt; 0 = try once. */
  retries: number;
  /** Which errors to retry; default: KmqErrors marked retriable. */
  shouldRetry?: (err: unknown, attempt: number) => boolean;
  /** Called before each wait, e.g. to log or to drop a cached route. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Injectable for tests that need no real timers. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `fn` until it succeeds, a non-retriable error occurs, or retries run out (then the last error is thrown). */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const shouldRetry = options.shouldRetry ?? isRetriable;
  const wait = options.sleep ?? sleep;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= options.retries || !shouldRetry(err, attempt)) throw err;
      const delay = backoffDelay(attempt, options, options.random);
      options.onRetry?.(err, attempt, delay);
      await wait(delay);
    }
  }
}
