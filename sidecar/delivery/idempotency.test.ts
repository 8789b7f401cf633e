import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { IdempotentHandler, MemoryProcessedKeyStore } from './idempotency.js';
import type { ClaimResult, IdempotentOutcome, ProcessedKeyStore } from './idempotency.js';

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function setup(claimTtlMs = 5_000, processedTtlMs = 60_000) {
  const clock = { now: 1_000_000 };
  const store = new MemoryProcessedKeyStore({ clock: () => clock.now });
  const sidecar = (instance: string): IdempotentHandler => new IdempotentHandler(store, { instance, claimTtlMs, processedTtlMs, busyRetryDelayMs: 250 });
  return { clock, store, sidecar };
}

describe('MemoryProcessedKeyStore', () => {
  it('follows the claim / complete / release table', async () => {
    const { clock, store } = setup();
    expect(await store.claim('k', 'a', 100)).toBe('claimed');
    expect(await store.claim('k', 'b', 100)).toBe('busy');
    clock.now += 50;
    expect(await store.claim('k', 'a', 100)).toBe('claimed');
    clock.now += 99;
    expect(await store.claim('k', 'b', 100)).toBe('busy');
    await store.release('k', 'b');
    expect(store.peek('k')).toMatchObject({ state: 'claimed', owner: 'a' });
    await store.release('k', 'a');
    expect(store.peek('k')).toBeUndefined();
    expect(await store.claim('k', 'b', 100)).toBe('claimed');
    await store.complete('k', 'b', 1_000);
    await store.release('k', 'b');
    expect(await store.claim('k', 'c', 100)).toBe('processed');
    clock.now += 1_000;
    expect(await store.claim('k', 'c', 100)).toBe('claimed');
  });

  it('records a late completion even when another owner took the expired claim', async () => {
    const { clock, store } = setup();
    await store.claim('k', 'slow', 100);
    clock.now += 100;
    expect(await store.claim('k', 'fast', 100)).toBe('claimed');
    await store.complete('k', 'slow', 1_000);
    await store.release('k', 'fast');
    expect(store.peek('k')).toMatchObject({ state: 'processed' });
  });

  it('sweeps expired keys', async () => {
    const clock = { now: 0 };
    const store = new MemoryProcessedKeyStore({ clock: () => clock.now, sweepIntervalMs: 1_000 });
    for (let i = 0; i < 100; i++) await store.complete(`k${i}`, 'a', 500);
    await store.complete('kept', 'a', 5_000);
    expect(store.size).toBe(101);
    clock.now = 1_000;
    await store.claim('other', 'a', 10);
    expect(store.size).toBe(2);
  });

  it('refuses a TTL that is not a positive whole number', async () => {
    const { store } = setup();
    expect(() => store.claim('k', 'a', 0)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidRequest }));
    expect(() => store.complete('k', 'a', 1.5)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidRequest }));
  });
});

describe('IdempotentHandler', () => {
  it('validates its options, naming the setting', () => {
    const store = new MemoryProcessedKeyStore();
    expect(() => new IdempotentHandler(store, { instance: '' })).toThrow('idempotency.instance');
    expect(() => new IdempotentHandler(store, { instance: 'a', handlerTimeoutMs: 30_000, claimTtlMs: 30_000 })).toThrow('idempotency.claimTtlMs');
    expect(new IdempotentHandler(store, { instance: 'a', handlerTimeoutMs: 30_000 }).claimTtlMs).toBe(60_000);
    expect(new IdempotentHandler(store, { instance: 'a' }).processedTtlMs).toBe(86_400_000);
  });

  it('runs one of two concurrent handlers of one key; the other is told busy', async () => {
    const { sidecar } = setup();
    const a = sidecar('a');
    const b = sidecar('b');
    const gate = deferred();
    let runs = 0;
    const slow = async (): Promise<string> => {
      runs++;
      await gate.promise;
      return 'done';
    };
    const first = a.handle('order-1', slow);
    const second = await b.handle('order-1', () => {
      runs++;
      return 'done';
    });
    expect(second).toEqual({ kind: 'busy', settle: 'nack', delayMs: 250 });
    gate.resolve();
    expect(await first).toEqual({ kind: 'handled', settle: 'ack', result: 'done' });
    expect(runs).toBe(1);
    expect(await b.handle('order-1', slow)).toEqual({ kind: 'duplicate', settle: 'ack' });
    expect(runs).toBe(1);
    expect(b.counts).toMatchObject({ busy: 1, duplicates: 1, handled: 0 });
  });

  it('also excludes two deliveries of one key inside one sidecar', async () => {
    const { sidecar } = setup();
    const a = sidecar('a');
    const gate = deferred();
    const first = a.handle('k', () => gate.promise);
    expect((await a.handle('k', () => undefined)).kind).toBe('busy');
    gate.resolve();
    expect((await first).kind).toBe('handled');
  });

  it('after a crash between claim and completion, the claim expires and the message is handled once by the next try', async () => {
    const { clock, store, sidecar } = setup(5_000);
    let effects = 0;
    // The first sidecar claims and dies mid-handling: its handler never settles.
    void sidecar('crashed').handle('k', () => new Promise<never>(() => {}));
    await Promise.resolve();
    expect(store.peek('k')).toMatchObject({ state: 'claimed', owner: 'crashed#1' });

    const next = sidecar('next');
    const handler = (): void => {
      effects++;
    };
    expect((await next.handle('k', handler)).kind).toBe('busy');
    clock.now += 4_999;
    expect((await next.handle('k', handler)).kind).toBe('busy');
    clock.now += 1;
    expect((await next.handle('k', handler)).kind).toBe('handled');
    expect((await next.handle('k', handler)).kind).toBe('duplicate');
    expect(effects).toBe(1);
  });

  it('releases the claim when the handler fails, so the retry runs at once', async () => {
    const { store, sidecar } = setup();
    const a = sidecar('a');
    const boom = new Error('boom');
    const failed = await a.handle('k', () => {
      throw boom;
    });
    expect(failed).toEqual({ kind: 'failed', settle: 'nack', error: boom, result: undefined });
    expect(store.peek('k')).toBeUndefined();
    expect((await sidecar('b').handle('k', () => 1)).kind).toBe('handled');
  });

  it('treats a result refused by isSuccess as a failure and keeps the result', async () => {
    const { store, sidecar } = setup();
    const out = await sidecar('a').handle('k', () => 'DEAD_LETTER', (r) => r === 'SUCCESS');
    expect(out).toEqual({ kind: 'failed', settle: 'nack', error: undefined, result: 'DEAD_LETTER' });
    expect(store.peek('k')).toBeUndefined();
  });

  it('skips a completed key until its TTL, then handles it again', async () => {
    const { clock, sidecar } = setup(5_000, 60_000);
    const a = sidecar('a');
    let effects = 0;
    const handler = (): void => {
      effects++;
    };
    expect((await a.handle('k', handler)).kind).toBe('handled');
    clock.now += 59_999;
    expect((await a.handle('k', handler)).kind).toBe('duplicate');
    clock.now += 1;
    expect((await a.handle('k', handler)).kind).toBe('handled');
    expect(effects).toBe(2);
  });

  it('records a success that comes after the engine stopped waiting, so the redelivery is skipped', async () => {
    const { sidecar } = setup();
    const gate = deferred();
    let effects = 0;
    const late = sidecar('a').handle('k', async () => {
      await gate.promise;
      effects++;
    });
    // The engine's handler timeout fired; the redelivery comes while the handler still runs.
    const b = sidecar('b');
    expect((await b.handle('k', () => effects++)).kind).toBe('busy');
    gate.resolve();
    await late;
    expect((await b.handle('k', () => effects++)).kind).toBe('duplicate');
    expect(effects).toBe(1);
  });

  it('reports store failures: no run when the claim fails, an ack when only the completion fails', async () => {
    const down = new KmqError(ErrorCode.BrokerNotAvailable, 'down');
    const failing = (which: 'claim' | 'complete'): ProcessedKeyStore => {
      const inner = new MemoryProcessedKeyStore();
      return {
        claim: (k, o, t) => (which === 'claim' ? Promise.reject(down) : inner.claim(k, o, t)),
        complete: (k, o, t) => (which === 'complete' ? Promise.reject(down) : inner.complete(k, o, t)),
        release: (k, o) => inner.release(k, o),
      };
    };
    let runs = 0;
    const a = new IdempotentHandler(failing('claim'), { instance: 'a', busyRetryDelayMs: 100 });
    expect(await a.handle('k', () => runs++)).toEqual({ kind: 'store-error', settle: 'nack', delayMs: 100, error: down });
    expect(runs).toBe(0);
    const b = new IdempotentHandler(failing('complete'), { instance: 'b' });
    expect(await b.handle('k', () => runs++)).toMatchObject({ kind: 'handled', settle: 'ack', completeError: down });
    expect(runs).toBe(1);
    expect(b.counts).toMatchObject({ handled: 1, storeErrors: 1 });
  });

  it('refuses an empty key', async () => {
    const { sidecar } = setup();
    await expect(sidecar('a').handle('', () => 1)).rejects.toMatchObject({ code: ErrorCode.InvalidRequest });
  });
});

/**
 * A model of two sidecars sharing one store, a broker that redelivers what is nacked
 * or held by a crashed sidecar, and handlers that fail a bounded number of times. The
 * fast-check scheduler picks the interleaving of every store call (before it takes
 * effect, and before its caller sees the answer), every handler step and every crash.
 *
 * A crash freezes the sidecar's handlings at their next step, hands its messages back
 * to the broker and starts a fresh sidecar in its place. Crash points: before or after
 * any store call, and inside a handler before its side effect. The one window the
 * protocol leaves open (between the side effect and complete() being recorded, see
 * idempotency.ts) is not a crash point: complete() is issued in the same turn as the
 * handler's success.
 */
type Handle = (h: IdempotentHandler, store: ProcessedKeyStore, key: string, handler: () => Promise<void>) => Promise<IdempotentOutcome<void>>;

interface Scenario {
  keys: number[];
  failures: number[];
  crashes: number[];
  targets: number[];
}

async function runModel(s: fc.Scheduler, sc: Scenario, handle: Handle): Promise<{ effects: Map<string, number>; acked: number; total: number }> {
  const clock = { now: 0 };
  const CLAIM_TTL = 1_000;
  const inner = new MemoryProcessedKeyStore({ clock: () => clock.now });
  const never = new Promise<never>(() => {});
  const effects = new Map<string, number>();
  const failuresLeft = new Map<string, number>();
  sc.keys.forEach((k, i) => failuresLeft.set(`k${k}`, sc.failures[i % Math.max(1, sc.failures.length)] ?? 0));

  interface Sidecar {
    epoch: number;
    idem: IdempotentHandler;
    store: ProcessedKeyStore;
    held: Set<number>;
  }
  let generation = 0;
  const sidecars: Sidecar[] = [0, 1].map(() => ({ epoch: 0, idem: undefined as unknown as IdempotentHandler, store: inner, held: new Set<number>() }));
  // Lets every chain of resolved promises run to its next scheduled step.
  const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  const start = (i: number): void => {
    const sidecar = sidecars[i]!;
    sidecar.epoch++;
    sidecar.held = new Set();
    const step = async (label: string, epoch: number): Promise<void> => {
      await s.schedule(Promise.resolve(), label);
      if (sidecar.epoch !== epoch) await never;
    };
    const store = (epoch: number): ProcessedKeyStore => ({
      claim: async (k, o, t) => {
        await step(`claim ${k} ${o}`, epoch);
        const r: ClaimResult = await inner.claim(k, o, t);
        await step(`claimed ${k} ${o} ${r}`, epoch);
        return r;
      },
      complete: async (k, o, t) => {
        await inner.complete(k, o, t);
        await step(`completed ${k} ${o}`, epoch);
      },
      release: async (k, o) => {
        await step(`release ${k} ${o}`, epoch);
        await inner.release(k, o);
        await step(`released ${k} ${o}`, epoch);
      },
    });
    sidecar.store = store(sidecar.epoch);
    sidecar.idem = new IdempotentHandler(sidecar.store, { instance: `s${i}g${++generation}`, claimTtlMs: CLAIM_TTL, busyRetryDelayMs: 10 });
  };
  start(0);
  start(1);

  const messages = sc.keys.map((k) => `k${k}`);
  const ready: number[] = messages.map((_, i) => i);
  const delayed: number[] = [];
  const acked = new Set<number>();
  let t = 0;

  const deliver = (id: number): void => {
    const sidecar = sidecars[sc.targets[t++ % sc.targets.length]! % 2]!;
    const epoch = sidecar.epoch;
    const key = messages[id]!;
    sidecar.held.add(id);
    const handler = async (): Promise<void> => {
      await s.schedule(Promise.resolve(), `handler ${key}`);
      if (sidecar.epoch !== epoch) await never;
      const left = failuresLeft.get(key)!;
      if (left > 0) {
        failuresLeft.set(key, left - 1);
        throw new Error('transient');
      }
      effects.set(key, (effects.get(key) ?? 0) + 1);
    };
    void handle(sidecar.idem, sidecar.store, key, handler).then((out) => {
      if (sidecar.epoch !== epoch) return;
      sidecar.held.delete(id);
      if (out.settle === 'ack') acked.add(id);
      else if (out.kind === 'busy') delayed.push(id);
      else ready.push(id);
    });
  };

  for (const c of sc.crashes) {
    void s.schedule(Promise.resolve(), `crash s${c % 2}`).then(() => {
      const sidecar = sidecars[c % 2]!;
      ready.push(...sidecar.held);
      start(c % 2);
    });
  }

  for (let rounds = 0; acked.size < messages.length; rounds++) {
    if (rounds > 10_000) throw new Error('the model did not converge');
    while (ready.length > 0) deliver(ready.shift()!);
    await settle();
    if (s.count() > 0) {
      await s.waitOne();
      await settle();
      continue;
    }
    // Nothing can move: only claims of crashed sidecars block. Let them expire.
    clock.now += CLAIM_TTL;
    ready.push(...delayed.splice(0));
    if (ready.length === 0) break;
  }
  return { effects, acked: acked.size, total: messages.length };
}

const scenarios = fc.record({
  keys: fc.array(fc.nat({ max: 2 }), { minLength: 1, maxLength: 6 }),
  failures: fc.array(fc.nat({ max: 2 }), { maxLength: 3 }),
  crashes: fc.array(fc.nat({ max: 1 }), { maxLength: 3 }),
  targets: fc.array(fc.nat({ max: 1 }), { minLength: 1, maxLength: 8 }),
});

describe('two sidecars with crashes (model)', () => {
  it('property: each key\'s side effect happens exactly once and every message is acked', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), scenarios, async (s, sc) => {
        const { effects, acked, total } = await runModel(s, sc, (h, _store, key, handler) => h.handle(key, handler));
        expect(acked).toBe(total);
        for (const key of new Set(sc.keys.map((k) => `k${k}`))) expect(effects.get(key)).toBe(1);
      }),
      { numRuns: 300 },
    );
  });

  it('the same model finds the seed\'s "SET NX before processing" losing a message', async () => {
    // Marks the key processed before the handler runs, as the seed did.
    let n = 0;
    const setNxFirst: Handle = async (h, store, key, handler) => {
      const owner = `${h.instance}#nx${++n}`;
      if ((await store.claim(key, owner, h.claimTtlMs)) !== 'claimed') return { kind: 'duplicate', settle: 'ack' };
      await store.complete(key, owner, h.processedTtlMs);
      try {
        await handler();
        return { kind: 'handled', settle: 'ack', result: undefined };
      } catch (error) {
        return { kind: 'failed', settle: 'nack', error, result: undefined };
      }
    };
    const found = await fc.check(
      fc.asyncProperty(fc.scheduler(), scenarios, async (s, sc) => {
        const { effects } = await runModel(s, sc, setNxFirst);
        for (const key of new Set(sc.keys.map((k) => `k${k}`))) expect(effects.get(key)).toBe(1);
      }),
      { numRuns: 300 },
    );
    expect(found.failed).toBe(true);
  });
});
