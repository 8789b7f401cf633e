import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { CoordinationV1Api, CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coordinationStoreContract, until } from '../../broker/cluster/coordination-store.contract.js';
import type { WatchEvent } from '../../broker/cluster/coordination-store.js';
import { KUBERNETES_COORDINATION_STORE_RBAC_RULES, KubernetesCoordinationStore } from '../../broker/cluster/kubernetes-coordination-store.js';
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

  it('keeps one Lease object per lease, deleted by revoke; a lease whose Lease object is deleted is lost', async () => {
    const store = open({ identity: 'broker-7' });
    const coordination = cp.kubeConfig.makeApiClient(CoordinationV1Api);
    try {
      const revoked = await store.grantLease(3000);
      await revoked.revoke();
      await expect(coordination.readNamespacedLease({ name: revoked.id, namespace })).rejects.toMatchObject({ code: 404 });

      const lease = await store.grantLease(2500);
      expect(lease.ttlMs).toBe(3000);
      const object = await coordination.readNamespacedLease({ name: lease.id, namespace });
      expect(object.spec).toMatchObject({ holderIdentity: 'broker-7', leaseDurationSeconds: 3 });
      await store.put('k', 'v', { lease });
      await coordination.deleteNamespacedLease({ name: lease.id, namespace });
      const deletedAt = Date.now();
      const err = await lease.lost;
      // The next renewal (every ttl/3 = 1 s) finds it gone.
      expect(Date.now() - deletedAt).toBeLessThan(2500);
      expect(err).toMatchObject({ code: ErrorCode.BrokerNotAvailable, retriable: true });
      expect(err.message).toMatch(/deleted/);
      await until('the key is gone', 5000, async () => (await store.get('k')) === undefined);
    } finally {
      await store.close();
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

  it('works with exactly the documented RBAC, and names the verb and resource it lacks', async () => {
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    const name = `store-${randomUUID().slice(0, 8)}`;
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
    const token = await core.createNamespacedServiceAccountToken({ name, namespace, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'test', server: cp.server, caData: cp.kubeConfig.getCurrentCluster()!.caData }],
      users: [{ name, token: token.status!.token }],
      contexts: [{ name: 'test', cluster: 'test', user: name }],
      currentContext: 'test',
    });
    const prefix = `/kmq/${randomUUID()}/`;
    const store = new KubernetesCoordinationStore({ kubeConfig, namespace, prefix, sweepIntervalMs: SWEEP_MS });
    const admin = open({ prefix });
    try {
      const denied = await store.get('a').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(denied).toMatchObject({ code: ErrorCode.InvalidConfig, retriable: false });
      expect((denied as Error).message).toMatch(/forbidden to get configmaps in namespace .*RBAC verb 'get' on 'configmaps'/);

      // Without watch and update of configmaps: a watch and a write are refused, naming them.
      const partial = [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create'] }];
      await rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules: partial } });
      await rbac.createNamespacedRoleBinding({
        namespace,
        body: { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', name, namespace }] },
      });
      await until('the role applies', 10_000, async () => (await store.get('a').then(() => true, () => false)));
      await expect(store.put('a', 'x')).rejects.toMatchObject({ code: ErrorCode.InvalidConfig, message: expect.stringMatching(/forbidden to update configmaps/) as string });
      await expect(store.watch('', () => undefined)).rejects.toMatchObject({ code: ErrorCode.InvalidConfig, message: expect.stringMatching(/forbidden to watch configmaps/) as string });

      await rbac.replaceNamespacedRole({ name, namespace, body: { metadata: { name }, rules: [...KUBERNETES_COORDINATION_STORE_RBAC_RULES] } });
      await until('the full role applies', 10_000, async () => (await store.put('a', 'x').then(() => true, () => false)));
      const events: WatchEvent[] = [];
      await store.watch('', (e) => events.push(e));
      const lease = await store.grantLease(1000);
      const put = await store.put('brokers/1', 'b1', { lease, ifVersion: 'absent' });
      expect(put.ok).toBe(true);
      expect((await store.list('brokers/')).map((e) => e.key)).toEqual(['brokers/1']);
      // Sweeping another holder's expired lease: list and delete Leases, update the ConfigMap.
      const orphan = await admin.grantLease(1000, { keepAlive: false });
      await admin.put('brokers/2', 'b2', { lease: orphan });
      await admin.close();
      await until('the orphan is swept', 10_000, () => events.some((e) => e.type === 'delete' && e.key === 'brokers/2'));
      await lease.revoke();
      await until('the revoke is seen', 5000, () => events.some((e) => e.type === 'delete' && e.key === 'brokers/1'));
      expect(events.some((e) => e.type === 'resync')).toBe(false);
    } finally {
      await store.close();
      await admin.close();
    }
  });

  it('times out retriably while the API server is paused, and carries on after', async () => {
    const prefix = `/kmq/${randomUUID()}/`;
    const store = open({ prefix, callTimeoutMs: 1000 });
    const pid = apiserverPid();
    try {
      await store.put('a', '1');
      process.kill(pid, 'SIGSTOP');
      try {
        const started = Date.now();
        await expect(store.get('a')).rejects.toMatchObject({ code: ErrorCode.RequestTimedOut, retriable: true });
        expect(Date.now() - started).toBeLessThan(3000);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      await until('reads work again', 20_000, async () => (await store.get('a').then((v) => v?.value, () => undefined)) === '1');
    } finally {
      await store.close();
    }
  });

  it('reports the lease lost and fails retriably while the API server is down, then recovers and resumes the watch', async () => {
    const prefix = `/kmq/${randomUUID()}/`;
    const store = open({ prefix, callTimeoutMs: 1000 });
    const writer = open({ prefix, callTimeoutMs: 1000 });
    try {
      const events: WatchEvent[] = [];
      await store.watch('w/', (e) => events.push(e));
      const lease = await store.grantLease(2000);
      await store.put('brokers/1', 'b1', { lease });
      const before = await writer.put('w/a', 'before');
      await until('the first event', 5000, () => events.length >= 1);

      await cp.stopApiserver();
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

      await cp.startApiserver();
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
      if (!events.some((e) => e.type === 'resync')) {
        expect(events).toEqual([
          { type: 'put', key: 'w/a', value: 'before', version: before.version },
          { type: 'put', key: 'w/b', value: 'after', version: after },
        ]);
      }
      const later = await writer.put('w/c', 'later');
      await until('the watch sees a later write', 10_000, () => events.some((e) => e.type === 'put' && e.key === 'w/c' && e.version === later.version));
      // The lease expired while the API server was down: its key is gone.
      await until('the leased key is gone', 10_000, async () => (await writer.get('brokers/1')) === undefined);
      const fresh = await store.grantLease(2000);
      expect((await store.put('brokers/1', 'again', { lease: fresh, ifVersion: 'absent' })).ok).toBe(true);
      await fresh.revoke();
    } finally {
      await cp.startApiserver();
      await store.close();
      await writer.close();
    }
  });
});
