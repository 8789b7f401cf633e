import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { backoffDelay, retry } from './backoff.js';
import { ErrorCode, KmqError } from './errors.js';

const opts = { initialMs: 100, maxMs: 5_000, multiplier: 2, jitter: 0.2 };

describe('backoffDelay', () => {
  it('grows exponentially without jitter and stops at maxMs', () => {
    const noJitter = { ...opts, jitter: 0 };
    expect([0, 1, 2, 3, 10].map((a) => backoffDelay(a, noJitter))).toEqual([100, 200, 400, 800, 5_000]);
  });

  it('stays within ±jitter of the base and never exceeds maxMs', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), fc.double({ min: 0, max: 0.999, noNaN: true }), (attempt, r) => {
        const base = Math.min(opts.maxMs, opts.initialMs * 2 ** attempt);
        const d = backoffDelay(attempt, opts, () => r);
        return d <= opts.maxMs && d >= Math.floor(base * 0.8) && d <= Math.ceil(base * 1.2);
      }),
    );
  });
});

describe('retry', () => {
  const noSleep = { ...opts, sleep: async () => {} };

  it('retries retriable errors until success', async () => {
    let calls = 0;
    const result = await retry(async () => {
      calls++;
      if (calls < 3) throw new KmqError(ErrorCode.NotLeader, 'moved');
      return 'ok';
    }, { ...noSleep, retries: 5 });
    expect(result).toBe('ok');
    expect(calls).toBe(3);
  });

  it('does not retry a non-retriable error', async () => {
    let calls = 0;
    await expect(retry(async () => {
      calls++;
      throw new KmqError(ErrorCode.MessageTooLarge, 'big');
    }, { ...noSleep, retries: 5 })).rejects.toMatchObject({ code: ErrorCode.MessageTooLarge });
    expect(calls).toBe(1);
  });

  it('gives up after `retries` retries with the last error and reports each wait', async () => {
    const delays: number[] = [];
    let calls = 0;
    await expect(retry(async () => {
      calls++;
      throw new KmqError(ErrorCode.ConnectionClosed, `closed ${calls}`);
    }, { ...noSleep, jitter: 0, retries: 2, onRetry: (_e, _a, d) => delays.push(d) })).rejects.toThrow('closed 3');
    expect(calls).toBe(3);
    expect(delays).toEqual([100, 200]);
  });
});
