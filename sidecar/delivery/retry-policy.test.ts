import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { HandlerOutcome, compileRetryPolicy } from './retry-policy.js';
import type { RetryPolicy } from './retry-policy.js';

function invalid(p: RetryPolicy): KmqError {
  try {
    compileRetryPolicy(p, 'dlqPolicy.standard');
  } catch (err) {
    expect(err).toBeInstanceOf(KmqError);
    expect((err as KmqError).code).toBe(ErrorCode.InvalidConfig);
    return err as KmqError;
  }
  throw new Error(`accepted ${JSON.stringify(p)}`);
}

describe('compileRetryPolicy', () => {
  it('fills every default', () => {
    const p = compileRetryPolicy();
    expect({ ...p }).toMatchObject({ maxAttempts: 5, initialBackoffMs: 200, maxBackoffMs: 30_000, multiplier: 2, jitter: 0.2, handlerTimeoutMs: 30_000 });
  });

  it('parses durations', () => {
    const p = compileRetryPolicy({ initialBackoffMs: '250ms', maxBackoffMs: '1m', handlerTimeoutMs: '5s' });
    expect([p.initialBackoffMs, p.maxBackoffMs, p.handlerTimeoutMs]).toEqual([250, 60_000, 5_000]);
  });

  it('names the bad setting', () => {
    expect(invalid({ maxAttempts: 0 }).message).toContain('dlqPolicy.standard.maxAttempts');
    expect(invalid({ maxAttempts: 2.5 }).message).toContain('dlqPolicy.standard.maxAttempts');
    expect(invalid({ initialBackoffMs: 'soon' }).message).toContain('dlqPolicy.standard.initialBackoffMs');
    expect(invalid({ initialBackoffMs: -1 }).message).toContain('dlqPolicy.standard.initialBackoffMs');
    expect(invalid({ maxBackoffMs: '100ms' }).message).toContain('dlqPolicy.standard.maxBackoffMs');
    expect(invalid({ maxBackoffMs: '30d' }).message).toContain('dlqPolicy.standard.maxBackoffMs');
    expect(invalid({ multiplier: 0.5 }).message).toContain('dlqPolicy.standard.multiplier');
    expect(invalid({ jitter: 1.5 }).message).toContain('dlqPolicy.standard.jitter');
    expect(invalid({ jitter: Number.NaN }).message).toContain('dlqPolicy.standard.jitter');
    expect(invalid({ handlerTimeoutMs: 0 }).message).toContain('dlqPolicy.standard.handlerTimeoutMs');
  });

  it('is immutable', () => {
    const p = compileRetryPolicy();
    expect(() => {
      (p as { maxAttempts: number }).maxAttempts = 100;
    }).toThrow(TypeError);
  });
});

describe('delayForAttempt', () => {
  it('starts at initialBackoffMs and multiplies per retry without jitter', () => {
    const p = compileRetryPolicy({ initialBackoffMs: 200, maxBackoffMs: 5_000, multiplier: 3, jitter: 0 });
    expect([1, 2, 3, 4, 5].map((a) => p.delayForAttempt(a))).toEqual([200, 600, 1_800, 5_000, 5_000]);
  });

  const policies = fc.record({
    initialBackoffMs: fc.integer({ min: 1, max: 10_000 }),
    extraMaxMs: fc.integer({ min: 0, max: 100_000 }),
    multiplier: fc.double({ min: 1, max: 5, noNaN: true }),
    jitter: fc.double({ min: 0, max: 1, noNaN: true }),
  });

  it('grows by the multiplier within ±jitter and never exceeds maxBackoffMs', () => {
    fc.assert(
      fc.property(policies, fc.integer({ min: 1, max: 60 }), fc.double({ min: 0, max: 0.999_999, noNaN: true }), (q, attempt, r) => {
        const p = compileRetryPolicy({ ...q, maxBackoffMs: q.initialBackoffMs + q.extraMaxMs });
        const base = Math.min(p.maxBackoffMs, p.initialBackoffMs * p.multiplier ** (attempt - 1));
        const d = p.delayForAttempt(attempt, () => r);
        expect(d).toBeLessThanOrEqual(p.maxBackoffMs);
        expect(d).toBeGreaterThanOrEqual(Math.floor(base * (1 - p.jitter)));
        expect(d).toBeLessThanOrEqual(Math.ceil(base * (1 + p.jitter)));
      }),
    );
  });

  it('never shrinks from one retry to the next when jitter is 0', () => {
    fc.assert(
      fc.property(policies, fc.integer({ min: 1, max: 60 }), (q, attempt) => {
        const p = compileRetryPolicy({ ...q, jitter: 0, maxBackoffMs: q.initialBackoffMs + q.extraMaxMs });
        const a = p.delayForAttempt(attempt);
        const b = p.delayForAttempt(attempt + 1);
        expect(b).toBeGreaterThanOrEqual(a);
        if (b < p.maxBackoffMs) expect(Math.abs(b - a * p.multiplier)).toBeLessThanOrEqual(p.multiplier);
      }),
    );
  });
});

describe('decide', () => {
  const failing = [HandlerOutcome.Failure, HandlerOutcome.Timeout, HandlerOutcome.Retry] as const;

  it('acks on success at any attempt', () => {
    const p = compileRetryPolicy();
    expect(p.decide(1, HandlerOutcome.Success)).toEqual({ action: 'done' });
    expect(p.decide(99, HandlerOutcome.Success)).toEqual({ action: 'done' });
  });

  it('retries a handler that fails twice, then succeeds on the third call, with growing delays', () => {
    const p = compileRetryPolicy({ maxAttempts: 3, jitter: 0 });
    expect(p.decide(1, HandlerOutcome.Failure)).toEqual({ action: 'retry', delayMs: 200, nextAttempt: 2 });
    expect(p.decide(2, HandlerOutcome.Timeout)).toEqual({ action: 'retry', delayMs: 400, nextAttempt: 3 });
    expect(p.decide(3, HandlerOutcome.Success)).toEqual({ action: 'done' });
    expect(p.decide(3, HandlerOutcome.Failure)).toEqual({ action: 'dead-letter', reason: 'max-attempts' });
  });

  it('dead-letters at once when asked, even on the first attempt', () => {
    expect(compileRetryPolicy().decide(1, HandlerOutcome.DeadLetter)).toEqual({ action: 'dead-letter', reason: 'requested' });
  });

  it('uses the delay the application asked for, which still uses up an attempt', () => {
    const p = compileRetryPolicy({ maxAttempts: 2 });
    expect(p.decide(1, HandlerOutcome.Retry, 5_000)).toEqual({ action: 'retry', delayMs: 5_000, nextAttempt: 2 });
    expect(p.decide(2, HandlerOutcome.Retry, 5_000)).toEqual({ action: 'dead-letter', reason: 'max-attempts' });
  });

  it('retries below maxAttempts and dead-letters at or beyond it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 200 }), fc.constantFrom(...failing), (maxAttempts, attempt, outcome) => {
        const p = compileRetryPolicy({ maxAttempts });
        const d = p.decide(attempt, outcome);
        if (attempt >= maxAttempts) expect(d).toEqual({ action: 'dead-letter', reason: 'max-attempts' });
        else expect(d).toMatchObject({ action: 'retry', nextAttempt: attempt + 1 });
      }),
    );
  });

  it('calls the handler exactly maxAttempts times for a message that always fails', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), (maxAttempts) => {
        const p = compileRetryPolicy({ maxAttempts });
        let attempt = 1;
        let calls = 0;
        for (;;) {
          calls++;
          const d = p.decide(attempt, HandlerOutcome.Failure);
          if (d.action !== 'retry') break;
          attempt = d.nextAttempt;
        }
        expect(calls).toBe(maxAttempts);
      }),
    );
  });
});
