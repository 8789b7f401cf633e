import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coordinationStoreContract, until } from '../../broker/cluster/coordination-store.contract.js';
import type { WatchEvent } from '../../broker/cluster/coordination-store.js';
import { EtcdCoordinationStore } from '../../broker/cluster/etcd-coordination-store.js';
import { KmqError } from '../../lib/errors.js';
import { EtcdProcess } from '../utils/etcd-process.js';

let etcd: EtcdProcess;
beforeAll(async () => {
  etcd = await EtcdProcess.start();
});
afterAll(async () => {
  await etcd?.stop();
});

// Stores of one suite share a prefix, as the brokers of one cluster do; each test works under its own keys.
const clusterPrefix = `/kmq/${randomUUID()}/`;
// etcd grants at least its minimum lease TTL (2 s with the default election timeout).
coordinationStoreContract('etcd', {
  open: () => Promise.resolve(new EtcdCoordinationStore({ endpoints: [etcd.clientUrl], prefix: clusterPrefix })),
  leaseTtlMs: 2000,
});

describe('etcd coordination store when etcd dies and comes back', () => {
  it('reports the lease lost and fails retriably while etcd is down, then recovers and resumes the watch', async () => {
    const prefix = `/kmq/${randomUUID()}/`;
    const store = new EtcdCoordinationStore({ endpoints: [etcd.clientUrl], prefix, callTimeoutMs: 1000 });
    const writer = new EtcdCoordinationStore({ endpoints: [etcd.clientUrl], prefix, callTimeoutMs: 1000 });
    try {
      const events: WatchEvent[] = [];
      await store.watch('w/', (e) => events.push(e));
      const lease = await store.grantLease(2000);
      await store.put('brokers/1', 'b1', { lease });
      const before = await writer.put('w/a', 'before');
      await until('the first event', 5000, () => events.length >= 1);

      await etcd.kill();
      const lost = await Promise.race([lease.lost, new Promise<'not lost'>((r) => setTimeout(() => r('not lost'), 10_000))]);
      expect(lost).toBeInstanceOf(KmqError);
      expect((lost as KmqError).retriable).toBe(true);
      expect(lease.ended).toBe(true);
      const failed = await store.get('brokers/1').then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failed).toBeInstanceOf(KmqError);
      expect((failed as KmqError).retriable).toBe(true);

      await etcd.restart();
      let after = 0;
      await until('a write succeeds after the restart', 30_000, async () => {
        try {
          after = (await writer.put('w/b', 'after')).version;
          return true;
        } catch (err) {
          expect((err as KmqError).retriable).toBe(true);
          return false;
        }
      });
      await until('the watch sees the write after the restart', 30_000, () => events.some((e) => e.type === 'resync' || (e.type === 'put' && e.key === 'w/b')));
      const puts = events.filter((e) => e.type === 'put');
      if (!events.some((e) => e.type === 'resync')) {
        expect(puts).toEqual([
          { type: 'put', key: 'w/a', value: 'before', version: before.version },
          { type: 'put', key: 'w/b', value: 'after', version: after },
        ]);
      }
      // Either way the watch is live again: a later write arrives with its version.
      const later = await writer.put('w/c', 'later');
      await until('the watch sees a later write', 10_000, () => events.some((e) => e.type === 'put' && e.key === 'w/c' && e.version === later.version));
      // The lease expired at etcd while it was down (or right after): its key is gone.
      await until('the leased key is gone', 10_000, async () => (await store.get('brokers/1')) === undefined);
      const fresh = await store.grantLease(2000);
      expect((await store.put('brokers/1', 'again', { lease: fresh, ifVersion: 'absent' })).ok).toBe(true);
      await fresh.revoke();
    } finally {
      await store.close();
      await writer.close();
    }
  });
});
