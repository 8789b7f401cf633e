import { backoffDelay } from '../../lib/backoff.js';
import type { BackoffOptions } from '../../lib/backoff.js';
import { parseDurationMs } from '../../lib/duration.js';
import { invalidSetting, intSetting, numberSetting } from '../../client/settings.js';

/**
 * How a subscription retries a message its handler did not handle (a DLQPolicy).
 * Durations take milliseconds or strings such as "200ms", "30s", "5m".
 */
export interface RetryPolicy {
  /** Handler calls in total, the first delivery included, before the message is dead-lettered. Default 5. */
  maxAttempts?: number;
  /** Delay before the first retry. Default 200 ms. */
  initialBackoffMs?: number | string;
  /** Upper bound of any retry delay. Default 30 s. */
  maxBackoffMs?: number | string;
  /** Growth of the delay per retry (>= 1). Default 2. */
  multiplier?: number;
  /** Random spread of each delay as a fraction, in [0, 1]: 0.2 means ±20 %. Default 0.2. */
  jitter?: number;
  /** A handler that has not answered after this long has failed the attempt. Default 30 s. */
  handlerTimeoutMs?: number | string;
}

/** What one handler attempt came to. Every outcome but `success` uses up an attempt. */
export const HandlerOutcome = {
  /** Handled: ack the source. */
  Success: 'success',
  /** The handler threw or answered with an error. */
  Failure: 'failure',
  /** The handler did not answer within handlerTimeoutMs. */
  Timeout: 'timeout',
  /** The application asked for a retry, optionally after a delay of its own. */
  Retry: 'retry',
  /** The application asked to dead-letter the message now. */
  DeadLetter: 'dead-letter',
} as const;
export type HandlerOutcome = (typeof HandlerOutcome)[keyof typeof HandlerOutcome];

/** Why a message goes to the dead-letter target. */
export const DeadLetterReason = {
  /** maxAttempts attempts failed. */
  MaxAttempts: 'max-attempts',
  /** The application answered DEAD_LETTER. */
  Requested: 'requested',
} as const;
export type DeadLetterReason = (typeof DeadLetterReason)[keyof typeof DeadLetterReason];

/** What to do after an attempt: ack, retry after `delayMs` as attempt `nextAttempt`, or dead-letter then ack. */
export type RetryDecision =
  | { readonly action: 'done' }
  | { readonly action: 'retry'; readonly delayMs: number; readonly nextAttempt: number }
  | { readonly action: 'dead-letter'; readonly reason: DeadLetterReason };

const DONE: RetryDecision = Object.freeze({ action: 'done' });
const DEAD_LETTER_MAX: RetryDecision = Object.freeze({ action: 'dead-letter', reason: DeadLetterReason.MaxAttempts });
const DEAD_LETTER_REQUESTED: RetryDecision = Object.freeze({ action: 'dead-letter', reason: DeadLetterReason.Requested });

/** The longest delay a Node timer keeps (about 24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A validated RetryPolicy with every default filled in. Immutable; safe to share between deliveries. */
export class CompiledRetryPolicy {
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly multiplier: number;
  readonly jitter: number;
  readonly handlerTimeoutMs: number;
  private readonly backoff: BackoffOptions;

  /** @internal Use compileRetryPolicy(). */
  constructor(p: Omit<CompiledRetryPolicy, 'delayForAttempt' | 'decide'>) {
    this.maxAttempts = p.maxAttempts;
    this.initialBackoffMs = p.initialBackoffMs;
    this.maxBackoffMs = p.maxBackoffMs;
    this.multiplier = p.multiplier;
    this.jitter = p.jitter;
    this.handlerTimeoutMs = p.handlerTimeoutMs;
    this.backoff = Object.freeze({ initialMs: p.initialBackoffMs, maxMs: p.maxBackoffMs, multiplier: p.multiplier, jitter: p.jitter });
    Object.freeze(this);
  }

  /**
   * The delay before retry number `attempt` (1 = the first retry, after the first
   * delivery failed): initialBackoffMs · multiplier^(attempt-1), spread by ±jitter,
   * never above maxBackoffMs.
   */
  delayForAttempt(attempt: number, random: () => number = Math.random): number {
    return backoffDelay(attempt - 1, this.backoff, random);
  }

  /**
   * What follows attempt number `attempt` (1 = the first delivery) ending in `outcome`.
   * A failed attempt is retried while attempts remain, after delayForAttempt(attempt),
   * or after `requestedDelayMs` when the application asked for a retry with a delay
   * of its own; the last failed attempt, or an explicit dead-letter, dead-letters.
   */
  decide(attempt: number, outcome: HandlerOutcome, requestedDelayMs?: number, random: () => number = Math.random): RetryDecision {
    if (outcome === HandlerOutcome.Success) return DONE;
    if (outcome === HandlerOutcome.DeadLetter) return DEAD_LETTER_REQUESTED;
    if (attempt >= this.maxAttempts) return DEAD_LETTER_MAX;
    const delayMs =
      outcome === HandlerOutcome.Retry && requestedDelayMs !== undefined
        ? Math.min(MAX_TIMER_MS, Math.max(0, Math.round(requestedDelayMs)))
        : this.delayForAttempt(attempt, random);
    return { action: 'retry', delayMs, nextAttempt: attempt + 1 };
  }
}

function durationSetting(setting: string, value: number | string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' && typeof value !== 'string') throw invalidSetting(setting, 'must be a duration such as 200ms or 30s', value);
  const ms = parseDurationMs(value, setting);
  if (!Number.isInteger(ms) || ms < min || ms > MAX_TIMER_MS) {
    throw invalidSetting(setting, `must be a whole number of milliseconds in [${min}, ${MAX_TIMER_MS}]`, value);
  }
  return ms;
}

/**
 * Validates `p` once and fills every default. An invalid setting throws
 * KmqError(InvalidConfig) whose message names it, prefixed by `name`.
 */
export function compileRetryPolicy(p: RetryPolicy = {}, name = 'retryPolicy'): CompiledRetryPolicy {
  const maxAttempts = intSetting(`${name}.maxAttempts`, p.maxAttempts, 5, 1, 1_000_000);
  const initialBackoffMs = durationSetting(`${name}.initialBackoffMs`, p.initialBackoffMs, 200, 0);
  const maxBackoffMs = durationSetting(`${name}.maxBackoffMs`, p.maxBackoffMs, Math.max(30_000, initialBackoffMs), 0);
  if (maxBackoffMs < initialBackoffMs) {
    throw invalidSetting(`${name}.maxBackoffMs`, `must be at least ${name}.initialBackoffMs (${initialBackoffMs} ms)`, p.maxBackoffMs);
  }
  const multiplier = numberSetting(`${name}.multiplier`, p.multiplier, 2, 1, 1_000);
  const jitter = numberSetting(`${name}.jitter`, p.jitter, 0.2, 0, 1);
  const handlerTimeoutMs = durationSetting(`${name}.handlerTimeoutMs`, p.handlerTimeoutMs, 30_000, 1);
  return new CompiledRetryPolicy({ maxAttempts, initialBackoffMs, maxBackoffMs, multiplier, jitter, handlerTimeoutMs });
}
