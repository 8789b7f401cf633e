import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { BrokerRegistry, compileBrokerRegistryOptions } from './broker-registry.js';
import { brokerKey } from './cluster-metadata.js';
import type { BrokerRegistration } from './cluster-metadata.js';
import { MemoryCoordinationStore } from './memory-coordination-store.js';
import { StoreClient, eventually } from './test-fixtures.js';

const fast = { initialMs: 5, maxMs: 20, multiplier: 2, jitter: 0 };
const registries: BrokerRegistry[] = [];

function registration(id: number, incarnation = `inc-${id}`): BrokerRegistration {
  return { id, host: '127.0.0.1', port: 9000 + id, httpPort: -1, incarnation };
}

function registry(store: StoreClient, registerTimeoutMs = 5000): BrokerRegistry {
  const r = new BrokerRegistry({ store, leaseTtlMs: 1000, registerTimeoutMs, retryBackoff: fast });
  registries.push(r);
  return r;
}

afterEach(async () => {
  for (const r of registries.splice(0)) await r.deregister();
});

describe('BrokerRegistry', () => {
  it('registers under brokers/<id> bound to its lease, and every registry sees the live set', async () => {
    const shared = new MemoryCoordinationStore();
    const a = registry(new StoreClient(shared));
    const b = registry(new StoreClient(shared));
    const seen: number[][] = [];
    b.on('brokersChanged', (live) => seen.push([...live.keys()].sort()));
    await b.start();
    await a.register(registration(1));
    await b.register(registration(2));
    expect(JSON.parse((await shared.get(brokerKey(1)))!.value)).toEqual(registration(1));
    expect(a.registered).toBe(true);
    expect(a.lease?.ttlMs).toBe(1000);
    await eventually('both see both', 1000, () => a.live().size === 2 && b.live().size === 2);
    expect(b.live().get(1)).toEqual(registration(1));
    expect(seen).toEqual([[1], [1, 2]]);

    await a.deregister();
    expect(await shared.get(brokerKey(1))).toBeUndefined();
    expect([...b.live().keys()]).toEqual([2]);
    expect(seen.at(-1)).toEqual([2]);
  });

  it("waits for a killed process's registration to expire, then registers", async () => {
    const shared = new MemoryCoordinationStore();
    const old = new StoreClient(shared);
    await registry(old).register(registration(3, 'old'));
    await old.crash();
    const restarted = registry(new StoreClient(shared));
    let done = false;
    const registering = restarted.register(registration(3, 'new')).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(done).toBe(false);
    expect(JSON.parse((await shared.get(brokerKey(3)))!.value).incarnation).toBe('old');

    await old.expireLeases();
    await registering;
    expect(JSON.parse((await shared.get(brokerKey(3)))!.value).incarnation).toBe('new');
    expect(restarted.live().get(3)?.incarnation).toBe('new');
  });

  it('fails with a clear error naming the broker id when another live process keeps the id', async () => {
    const shared = new MemoryCoordinationStore();
    await registry(new StoreClient(shared)).register(registration(4, 'first'));
    const second = registry(new StoreClient(shared), 150);
    const err = await second.register(registration(4, 'second')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KmqError);
    expect((err as KmqError).code).toBe(ErrorCode.InvalidConfig);
    expect((err as KmqError).message).toMatch(/Broker id 4 is registered by another process \(incarnation first\)/);
    expect((err as KmqError).context.broker).toBe('4');
    expect(second.registered).toBe(false);
    // The loser's lease was revoked, the winner's registration is untouched.
    expect(JSON.parse((await shared.get(brokerKey(4)))!.value).incarnation).toBe('first');
  });

  it('gives up after the timeout while the store is unreachable, retriably', async () => {
    const client = new StoreClient(new MemoryCoordinationStore());
    client.cut();
    const r = registry(client, 100);
    const err = await r.register(registration(12)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KmqError);
    expect((err as KmqError).code).toBe(ErrorCode.BrokerNotAvailable);
    expect((err as KmqError).retriable).toBe(true);
    expect((err as KmqError).message).toMatch(/^Broker 12 could not register: /);
    // It may try again once the store is back.
    client.heal();
    await r.register(registration(12));
    expect(r.registered).toBe(true);
  });

  it('takes over a registration of its own incarnation (a put whose reply was lost)', async () => {
    const shared = new MemoryCoordinationStore();
    await shared.put(brokerKey(5), JSON.stringify(registration(5, 'same')));
    const r = registry(new StoreClient(shared), 100);
    await r.register(registration(5, 'same'));
    expect(r.registered).toBe(true);
    // Bound to its lease now: deregistering removes it.
    await r.deregister();
    expect(await shared.get(brokerKey(5))).toBeUndefined();
  });

  it('reports a lost lease, then registers again once the store is reachable', async () => {
    const shared = new MemoryCoordinationStore();
    const client = new StoreClient(shared);
    const r = registry(client);
    const watcher = registry(new StoreClient(shared));
    await watcher.start();
    const events: string[] = [];
    r.on('lost', () => events.push('lost'));
    r.on('registered', () => events.push('registered'));
    await r.register(registration(6));
    const firstLease = r.lease!;

    client.cut();
    await client.expireLeases();
    await eventually('lost reported', 1000, () => events.includes('lost'));
    expect(r.registered).toBe(false);
    expect(r.lease).toBeUndefined();
    expect(await shared.get(brokerKey(6))).toBeUndefined();
    await eventually('the others see it gone', 1000, () => !watcher.live().has(6));
    await new Promise((res) => setTimeout(res, 50));
    expect(events).toEqual(['registered', 'lost']);

    client.heal();
    await eventually('registered again', 2000, () => r.registered);
    expect(events).toEqual(['registered', 'lost', 'registered']);
    expect(r.lease).not.toBe(firstLease);
    expect(JSON.parse((await shared.get(brokerKey(6)))!.value)).toEqual(registration(6));
    await eventually('the others see it back', 1000, () => watcher.live().has(6));
  });

  it('re-lists after a resync and catches up with what it missed', async () => {
    const shared = new MemoryCoordinationStore();
    const client = new StoreClient(shared);
    const r = registry(client);
    await r.register(registration(7));
    client.cut();
    const other = registry(new StoreClient(shared));
    await other.register(registration(8));
    expect(r.live().has(8)).toBe(false);
    client.heal();
    await eventually('sees the broker registered while cut off', 1000, () => r.live().has(8));
    expect([...r.live().keys()].sort()).toEqual([7, 8]);
  });

  it('ignores a registration that does not decode and keeps the last good one', async () => {
    const shared = new MemoryCoordinationStore();
    const r = registry(new StoreClient(shared));
    await r.start();
    await shared.put(brokerKey(9), JSON.stringify(registration(9)));
    await shared.put(brokerKey(9), '{not json');
    await shared.put(brokerKey(10), JSON.stringify({ id: 'ten' }));
    await shared.put('brokers/x', JSON.stringify(registration(11)));
    expect(r.live()).toEqual(new Map([[9, registration(9)]]));
  });

  it('refuses invalid options, naming the setting', () => {
    const store = new MemoryCoordinationStore();
    expect(() => compileBrokerRegistryOptions({ store, leaseTtlMs: 0 })).toThrow(/leaseTtlMs/);
    expect(() => compileBrokerRegistryOptions({ store, registerTimeoutMs: -1 })).toThrow(/registerTimeoutMs/);
    expect(compileBrokerRegistryOptions({ store })).toMatchObject({ leaseTtlMs: 6000, registerTimeoutMs: 18_000 });
  });
});
