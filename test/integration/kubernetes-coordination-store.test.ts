import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coordinationStoreContract, until } from '../../broker/cluster/coordination-store.contract.js';
import type { WatchEvent } from '../../broker/cluster/coordination-store.js';
import { KubernetesCoordinationStore } from '../../broker/cluster/kubernetes-coordination-store.js';
import type { KubernetesCoordinationStoreOptions } from '../../broker/cluster/kubernetes-coordination-store.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { ControlPlane } from '../utils/control-plane.js';

// The kubernetes coordination store against a real kube-apiserver (and its etcd).

let cp: ControlPlane;
const namespace = `kmq-store-${process.pid}`;

beforeAll(async () => {
  cp = await ControlPlane.start();
  await cp.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
}, 120_000);
afterAll(async () => {
  await cp?.stop();
});

const SWEEP_MS = 500;
const open = (overrides: Partial<KubernetesCoordinationStoreOptions> = {}): KubernetesCoordinationStore =>
  new KubernetesCoordinationStore({ kubeConfig: cp.kubeConfig, namespace, prefix: `/kmq/${randomUUID()}/`, sweepIntervalMs: SWEEP_MS, ...overrides });

// Stores of one suite share a ConfigMap, as the brokers of one cluster do; each test works under its own keys.
const clusterPrefix = `/kmq/${randomUUID()}/`;
coordinationStoreContract('kubernetes', {
  open: () => Promise.resolve(open({ prefix: clusterPrefix })),
  leaseTtlMs: 2000,
});

/** The pid of the control plane's kube-apiserver. */
function apiserverPid(): number {
  const pid = cp.pids.find((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')[0]!.endsWith('kube-apiserver'));
  if (pid === undefined) throw new Error('no kube-apiserver process');
  return pid;
}

describe('kubernetes coordination store', () => {
  it('deletes the keys of a holder that stopped renewing, for another store, with a watch delete event', async () => {
    const prefix = `/kmq/${randomUUID()}/`;
    const holder = open({ prefix });
    const other = open({ prefix });
    try {
      const lease = await holder.grantLease(2000);
      const put = await holder.put('brokers/1', 'b1', { lease });
      const events: WatchEvent[] = [];
      await other.watch('brokers/', (e) => events.push(e));
      await new Promise((r) => setTimeout(r, lease.ttlMs * 1.5));
      expect((await other.get('brokers/1'))?.value).toBe('b1');

      // Crashes, as far as the store can tell: renewals stop, nothing is revoked.
      await holder.close();
      const stoppedAt = Date.now();
      await until('the delete event', lease.ttlMs + SWEEP_MS * 2 + 5000, () => events.length > 0);
      const elapsed = Date.now() - stoppedAt;
      // Last renewal up to ttl/3 before the stop; expired after ttl + 500 ms of clock-skew allowance.
      expect(elapsed).toBeGreaterThanOrEqual((lease.ttlMs * 2) / 3);
      expect(elapsed).toBeLessThan(lease.ttlMs + 500 + SWEEP_MS * 1.2 + 2000);
      expect(events).toEqual([{ type: 'delete', key: 'brokers/1', version: expect.any(Number) as number }]);
      expect((events[0] as { version: number }).version).toBeGreaterThan(put.version);
      expect(await other.get('brokers/1')).toBeUndefined();
      expect(await other.list('brokers/')).toEqual([]);
      // The sweeper deleted the expired Lease object too.
      const leases = await cp.kubeConfig.makeApiClient(CoordinationV1Api).listNamespacedLease({ namespace });
      expect(leases.items.map((l) => l.metadata?.name)).not.toContain(lease.id);
      // The key can be registered again, as a restarted broker does.
      const again = await other.grantLease(2000);
      expect((await other.put('brokers/1', 'b1 again', { lease: again, ifVersion: 'absent' })).ok).toBe(true);
      await again.revoke();
    } finally {
      await holder.close();
      await other.close();
    }
  });

  it('treats the key of an expired, unswept lease as absent and sweeps it on write', async () => {
    const prefix = `/kmq/${randomUUID()}/`;
    // Sweeps so rare that only reads and writes find the dead lease.
    const holder = open({ prefix, sweepIntervalMs: 600_000 });
    const other = open({ prefix, sweepIntervalMs: 600_000 });
    try {
      const lease = await holder.grantLease(1000, { keepAlive: false });
      await holder.put('controller', 'broker-1', { lease });
      const events: WatchEvent[] = [];
      await other.watch('', (e) => events.push(e));
      await lease.lost;
      await until('the key reads as absent', 5000, async () => (await other.get('controller')) === undefined);
      const won = await other.put('controller', 'broker-2', { ifVersion: 'absent' });
      expect(won.ok).toBe(true);
      await until('two events', 5000, () => events.length >= 2);
      expect(events.map((e) => e.type)).toEqual(['delete', 'put']);
      expect(events[1]).toEqual({ type: 'put', key: 'controller', value: 'broker-2', version: won.version });
    } finally {
      await holder.close();
      await other.close();
    }
  });

  it('loses no update when many stores race compare-and-swap increments on one key (real 409 Conflicts)', async () => {
    const prefix = `/kmq/${randomUUID()}/`;
    const stores = Array.from({ length: 4 }, () => open({ prefix }));
    try {
      await stores[0]!.put('counter', '0');
      let wins = 0;
      let losses = 0;
      await Promise.all(
        stores.map(async (s) => {
          for (let i = 0; i < 15; i++) {
            const cur = (await s.get('counter'))!;
            const res = await s.put('counter', String(Number(cur.value) + 1), { ifVersion: cur.version });
            if (res.ok) wins++;
            else {
              losses++;
              expect(res.version).toBeGreaterThan(cur.version);
            }
          }
        }),
      );
      expect(wins + losses).toBe(60);
      expect(losses).toBeGreaterThan(0);
      expect(Number((await stores[0]!.get('counter'))!.value)).toBe(wins);
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it('refuses a write past the ConfigMap size limit, naming the size', async () => {
    const store = open();
    try {
      await store.put('small', 'x');
      const err = await store.put('big', 'x'.repeat(1024 * 1024)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KmqError);
      expect(err).toMatchObject({ code: ErrorCode.InvalidRequest, retriable: false });
      expect((err as Error).message).toMatch(/\d{7} bytes.*limit of 1048576 bytes/);
      expect((await store.get('small'))?.value).toBe('x');
      expect(await store.get('big')).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('fails retriably when the API server cannot be reached', async () => {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'nowhere', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'u', token: 'x' }],
      contexts: [{ name: 'c', cluster: 'nowhere', user: 'u' }],
      currentContext: 'c',
    });
    const store = new KubernetesCoordinationStore({ kubeConfig, namespace, prefix: '/kmq/nowhere/' });
    try {
      await expect(store.get('a')).rejects.toMatchObject({ code: ErrorCode.BrokerNotAvailable, retriable: true });
      await expect(store.put('a', 'x')).rejects.toMatchObject({ code: ErrorCode.BrokerNotAvailable, retriable: true });
    } finally {
      await store.close();
    }
  });
});
