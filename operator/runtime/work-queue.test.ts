import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from './clock.js';
import { BucketRateLimiter, ItemExponentialRateLimiter, MaxOfRateLimiter } from './rate-limiter.js';
import { WorkQueue } from './work-queue.js';

function queue(opts: { baseMs?: number; maxMs?: number; qps?: number; burst?: number } = {}): { q: WorkQueue; clock: ManualClock } {
  const clock = new ManualClock();
  const rateLimiter = new MaxOfRateLimiter(
    new ItemExponentialRateLimiter({ baseMs: opts.baseMs ?? 5, maxMs: opts.maxMs ?? 1000 }),
    new BucketRateLimiter({ qps: opts.qps ?? 1000, burst: opts.burst ?? 1000 }, clock),
  );
  return { q: new WorkQueue({ clock, rateLimiter }), clock };
}

describe('WorkQueue', () => {
  it('hands out a key once however often it is added while queued, in FIFO order', async () => {
    const { q } = queue();
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('a');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.length).toBe(0);
  });

  it('never hands the same key to two workers: a key added while processed comes back after done', async () => {
    const { q } = queue();
    q.add('a');
    const first = await q.get();
    expect(first).toBe('a');
    q.add('a');
    q.add('a');
    expect(q.length).toBe(0);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await flushMicrotasks();
    expect(second).toBeUndefined();
    q.done('a');
    await flushMicrotasks();
    expect(second).toBe('a');
    expect(q.inFlight).toBe(1);
    q.done('a');
    expect(q.inFlight).toBe(0);
    expect(q.length).toBe(0);
  });

  it('wakes a waiting worker when a key is added', async () => {
    const { q } = queue();
    const got = q.get();
    q.add('x');
    expect(await got).toBe('x');
  });

  it('grows the per-key backoff exponentially up to the cap, and forget resets it', async () => {
    const limiter = new ItemExponentialRateLimiter({ baseMs: 5, maxMs: 100 });
    const delays = Array.from({ length: 8 }, () => limiter.when('k'));
    expect(delays).toEqual([5, 10, 20, 40, 80, 100, 100, 100]);
    expect(limiter.when('other')).toBe(5);
    expect(limiter.numRequeues('k')).toBe(8);
    limiter.forget('k');
    expect(limiter.numRequeues('k')).toBe(0);
    expect(limiter.when('k')).toBe(5);
  });

  it('addRateLimited delays a key by its backoff, and forget starts it again from the base', async () => {
    const { q, clock } = queue({ baseMs: 5, maxMs: 40 });
    const dueAfter = async (): Promise<number> => {
      q.addRateLimited('k');
      const start = clock.now();
      for (let waited = 0; waited <= 1000; waited++) {
        if (q.length > 0) break;
        await clock.advance(1);
      }
      expect(await q.get()).toBe('k');
      q.done('k');
      return clock.now() - start;
    };
    expect(await dueAfter()).toBe(5);
    expect(await dueAfter()).toBe(10);
    expect(await dueAfter()).toBe(20);
    expect(await dueAfter()).toBe(40);
    expect(await dueAfter()).toBe(40);
    expect(q.numRequeues('k')).toBe(5);
    q.forget('k');
    expect(q.numRequeues('k')).toBe(0);
    expect(await dueAfter()).toBe(5);
  });

  it('bounds the overall rate with a token bucket shared by all keys', () => {
    const clock = new ManualClock();
    const bucket = new BucketRateLimiter({ qps: 10, burst: 2 }, clock);
    expect([bucket.when('a'), bucket.when('b'), bucket.when('c'), bucket.when('d')]).toEqual([0, 0, 100, 200]);
  });

  it('addAfter queues a key when due, keeps the earliest due time, and adds at once for 0', async () => {
    const { q, clock } = queue();
    q.addAfter('a', 100);
    q.addAfter('a', 50);
    q.addAfter('a', 200);
    expect(q.delayed).toBe(1);
    await clock.advance(49);
    expect(q.length).toBe(0);
    await clock.advance(1);
    expect(q.length).toBe(1);
    expect(q.delayed).toBe(0);
    await clock.advance(500);
    expect(q.length).toBe(1);
    q.addAfter('b', 0);
    expect(q.length).toBe(2);
  });

  it('after shutDown ignores adds, drops delayed keys, hands out what was queued, then undefined', async () => {
    const { q, clock } = queue();
    q.add('a');
    q.addAfter('later', 10);
    q.shutDown();
    q.add('b');
    await clock.advance(100);
    expect(q.delayed).toBe(0);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBeUndefined();
    expect(clock.pending).toBe(0);
  });

  it('shutDown wakes blocked workers with undefined', async () => {
    const { q } = queue();
    const a = q.get();
    const b = q.get();
    q.shutDown();
    expect(await a).toBeUndefined();
    expect(await b).toBeUndefined();
  });

  it('shutDownWithDrain waits for keys in processing to be done', async () => {
    const { q } = queue();
    q.add('a');
    expect(await q.get()).toBe('a');
    let drained: boolean | undefined;
    void q.shutDownWithDrain().then((d) => (drained = d));
    await flushMicrotasks();
    expect(drained).toBeUndefined();
    q.done('a');
    await flushMicrotasks();
    expect(drained).toBe(true);
  });

  it('shutDownWithDrain gives up after its timeout when a key is never done', async () => {
    const { q, clock } = queue();
    q.add('stuck');
    expect(await q.get()).toBe('stuck');
    let drained: boolean | undefined;
    void q.shutDownWithDrain(1000).then((d) => (drained = d));
    await clock.advance(999);
    expect(drained).toBeUndefined();
    await clock.advance(1);
    expect(drained).toBe(false);
  });
});
