import type { KubernetesObject } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from './clock.js';
import { Controller, TerminalError, ownerKey } from './controller.js';
import { Informer } from './informer.js';
import type { ListWatchSource, WatchEvent } from './list-watch.js';

function obj(name: string, rv: string, owner?: string): KubernetesObject {
  return {
    metadata: {
      namespace: 'ns',
      name,
      resourceVersion: rv,
      ownerReferences: owner ? [{ apiVersion: 'v1', kind: 'Thing', name: owner, uid: 'u', controller: true }] : undefined,
    },
  };
}

/** A source that lists `items` once, then lets the test push watch events. */
function source(items: KubernetesObject[]): ListWatchSource<KubernetesObject> & { push(e: WatchEvent<KubernetesObject>): void } {
  let onEvent: ((e: WatchEvent<KubernetesObject>) => void) | undefined;
  return {
    description: 'fake',
    list: async () => ({ items, resourceVersion: '1' }),
    watch: async (_rv, cb) => {
      onEvent = cb;
      return { abort: () => undefined };
    },
    push: (e) => onEvent?.(e),
  };
}

async function started(items: KubernetesObject[], reconcile: ConstructorParameters<typeof Controller>[0]['reconcile'], opts: { workers?: number } = {}) {
  const clock = new ManualClock();
  const src = source(items);
  const informer = new Informer(src, { clock });
  const controller = new Controller({ name: 'test', reconcile, workers: opts.workers, clock, rateLimiter: { baseMs: 5, maxMs: 1000, qps: 1000, burst: 1000 } }).watch(informer);
  informer.start();
  expect(await controller.start()).toBe(true);
  await flushMicrotasks();
  return { clock, src, informer, controller };
}

describe('Controller', () => {
  it('reconciles the key of every listed and watched object, never inside the informer callback', async () => {
    let inCallback = false;
    const calls: Array<{ key: string; inCallback: boolean }> = [];
    const clock = new ManualClock();
    const src = source([obj('a', '1')]);
    const informer = new Informer(src, { clock });
    informer.on('add', () => (inCallback = true));
    const controller = new Controller({
      name: 'test',
      clock,
      reconcile: async (key) => {
        calls.push({ key, inCallback });
      },
    }).watch(informer);
    informer.on('add', () => (inCallback = false));
    informer.start();
    await controller.start();
    await flushMicrotasks();
    src.push({ type: 'ADDED', object: obj('b', '2') });
    await flushMicrotasks();
    expect(calls).toEqual([
      { key: 'ns/a', inCallback: false },
      { key: 'ns/b', inCallback: false },
    ]);
    await controller.stop();
    await informer.stop();
  });

  it('waits for its informers to sync before the first reconcile', async () => {
    const clock = new ManualClock();
    let listed: (v: { items: KubernetesObject[]; resourceVersion: string }) => void = () => undefined;
    const informer = new Informer<KubernetesObject>(
      { description: 'slow', list: () => new Promise((r) => (listed = r)), watch: async () => ({ abort: () => undefined }) },
      { clock },
    );
    const calls: string[] = [];
    const controller = new Controller({ name: 'test', clock, reconcile: async (k) => void calls.push(k) }).watch(informer);
    informer.start();
    const starting = controller.start();
    controller.enqueue('ns/early');
    await flushMicrotasks();
    expect(calls).toEqual([]);
    listed({ items: [obj('a', '1')], resourceVersion: '1' });
    expect(await starting).toBe(true);
    await flushMicrotasks();
    expect(calls.sort()).toEqual(['ns/a', 'ns/early']);
    await controller.stop();
    await informer.stop();
  });

  it('requeues a failing key with growing backoff and forgets it on success', async () => {
    const clock = new ManualClock();
    const times: number[] = [];
    const informer = new Informer(source([obj('a', '1')]), { clock });
    const controller = new Controller({
      name: 'test',
      clock,
      rateLimiter: { baseMs: 5, maxMs: 1000, qps: 1000, burst: 1000 },
      reconcile: async () => {
        times.push(clock.now());
        if (times.length <= 3) throw new Error('broker down');
      },
    }).watch(informer);
    informer.start();
    await controller.start();
    await flushMicrotasks();
    expect(times).toHaveLength(1);
    expect(controller.queue.numRequeues('ns/a')).toBe(1);
    for (let i = 0; i < 100; i++) await clock.advance(1);
    expect(times.slice(1).map((t, i) => t - times[i]!)).toEqual([5, 10, 20]);
    expect(controller.queue.numRequeues('ns/a')).toBe(0);
    expect(controller.stats).toEqual({ reconciles: 4, failures: 3 });
    await controller.stop();
    await informer.stop();
  });

  it('does not requeue a TerminalError', async () => {
    let calls = 0;
    const { clock, controller, informer } = await started([obj('a', '1')], async () => {
      calls++;
      throw new TerminalError('spec.partitions cannot shrink');
    });
    await clock.advance(10_000);
    expect(calls).toBe(1);
    expect(controller.queue.delayed).toBe(0);
    expect(controller.stats.failures).toBe(1);
    await controller.stop();
    await informer.stop();
  });

  it('reconciles again after requeueAfterMs', async () => {
    let calls = 0;
    const { clock, controller, informer } = await started([obj('a', '1')], async () => {
      calls++;
      return { requeueAfterMs: 1000 };
    });
    expect(calls).toBe(1);
    await clock.advance(999);
    expect(calls).toBe(1);
    await clock.advance(1);
    expect(calls).toBe(2);
    await controller.stop();
    await informer.stop();
  });

  it('runs different keys in parallel on N workers but never the same key twice at once', async () => {
    let running = 0;
    let maxRunning = 0;
    const active = new Set<string>();
    let overlap = false;
    const release: Array<() => void> = [];
    const { src, controller, informer } = await started(
      [obj('a', '1'), obj('b', '1'), obj('c', '1'), obj('d', '1')],
      async (key) => {
        if (active.has(key)) overlap = true;
        active.add(key);
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise<void>((r) => release.push(r));
        running--;
        active.delete(key);
      },
      { workers: 3 },
    );
    expect(running).toBe(3);
    // events for a key being reconciled wait for it
    src.push({ type: 'MODIFIED', object: obj('a', '2') });
    src.push({ type: 'MODIFIED', object: obj('a', '3') });
    for (let i = 0; i < 10; i++) {
      release.shift()?.();
      await flushMicrotasks();
    }
    expect(maxRunning).toBe(3);
    expect(overlap).toBe(false);
    expect(controller.stats.reconciles).toBe(5);
    await controller.stop();
    await informer.stop();
  });

  it('stop drains in-flight work, and aborts a reconcile that outlives the drain timeout', async () => {
    let sawAbort = false;
    const { clock, controller, informer } = await started([obj('stuck', '1')], (_key, signal) => {
      return new Promise<void>((resolve) => {
        signal.addEventListener('abort', () => {
          sawAbort = true;
          resolve();
        });
      });
    });
    let drained: boolean | undefined;
    void controller.stop(500).then((d) => (drained = d));
    await clock.advance(499);
    expect(drained).toBeUndefined();
    await clock.advance(1);
    expect(drained).toBe(false);
    expect(sawAbort).toBe(true);
    await informer.stop();
  });

  it('resyncs every cached key every resyncMs', async () => {
    const clock = new ManualClock();
    const calls: string[] = [];
    const informer = new Informer(source([obj('a', '1'), obj('b', '1')]), { clock });
    const controller = new Controller({ name: 'test', clock, resyncMs: 60_000, reconcile: async (k) => void calls.push(k) }).watch(informer);
    informer.start();
    await controller.start();
    await flushMicrotasks();
    expect(calls.sort()).toEqual(['ns/a', 'ns/b']);
    await clock.advance(59_999);
    expect(calls).toHaveLength(2);
    await clock.advance(1);
    expect(calls).toHaveLength(4);
    await clock.advance(60_000);
    expect(calls).toHaveLength(6);
    await controller.stop();
    await clock.advance(120_000);
    expect(calls).toHaveLength(6);
    await informer.stop();
  });

  it('hears of objects cached before it watched the informer', async () => {
    const clock = new ManualClock();
    const informer = new Informer(source([obj('a', '1')]), { clock });
    informer.start();
    await informer.waitForSync();
    const calls: string[] = [];
    const controller = new Controller({ name: 'late', clock, reconcile: async (k) => void calls.push(k) }).watch(informer);
    await controller.start();
    await flushMicrotasks();
    expect(calls).toEqual(['ns/a']);
    await controller.stop();
    await informer.stop();
  });

  it('maps owned objects to their controlling owner', () => {
    const map = ownerKey('Thing', 'v1');
    expect(map(obj('child', '1', 'parent'))).toBe('ns/parent');
    expect(map(obj('orphan', '1'))).toBeUndefined();
    expect(ownerKey('Other')(obj('child', '1', 'parent'))).toBeUndefined();
  });
});
