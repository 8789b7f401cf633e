import type { KubernetesObject } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ManualClock, flushMicrotasks } from './clock.js';
import { Informer, isResourceExpired } from './informer.js';
import type { ListResult, ListWatchSource, WatchEvent } from './list-watch.js';

type Obj = KubernetesObject & { data?: Record<string, string> };

function obj(name: string, rv: string, data: Record<string, string> = {}): Obj {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace: 'ns', name, resourceVersion: rv }, data };
}

interface FakeWatch {
  resourceVersion: string;
  emit(type: WatchEvent<Obj>['type'], object: Obj | Record<string, unknown>): void;
  end(err?: unknown): void;
  aborted: boolean;
}

/** A list/watch source driven by the test: each list() takes the next scripted answer. */
class FakeSource implements ListWatchSource<Obj> {
  readonly description = 'fake';
  readonly lists: Array<() => ListResult<Obj>> = [];
  readonly watches: FakeWatch[] = [];
  listCalls = 0;
  watchFailures: unknown[] = [];

  async list(): Promise<ListResult<Obj>> {
    this.listCalls++;
    const next = this.lists.shift();
    if (!next) throw new Error('no scripted list');
    return next();
  }

  async watch(resourceVersion: string, onEvent: (e: WatchEvent<Obj>) => void, onDone: (err: unknown) => void) {
    const failure = this.watchFailures.shift();
    if (failure !== undefined) throw failure;
    const w: FakeWatch = {
      resourceVersion,
      aborted: false,
      emit: (type, object) => onEvent({ type, object: object as Obj }),
      end: (err = null) => onDone(err),
    };
    this.watches.push(w);
    return { abort: () => (w.aborted = true) };
  }

  get current(): FakeWatch {
    return this.watches[this.watches.length - 1]!;
  }
}

function record(informer: Informer<Obj>): string[] {
  const seen: string[] = [];
  informer.on('add', (o) => seen.push(`add ${o.metadata!.name}@${o.metadata!.resourceVersion}`));
  informer.on('update', (o, old) => seen.push(`update ${o.metadata!.name}@${old.metadata!.resourceVersion}->${o.metadata!.resourceVersion}`));
  informer.on('delete', (o) => seen.push(`delete ${o.metadata!.name}`));
  return seen;
}

const backoff = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0 };

describe('Informer', () => {
  it('lists, syncs, then applies watch events from the list resourceVersion', async () => {
    const source = new FakeSource();
    source.lists.push(() => ({ items: [obj('a', '1'), obj('b', '2')], resourceVersion: '10' }));
    const clock = new ManualClock();
    const informer = new Informer(source, { clock, backoff });
    const seen = record(informer);
    informer.start();
    expect(await informer.waitForSync()).toBe(true);
    expect(informer.hasSynced()).toBe(true);
    await flushMicrotasks();
    expect(source.current.resourceVersion).toBe('10');
    source.current.emit('ADDED', obj('c', '11'));
    source.current.emit('MODIFIED', obj('a', '12', { x: '1' }));
    source.current.emit('DELETED', obj('b', '13'));
    source.current.emit('BOOKMARK', { metadata: { resourceVersion: '14' } });
    expect(seen).toEqual(['add a@1', 'add b@2', 'add c@11', 'update a@1->12', 'delete b']);
    expect(informer.keys().sort()).toEqual(['ns/a', 'ns/c']);
    expect(informer.get('ns/a')?.data).toEqual({ x: '1' });
    expect(informer.lastResourceVersion).toBe('14');
    await informer.stop();
    expect(source.current.aborted).toBe(true);
  });

  it('resumes a cleanly ended watch from the last resourceVersion without relisting', async () => {
    const source = new FakeSource();
    source.lists.push(() => ({ items: [], resourceVersion: '5' }));
    const clock = new ManualClock();
    const informer = new Informer(source, { clock, backoff });
    informer.start();
    await informer.waitForSync();
    await flushMicrotasks();
    source.current.emit('ADDED', obj('a', '6'));
    source.current.end();
    await flushMicrotasks();
    expect(source.watches).toHaveLength(2);
    expect(source.current.resourceVersion).toBe('6');
    expect(source.listCalls).toBe(1);
    await informer.stop();
  });

  it('relists on a watch ERROR event with code 410 and emits the changes missed meanwhile', async () => {
    const source = new FakeSource();
    source.lists.push(() => ({ items: [obj('a', '1'), obj('b', '2'), obj('c', '3')], resourceVersion: '10' }));
    source.lists.push(() => ({ items: [obj('a', '1'), obj('b', '20'), obj('d', '21')], resourceVersion: '30' }));
    const clock = new ManualClock();
    const informer = new Informer(source, { clock, backoff });
    const seen = record(informer);
    informer.start();
    await informer.waitForSync();
    await flushMicrotasks();
    seen.length = 0;
    source.current.emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 10 (25)' });
    await flushMicrotasks();
    expect(source.listCalls).toBe(2);
    expect(source.watches[0]!.aborted).toBe(true);
    expect(seen).toEqual(['update b@2->20', 'add d@21', 'delete c']);
    expect(informer.keys().sort()).toEqual(['ns/a', 'ns/b', 'ns/d']);
    expect(source.current.resourceVersion).toBe('30');
    await informer.stop();
  });

  it('relists when the watch call fails with HTTP 410 Gone', async () => {
    const source = new FakeSource();
    source.lists.push(() => ({ items: [], resourceVersion: '10' }));
    source.lists.push(() => ({ items: [obj('x', '40')], resourceVersion: '40' }));
    source.watchFailures.push(Object.assign(new Error('Gone'), { statusCode: 410 }));
    const informer = new Informer(source, { clock: new ManualClock(), backoff });
    const seen = record(informer);
    informer.start();
    await informer.waitForSync();
    await flushMicrotasks();
    expect(source.listCalls).toBe(2);
    expect(seen).toEqual(['add x@40']);
    expect(source.current.resourceVersion).toBe('40');
    await informer.stop();
  });

  it('restarts after list and watch errors with growing backoff, reporting each error', async () => {
    const source = new FakeSource();
    const clock = new ManualClock();
    source.lists.push(() => {
      throw new Error('connection refused');
    });
    source.lists.push(() => {
      throw new Error('connection refused');
    });
    source.lists.push(() => ({ items: [obj('a', '1')], resourceVersion: '10' }));
    const informer = new Informer(source, { clock, backoff });
    const errors: unknown[] = [];
    informer.on('error', (err) => errors.push(err));
    informer.start();
    await flushMicrotasks();
    expect(source.listCalls).toBe(1);
    expect(errors).toHaveLength(1);
    await clock.advance(99);
    expect(source.listCalls).toBe(1);
    await clock.advance(1);
    expect(source.listCalls).toBe(2);
    expect(informer.hasSynced()).toBe(false);
    await clock.advance(199);
    expect(source.listCalls).toBe(2);
    await clock.advance(1);
    expect(source.listCalls).toBe(3);
    expect(informer.hasSynced()).toBe(true);
    expect(errors).toHaveLength(2);

    // a watch that fails is retried after backoff from the same resourceVersion (no relist)
    source.current.end(new Error('stream reset'));
    await flushMicrotasks();
    expect(errors).toHaveLength(3);
    expect(source.watches).toHaveLength(1);
    await clock.advance(100);
    expect(source.watches).toHaveLength(2);
    expect(source.current.resourceVersion).toBe('10');
    expect(source.listCalls).toBe(3);
    await informer.stop();
  });

  it('backs off a watch that ends at once without events', async () => {
    const source = new FakeSource();
    const clock = new ManualClock();
    source.lists.push(() => ({ items: [], resourceVersion: '10' }));
    const informer = new Informer(source, { clock, backoff, minWatchMs: 1000 });
    informer.start();
    await informer.waitForSync();
    await flushMicrotasks();
    source.current.end();
    await flushMicrotasks();
    expect(source.watches).toHaveLength(1);
    await clock.advance(100);
    expect(source.watches).toHaveLength(2);
    await informer.stop();
  });

  it('stop ends a backoff wait at once and waitForSync then answers false', async () => {
    const source = new FakeSource();
    const clock = new ManualClock();
    source.lists.push(() => {
      throw new Error('down');
    });
    const informer = new Informer(source, { clock, backoff });
    informer.start();
    const synced = informer.waitForSync();
    await flushMicrotasks();
    await informer.stop();
    expect(await synced).toBe(false);
    expect(informer.running).toBe(false);
    expect(clock.pending).toBe(0);
  });

  it('keeps running when a handler throws', async () => {
    const source = new FakeSource();
    source.lists.push(() => ({ items: [obj('a', '1')], resourceVersion: '10' }));
    const informer = new Informer(source, { clock: new ManualClock(), backoff });
    informer.on('add', () => {
      throw new Error('handler bug');
    });
    const seen = record(informer);
    informer.start();
    await informer.waitForSync();
    await flushMicrotasks();
    source.current.emit('ADDED', obj('b', '11'));
    expect(seen).toEqual(['add a@1', 'add b@11']);
    await informer.stop();
  });

  it('waitForSync answers false at once for an informer that is not running', async () => {
    const informer = new Informer(new FakeSource(), { clock: new ManualClock(), backoff });
    expect(await informer.waitForSync()).toBe(false);
  });

  it('recognises 410 in its forms', () => {
    expect(isResourceExpired({ statusCode: 410 })).toBe(true);
    expect(isResourceExpired({ code: 410 })).toBe(true);
    expect(isResourceExpired({ statusCode: 500 })).toBe(false);
    expect(isResourceExpired(undefined)).toBe(false);
  });
});

describe('Informer watchdog and stop', () => {
  it('resumes a watch that stayed open past maxWatchMs', async () => {
    const source = new FakeSource();
    const clock = new ManualClock();
    source.lists.push(() => ({ items: [], resourceVersion: '10' }));
    const informer = new Informer(source, { clock, backoff, maxWatchMs: 5000 });
    informer.start();
    await informer.waitForSync();
    await flushMicrotasks();
    await clock.advance(4999);
    expect(source.watches).toHaveLength(1);
    await clock.advance(1);
    expect(source.watches[0]!.aborted).toBe(true);
    expect(source.watches).toHaveLength(2);
    expect(source.current.resourceVersion).toBe('10');
    expect(source.listCalls).toBe(1);
    await informer.stop();
  });

  it('stop does not wait for a list call that never answers', async () => {
    const source = new FakeSource();
    source.lists.push(() => new Promise<never>(() => undefined) as unknown as ListResult<Obj>);
    const informer = new Informer(source, { clock: new ManualClock(), backoff });
    informer.start();
    await flushMicrotasks();
    expect(source.listCalls).toBe(1);
    await informer.stop();
    expect(informer.running).toBe(false);
    expect(informer.hasSynced()).toBe(false);
  });
});
