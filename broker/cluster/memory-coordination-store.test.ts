import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { coordinationStoreContract } from './coordination-store.contract.js';
import type { CoordinationStore, StopWatch, WatchEvent } from './coordination-store.js';
import { MemoryCoordinationStore } from './memory-coordination-store.js';

/** A client of one shared store (as several brokers are clients of one etcd): closing it stops only its own watches. */
function client(shared: MemoryCoordinationStore): CoordinationStore {
  let closed = false;
  const stops: StopWatch[] = [];
  const guard = <T>(fn: () => Promise<T>): Promise<T> =>
    closed ? Promise.reject(new KmqError(ErrorCode.ConnectionClosed, 'The coordination store is closed')) : fn();
  return {
    get: (key) => guard(() => shared.get(key)),
    put: (key, value, options) => guard(() => shared.put(key, value, options)),
    delete: (key, options) => guard(() => shared.delete(key, options)),
    list: (prefix) => guard(() => shared.list(prefix)),
    grantLease: (ttlMs, options) => guard(() => shared.grantLease(ttlMs, options)),
    watch: (prefix, onEvent) =>
      guard(async () => {
        const stop = await shared.watch(prefix, onEvent);
        stops.push(stop);
        return stop;
      }),
    close: async () => {
      closed = true;
      for (const stop of stops) await stop();
    },
  };
}

const shared = new MemoryCoordinationStore({ sweepIntervalMs: 20 });
coordinationStoreContract('memory', { open: () => Promise.resolve(client(shared)), leaseTtlMs: 300 });

describe('MemoryCoordinationStore with an injected clock', () => {
  it('expires a lease exactly when the clock passes its TTL, deleting its keys and telling watchers', async () => {
    let now = 1_000;
    const store = new MemoryCoordinationStore({ now: () => now, sweepIntervalMs: 0 });
    const events: WatchEvent[] = [];
    await store.watch('brokers/', (e) => events.push(e));
    const lease = await store.grantLease(10_000, { keepAlive: false });
    const put = await store.put('brokers/1', 'b1', { lease });
    now += 9_999;
    store.expireLeases();
    expect(await store.get('brokers/1')).toEqual({ value: 'b1', version: put.version });
    now += 1;
    store.expireLeases();
    expect(await store.get('brokers/1')).toBeUndefined();
    expect(lease.ended).toBe(true);
    expect((await lease.lost).retriable).toBe(true);
    expect(events).toEqual([
      { type: 'put', key: 'brokers/1', value: 'b1', version: put.version },
      { type: 'delete', key: 'brokers/1', version: put.version + 1 },
    ]);
    await store.close();
  });

  it('moves a key off a lease when it is put again without one', async () => {
    let now = 0;
    const store = new MemoryCoordinationStore({ now: () => now, sweepIntervalMs: 0 });
    const lease = await store.grantLease(100, { keepAlive: false });
    await store.put('k', 'leased', { lease });
    await store.put('k', 'plain');
    now = 200;
    store.expireLeases();
    expect((await store.get('k'))?.value).toBe('plain');
    await store.close();
  });
});
