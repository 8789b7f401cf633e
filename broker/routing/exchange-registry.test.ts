import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { ExchangeRegistry } from './exchange-registry.js';
import type { BindingSpec, Destination, ExchangeSpec, RoutingStore } from './exchange-types.js';

/** A RoutingStore in memory, with a switch that makes the next call fail. */
class MemoryRoutingStore implements RoutingStore {
  readonly exchanges = new Map<string, ExchangeSpec>();
  readonly bindings = new Map<string, BindingSpec>();
  readonly calls: string[] = [];
  failNext = false;

  private step(what: string): void {
    this.calls.push(what);
    if (this.failNext) {
      this.failNext = false;
      throw new Error(`store unavailable during ${what}`);
    }
  }

  private static key(b: BindingSpec): string {
    return JSON.stringify([b.exchange, b.destination, b.routingKey, b.headers ?? null, b.match ?? null]);
  }

  async load(): Promise<{ exchanges: ExchangeSpec[]; bindings: BindingSpec[] }> {
    this.step('load');
    return { exchanges: structuredClone([...this.exchanges.values()]), bindings: structuredClone([...this.bindings.values()]) };
  }
  async putExchange(e: ExchangeSpec): Promise<void> {
    this.step(`putExchange ${e.name}`);
    this.exchanges.set(e.name, structuredClone(e));
  }
  async deleteExchange(name: string): Promise<void> {
    this.step(`deleteExchange ${name}`);
    this.exchanges.delete(name);
  }
  async putBinding(b: BindingSpec): Promise<void> {
    this.step(`putBinding ${b.exchange}`);
    this.bindings.set(MemoryRoutingStore.key(b), structuredClone(b));
  }
  async deleteBinding(b: BindingSpec): Promise<void> {
    this.step(`deleteBinding ${b.exchange}`);
    if (!this.bindings.delete(MemoryRoutingStore.key(b))) throw new Error('deleting a binding the store does not hold');
  }
  snapshot(): string {
    return JSON.stringify([[...this.exchanges.entries()].sort(), [...this.bindings.keys()].sort()]);
  }
}

const q = (name: string): Destination => ({ kind: 'queue', name });
const t = (name: string): Destination => ({ kind: 'topic', name });

interface Fixture {
  store: MemoryRoutingStore;
  registry: ExchangeRegistry;
  existing: Set<string>;
}

async function fixture(store = new MemoryRoutingStore(), options = {}): Promise<Fixture> {
  const existing = new Set(['queue/q1', 'queue/q2', 'queue/q3', 'queue/alt', 'topic/t1', 'topic/t2']);
  const registry = new ExchangeRegistry(store, (d) => existing.has(`${d.kind}/${d.name}`), options);
  await registry.start();
  return { store, registry, existing };
}

function names(ds: readonly Destination[]): string[] {
  return ds.map((d) => `${d.kind}/${d.name}`);
}

async function expectKmqError(p: Promise<unknown> | (() => unknown), code: ErrorCode, ...fragments: string[]): Promise<KmqError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an error').toBeInstanceOf(KmqError);
  const k = err as KmqError;
  expect(k.code).toBe(code);
  for (const f of fragments) expect(k.message).toContain(f);
  return k;
}

/** One exchange of each type with bindings, shared by the routing tables. */
async function routingFixture(options = {}): Promise<Fixture> {
  const f = await fixture(undefined, options);
  const r = f.registry;
  await r.createExchange({ name: 'd', type: 'direct' });
  await r.bind({ exchange: 'd', destination: q('q1'), routingKey: 'red' });
  await r.bind({ exchange: 'd', destination: q('q2'), routingKey: 'red' });
  await r.bind({ exchange: 'd', destination: t('t1'), routingKey: 'green' });
  await r.bind({ exchange: 'd', destination: q('q3'), routingKey: '' });

  await r.createExchange({ name: 'tp', type: 'topic' });
  await r.bind({ exchange: 'tp', destination: q('q1'), routingKey: 'order.*.created' });
  await r.bind({ exchange: 'tp', destination: q('q2'), routingKey: 'order.#' });
  await r.bind({ exchange: 'tp', destination: q('q3'), routingKey: '#.eu' });
  await r.bind({ exchange: 'tp', destination: t('t1'), routingKey: '#' });
  await r.bind({ exchange: 'tp', destination: t('t2'), routingKey: 'a..b' });

  await r.createExchange({ name: 'f', type: 'fanout' });
  await r.bind({ exchange: 'f', destination: q('q2'), routingKey: 'ignored' });
  await r.bind({ exchange: 'f', destination: q('q1'), routingKey: '' });
  await r.bind({ exchange: 'f', destination: q('q1'), routingKey: 'other' });

  await r.createExchange({ name: 'h', type: 'headers' });
  await r.bind({ exchange: 'h', destination: q('q1'), routingKey: '', headers: { format: 'pdf', type: 'report' }, match: 'all' });
  await r.bind({ exchange: 'h', destination: q('q2'), routingKey: '', headers: { format: 'pdf', type: 'log' }, match: 'any' });
  await r.bind({ exchange: 'h', destination: q('q3'), routingKey: '', headers: {} });
  return f;
}

const routingTable: Array<[exchange: string, key: string, headers: Record<string, string> | undefined, expected: string[]]> = [
  ['d', 'red', undefined, ['queue/q1', 'queue/q2']],
  ['d', 'green', undefined, ['topic/t1']],
  ['d', '', undefined, ['queue/q3']],
  ['d', 'Red', undefined, []],
  ['d', 'red.x', undefined, []],
  ['tp', 'order.eu.created', undefined, ['queue/q1', 'queue/q2', 'topic/t1']],
  ['tp', 'order.created', undefined, ['queue/q2', 'topic/t1']],
  ['tp', 'order', undefined, ['queue/q2', 'topic/t1']],
  ['tp', 'order.us.created.eu', undefined, ['queue/q2', 'queue/q3', 'topic/t1']],
  ['tp', 'eu', undefined, ['queue/q3', 'topic/t1']],
  ['tp', '', undefined, ['topic/t1']],
  ['tp', 'a..b', undefined, ['topic/t1', 'topic/t2']],
  ['tp', 'a.b', undefined, ['topic/t1']],
  ['f', 'anything', undefined, ['queue/q1', 'queue/q2']],
  ['f', '', { x: '1' }, ['queue/q1', 'queue/q2']],
  ['h', '', { format: 'pdf', type: 'report' }, ['queue/q1', 'queue/q2', 'queue/q3']],
  ['h', 'ignored', { format: 'pdf' }, ['queue/q2', 'queue/q3']],
  ['h', '', { type: 'log' }, ['queue/q2', 'queue/q3']],
  ['h', '', { format: 'txt', type: 'report' }, ['queue/q3']],
  ['h', '', undefined, ['queue/q3']],
];

describe('ExchangeRegistry routing', () => {
  for (const [label, options] of [
    ['with the topic DFA', {}],
    ['with a tiny topic DFA budget', { topicStateBudget: 3 }],
    ['walking the topic trie each time', { topicStateBudget: 0 }],
  ] as const) {
    it(`routes each exchange type by its rules (${label})`, async () => {
      const { registry } = await routingFixture(options);
      for (const [exchange, key, headers, expected] of routingTable) {
        // Twice: the second call may be answered from a cache.
        for (let i = 0; i < 2; i++) {
          const r = registry.route(exchange, key, headers);
          expect(names(r.destinations), `${exchange} ${JSON.stringify(key)} ${JSON.stringify(headers)}`).toEqual(expected);
          expect(r.unroutable).toBe(expected.length === 0);
          expect(r.usedAlternate).toBe(false);
        }
      }
    });
  }

  it('delivers to a destination once when several of its bindings match, in a fixed order', async () => {
    const { registry } = await fixture();
    await registry.createExchange({ name: 'x', type: 'topic' });
    for (const p of ['a.*', 'a.#', '#', '*.b', 'a.b']) await registry.bind({ exchange: 'x', destination: q('q2'), routingKey: p });
    await registry.bind({ exchange: 'x', destination: t('t1'), routingKey: 'a.b' });
    await registry.bind({ exchange: 'x', destination: q('q1'), routingKey: '#' });
    expect(names(registry.route('x', 'a.b').destinations)).toEqual(['queue/q1', 'queue/q2', 'topic/t1']);

    await registry.createExchange({ name: 'hh', type: 'headers' });
    await registry.bind({ exchange: 'hh', destination: q('q1'), routingKey: '', headers: { a: '1' } });
    await registry.bind({ exchange: 'hh', destination: q('q1'), routingKey: '', headers: { b: '2' } });
    expect(names(registry.route('hh', '', { a: '1', b: '2' }).destinations)).toEqual(['queue/q1']);
  });

  it('sees binding changes at once, whatever was cached', async () => {
    const { registry } = await fixture();
    await registry.createExchange({ name: 'x', type: 'topic' });
    expect(registry.route('x', 'a.b').unroutable).toBe(true);
    await registry.bind({ exchange: 'x', destination: q('q1'), routingKey: 'a.*' });
    expect(names(registry.route('x', 'a.b').destinations)).toEqual(['queue/q1']);
    await registry.unbind({ exchange: 'x', destination: q('q1'), routingKey: 'a.*' });
    expect(registry.route('x', 'a.b').unroutable).toBe(true);
  });

  it('uses the alternate destination when no binding matches, and only then', async () => {
    const { registry, existing } = await fixture();
    await registry.createExchange({ name: 'x', type: 'direct', alternate: q('alt') });
    await registry.bind({ exchange: 'x', destination: q('q1'), routingKey: 'k' });
    expect(registry.route('x', 'k')).toEqual({ destinations: [q('q1')], unroutable: false, usedAlternate: false });
    expect(registry.route('x', 'other')).toEqual({ destinations: [q('alt')], unroutable: false, usedAlternate: true });
    existing.delete('queue/alt');
    expect(registry.route('x', 'other')).toEqual({ destinations: [], unroutable: true, usedAlternate: false });

    await registry.createExchange({ name: 'fa', type: 'fanout', alternate: t('t2') });
    expect(registry.route('fa', '')).toEqual({ destinations: [t('t2')], unroutable: false, usedAlternate: true });
    await registry.bind({ exchange: 'fa', destination: q('q1'), routingKey: '' });
    expect(registry.route('fa', '').usedAlternate).toBe(false);
  });

  it('returns frozen results', async () => {
    const { registry } = await routingFixture();
    const r = registry.route('tp', 'order.eu.created');
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.destinations)).toBe(true);
    expect(Object.isFrozen(r.destinations[0])).toBe(true);
  });

  it('refuses unknown exchanges and over-long routing keys', async () => {
    const { registry } = await routingFixture();
    const e = await expectKmqError(() => registry.route('nope', 'a'), ErrorCode.UnknownExchange, '"nope"');
    expect(e.context.exchange).toBe('nope');
    await expectKmqError(() => registry.route('tp', 'a'.repeat(256)), ErrorCode.InvalidRoutingKey, '255 bytes');
    await expectKmqError(() => registry.route('', 'a'), ErrorCode.UnknownExchange);
    expect(registry.route('tp', 'a'.repeat(255)).destinations).toEqual([t('t1')]);
  });
});

describe('ExchangeRegistry bad input', () => {
  /** Runs `act`, expects the error, and checks neither memory nor store changed. */
  async function rejects(f: Fixture, act: () => Promise<unknown>, code: ErrorCode, ...fragments: string[]): Promise<void> {
    const memory = JSON.stringify(f.registry.listExchanges());
    const stored = f.store.snapshot();
    await expectKmqError(act(), code, ...fragments);
    expect(JSON.stringify(f.registry.listExchanges())).toBe(memory);
    expect(f.store.snapshot()).toBe(stored);
  }

  it('refuses invalid exchanges with a message naming the problem', async () => {
    const f = await routingFixture();
    const r = f.registry;
    await rejects(f, () => r.createExchange({ name: '', type: 'direct' }), ErrorCode.InvalidExchange, 'reserved');
    await rejects(f, () => r.createExchange({ name: 'a b', type: 'direct' }), ErrorCode.InvalidExchange, '"a b"', '1-200 characters');
    await rejects(f, () => r.createExchange({ name: 'x'.repeat(201), type: 'direct' }), ErrorCode.InvalidExchange, '1-200 characters');
    await rejects(f, () => r.createExchange({ name: 'x', type: 'bogus' as 'direct' }), ErrorCode.InvalidExchange, '"bogus"', 'direct, topic, fanout, headers');
    await rejects(f, () => r.createExchange({ name: 'x', type: 'direct', alternate: { kind: 'stream' as 'queue', name: 'a' } }), ErrorCode.InvalidExchange, 'alternate', '"stream"');
    await rejects(f, () => r.createExchange({ name: 'x', type: 'direct', alternate: q('') }), ErrorCode.InvalidExchange, 'alternate', 'name');
    await rejects(f, () => r.createExchange({ name: 'tp', type: 'direct' }), ErrorCode.ExchangeExists, '"tp"', '"topic"', '"direct"');
    await rejects(f, () => r.createExchange({ name: 'tp', type: 'direct' }, { ifNotExists: true }), ErrorCode.ExchangeExists, '"topic"', '"direct"');
    await rejects(f, () => r.createExchange({ name: 'tp', type: 'topic' }), ErrorCode.ExchangeExists, 'already exists');
    await rejects(f, () => r.createExchange({ name: 'tp', type: 'topic', alternate: q('alt') }, { ifNotExists: true }), ErrorCode.ExchangeExists, 'alternate');
    await rejects(f, () => r.createExchange({ name: 'tp', type: 'topic', internal: true }, { ifNotExists: true }), ErrorCode.ExchangeExists, 'internal');
    await rejects(f, () => r.deleteExchange('nope'), ErrorCode.UnknownExchange, '"nope"');
    // The same declaration with ifNotExists is fine and changes nothing.
    const before = f.store.calls.length;
    await r.createExchange({ name: 'tp', type: 'topic' }, { ifNotExists: true });
    await r.deleteExchange('nope', { ifExists: true });
    expect(f.store.calls.length).toBe(before);
  });

  it('refuses invalid bindings with a message naming the problem', async () => {
    const f = await routingFixture();
    const r = f.registry;
    await rejects(f, () => r.bind({ exchange: 'nope', destination: q('q1'), routingKey: 'a' }), ErrorCode.UnknownExchange, '"nope"');
    await rejects(f, () => r.bind({ exchange: 'tp', destination: q('missing'), routingKey: 'a' }), ErrorCode.UnknownQueue, '"missing"');
    await rejects(f, () => r.bind({ exchange: 'tp', destination: t('missing'), routingKey: 'a' }), ErrorCode.UnknownTopic, '"missing"');
    await rejects(f, () => r.bind({ exchange: 'tp', destination: q('q1'), routingKey: 'a.b*' }), ErrorCode.InvalidRoutingPattern, '"a.b*"', 'whole words', 'word 2 is "b*"');
    await rejects(f, () => r.bind({ exchange: 'tp', destination: q('q1'), routingKey: 'a.'.repeat(128) }), ErrorCode.InvalidRoutingPattern, '256 bytes');
    await rejects(f, () => r.bind({ exchange: 'd', destination: q('q1'), routingKey: 'k'.repeat(256) }), ErrorCode.InvalidRoutingKey, '255 bytes');
    await rejects(f, () => r.bind({ exchange: 'd', destination: q('q1'), routingKey: 'k', headers: { a: '1' } }), ErrorCode.InvalidRequest, 'only to headers exchanges');
    await rejects(f, () => r.bind({ exchange: 'h', destination: q('q1'), routingKey: '', match: 'most' as 'all' }), ErrorCode.InvalidRequest, '"most"');
    await rejects(f, () => r.bind({ exchange: 'h', destination: q('q1'), routingKey: '', headers: { a: 1 as unknown as string } }), ErrorCode.InvalidRequest, 'header "a"');
    await rejects(f, () => r.bind({ exchange: 'd', destination: { kind: 'exchange' as 'queue', name: 'q1' }, routingKey: 'k' }), ErrorCode.InvalidRequest, '"exchange"');
    await rejects(f, () => r.unbind({ exchange: 'tp', destination: q('q1'), routingKey: 'order.#' }), ErrorCode.UnknownBinding, 'queue "q1"', '"order.#"');
    await rejects(f, () => r.unbind({ exchange: 'h', destination: q('q1'), routingKey: '', headers: { format: 'pdf', type: 'report' }, match: 'any' }), ErrorCode.UnknownBinding);
    await rejects(f, () => r.unbind({ exchange: 'nope', destination: q('q1'), routingKey: 'a' }), ErrorCode.UnknownExchange, '"nope"');
  });

  it('leaves memory and store unchanged when the store fails', async () => {
    const f = await routingFixture();
    const r = f.registry;
    const memory = JSON.stringify(r.listExchanges());
    const stored = f.store.snapshot();
    for (const act of [
      () => r.createExchange({ name: 'new', type: 'fanout' }),
      () => r.bind({ exchange: 'tp', destination: q('q1'), routingKey: 'x.#' }),
      () => r.unbind({ exchange: 'tp', destination: q('q1'), routingKey: 'order.*.created' }),
      () => r.removeDestination(t('t2')),
    ]) {
      f.store.failNext = true;
      await expect(act()).rejects.toThrow(/store unavailable/);
      expect(JSON.stringify(r.listExchanges())).toBe(memory);
      expect(f.store.snapshot()).toBe(stored);
    }
    expect(names(r.route('tp', 'x.y').destinations)).toEqual(['topic/t1']);
    expect(names(r.route('tp', 'order.eu.created').destinations)).toEqual(['queue/q1', 'queue/q2', 'topic/t1']);
  });

  it('refuses changes before start', async () => {
    const registry = new ExchangeRegistry(new MemoryRoutingStore(), () => true);
    await expectKmqError(registry.createExchange({ name: 'x', type: 'direct' }), ErrorCode.BrokerNotAvailable, 'not started');
  });
});

describe('ExchangeRegistry bindings and persistence', () => {
  it('binds idempotently', async () => {
    const { registry, store } = await fixture();
    await registry.createExchange({ name: 'x', type: 'headers' });
    const b: BindingSpec = { exchange: 'x', destination: q('q1'), routingKey: '', headers: { b: '2', a: '1' } };
    await registry.bind(b);
    await registry.bind(b);
    // Same binding: header order and the default match do not make it another one.
    await registry.bind({ ...b, headers: { a: '1', b: '2' }, match: 'all' });
    expect(registry.listExchanges()[0]!.bindings).toEqual([{ exchange: 'x', destination: q('q1'), routingKey: '', headers: { a: '1', b: '2' }, match: 'all' }]);
    expect(store.bindings.size).toBe(1);
    expect(store.calls.filter((c) => c.startsWith('putBinding'))).toHaveLength(1);
    // Different match mode: another binding.
    await registry.bind({ ...b, match: 'any' });
    expect(store.bindings.size).toBe(2);
  });

  it('binds concurrently without duplicates or lost updates', async () => {
    const { registry, store } = await fixture();
    await registry.createExchange({ name: 'x', type: 'topic' });
    const results = await Promise.allSettled([
      registry.bind({ exchange: 'x', destination: q('q1'), routingKey: 'a.#' }),
      registry.bind({ exchange: 'x', destination: q('q1'), routingKey: 'a.#' }),
      registry.bind({ exchange: 'x', destination: q('q2'), routingKey: 'a.#' }),
      registry.createExchange({ name: 'y', type: 'direct' }),
      registry.createExchange({ name: 'y', type: 'direct' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    expect(store.bindings.size).toBe(2);
    expect(names(registry.route('x', 'a.b').destinations)).toEqual(['queue/q1', 'queue/q2']);
  });

  it('unbinds exactly the binding named', async () => {
    const { registry, store } = await routingFixture();
    await registry.unbind({ exchange: 'd', destination: q('q1'), routingKey: 'red' });
    expect(names(registry.route('d', 'red').destinations)).toEqual(['queue/q2']);
    await registry.unbind({ exchange: 'f', destination: q('q1'), routingKey: '' });
    expect(names(registry.route('f', '').destinations)).toEqual(['queue/q1', 'queue/q2']);
    await registry.unbind({ exchange: 'f', destination: q('q1'), routingKey: 'other' });
    expect(names(registry.route('f', '').destinations)).toEqual(['queue/q2']);
    await registry.unbind({ exchange: 'h', destination: q('q3'), routingKey: '', headers: {}, match: 'all' });
    expect(names(registry.route('h', '', {}).destinations)).toEqual([]);
    expect([...store.bindings.values()].some((b) => b.exchange === 'h' && b.destination.name === 'q3')).toBe(false);
  });

  it('removeDestination drops every binding to it and counts them', async () => {
    const { registry, store } = await routingFixture();
    const before = store.bindings.size;
    expect(await registry.removeDestination(q('q1'))).toBe(5);
    expect(store.bindings.size).toBe(before - 5);
    expect(names(registry.route('tp', 'order.eu.created').destinations)).toEqual(['queue/q2', 'topic/t1']);
    expect(names(registry.route('d', 'red').destinations)).toEqual(['queue/q2']);
    expect(names(registry.route('f', '').destinations)).toEqual(['queue/q2']);
    expect(names(registry.route('h', '', { format: 'pdf', type: 'report' }).destinations)).toEqual(['queue/q2', 'queue/q3']);
    expect(await registry.removeDestination(q('q1'))).toBe(0);
    // Same name, other kind: a different destination.
    expect(await registry.removeDestination(t('q2'))).toBe(0);
    await expectKmqError(registry.removeDestination({ kind: 'nope' as 'queue', name: 'x' }), ErrorCode.InvalidRequest);
  });

  it('deleteExchange removes its bindings from the store first', async () => {
    const { registry, store } = await routingFixture();
    await registry.deleteExchange('tp');
    expect(store.exchanges.has('tp')).toBe(false);
    expect([...store.bindings.values()].filter((b) => b.exchange === 'tp')).toEqual([]);
    expect(store.calls.slice(-6)).toEqual([...Array.from({ length: 5 }, () => 'deleteBinding tp'), 'deleteExchange tp']);
    await expectKmqError(() => registry.route('tp', 'a'), ErrorCode.UnknownExchange);
    // A new exchange of the same name starts without the old bindings.
    await registry.createExchange({ name: 'tp', type: 'fanout' });
    expect(registry.route('tp', 'order.x').unroutable).toBe(true);
  });

  it('a new registry over the same store has the same exchanges, bindings and routes', async () => {
    const first = await routingFixture();
    await first.registry.createExchange({ name: 'alt-x', type: 'direct', alternate: q('alt'), internal: true });
    await first.registry.unbind({ exchange: 'd', destination: q('q2'), routingKey: 'red' });
    const second = await fixture(first.store);
    expect(second.registry.listExchanges()).toEqual(first.registry.listExchanges());
    expect(second.registry.getExchange('alt-x')).toEqual({ name: 'alt-x', type: 'direct', alternate: q('alt'), internal: true });
    for (const [exchange, key, headers] of routingTable) {
      expect(second.registry.route(exchange, key, headers)).toEqual(first.registry.route(exchange, key, headers));
    }
    expect(second.registry.route('alt-x', 'k').usedAlternate).toBe(true);
  });

  it('skips stored bindings whose exchange is gone, and refuses invalid stored data', async () => {
    const store = new MemoryRoutingStore();
    store.bindings.set('orphan', { exchange: 'gone', destination: q('q1'), routingKey: 'a' });
    const { registry } = await fixture(store);
    expect(registry.listExchanges()).toEqual([]);

    store.exchanges.set('tp', { name: 'tp', type: 'topic' });
    store.bindings.set('bad', { exchange: 'tp', destination: q('q1'), routingKey: 'a#' });
    const fresh = new ExchangeRegistry(store, () => true);
    await expectKmqError(fresh.start(), ErrorCode.InvalidRoutingPattern, '"a#"');
  });

  it('lists copies that callers cannot use to change the registry', async () => {
    const { registry } = await routingFixture();
    const list = registry.listExchanges();
    expect(list.map((e) => e.name)).toEqual(['d', 'f', 'h', 'tp']);
    list[0]!.bindings[0]!.destination.name = 'changed';
    list[0]!.bindings.length = 0;
    expect(registry.listExchanges()).not.toEqual(list);
    expect(names(registry.route('d', 'red').destinations)).toEqual(['queue/q1', 'queue/q2']);
  });
});
