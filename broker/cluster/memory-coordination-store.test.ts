import { describe, expect, it } from 'vitest';
import { coordinationStoreContract } from './coordination-store.contract.js';
import type { WatchEvent } from './coordination-store.js';
import { MemoryCoordinationStore } from './memory-coordination-store.js';
import { sharedClient } from './test-fixtures.js';

const shared = new MemoryCoordinationStore({ sweepIntervalMs: 20 });
coordinationStoreContract('memory', { open: () => Promise.resolve(sharedClient(shared)), leaseTtlMs: 300 });

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
