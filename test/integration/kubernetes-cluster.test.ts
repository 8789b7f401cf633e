import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CoordinationV1Api, CoreV1Api, KubernetesObjectApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { configMapNameFor } from '../../broker/cluster/kubernetes-store-layout.js';
import { KmqClient, NO_BROKER } from '../../client/index.js';
import type { BrokerCluster } from '../../operator/api/v1alpha1/index.js';
import { applyObject } from '../../operator/apply.js';
import { buildBrokerClusterObjects } from '../../operator/builders/broker-cluster.js';
import { check, expectConsistent, readAll } from '../fault/checker.js';
import { ProduceWorkload } from '../fault/workload.js';
import { ControlPlane } from '../utils/control-plane.js';
import { TestCluster, until } from '../utils/test-cluster.js';

// Three `kmq broker` processes with --cluster-store kubernetes on a real kube-apiserver,
// each signed in as the ServiceAccount of a BrokerCluster with the Role the operator
// builds for it (a token from the TokenRequest API): they form one cluster, replicate a
// topic with replication factor 3, and a kill -9 of a partition leader loses no
// acknowledged record of an idempotent acks=all producer.

const NS = `kube-cluster-${process.pid}`;

let cp: ControlPlane | undefined;
let dir: string | undefined;
let cluster: TestCluster | undefined;
const clients: KmqClient[] = [];

function client(brokers: string[]): KmqClient {
  // Enough retries to ride out a failover (about the broker lease TTL).
  const k = new KmqClient({ brokers, requestTimeoutMs: 10_000, retry: { retries: 60, initialMs: 50, maxMs: 500 } });
  clients.push(k);
  return k;
}

/** A kubeconfig that signs in as the brokers' ServiceAccount, as a broker pod's mounted token does. */
async function brokerKubeconfig(plane: ControlPlane, folder: string): Promise<string> {
  const bc: BrokerCluster = { apiVersion: 'kmq.dev/v1alpha1', kind: 'BrokerCluster', metadata: { name: 'main', namespace: NS, uid: 'u' }, spec: { replicas: 3 } };
  const objects = KubernetesObjectApi.makeApiClient(plane.kubeConfig);
  const core = plane.kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  const identity = buildBrokerClusterObjects(bc).filter((o) => ['ServiceAccount', 'Role', 'RoleBinding'].includes(o.kind!));
  expect(identity.map((o) => o.kind)).toEqual(['ServiceAccount', 'Role', 'RoleBinding']);
  // No BrokerCluster object exists here to own them.
  for (const o of identity) await applyObject(objects, { ...o, metadata: { ...o.metadata, ownerReferences: undefined } });
  const token = await core.createNamespacedServiceAccountToken({
    namespace: NS,
    name: 'main-broker',
    body: { spec: { audiences: ['https://kubernetes.default.svc.cluster.local'], expirationSeconds: 3600 } },
  });
  const file = path.join(folder, 'broker-kubeconfig');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server: plane.server, 'certificate-authority': path.join(plane.dir, 'pki', 'ca.crt') } }],
    users: [{ name: 'main-broker', user: { token: token.status!.token } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'main-broker', namespace: NS } }],
    'current-context': 'test',
  };
  fs.writeFileSync(file, stringify(config), { mode: 0o600 });
  return file;
}

describe('a broker cluster on the kubernetes coordination store', () => {
  let kubeconfig = '';

  beforeAll(async () => {
    cp = await ControlPlane.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-kube-cluster-'));
    kubeconfig = await brokerKubeconfig(cp, dir);
    cluster = await TestCluster.start({
      brokers: 3,
      storeArgs: ['--cluster-store', 'kubernetes', '--kubeconfig', kubeconfig, '--cluster-namespace', NS],
    });
  }, 120_000);

  afterAll(async () => {
    for (const c of clients.splice(0)) await c.close().catch(() => undefined);
    await cluster?.stop();
    await cp?.stop();
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the brokers form one cluster: one controller, every broker sees the three, the store is a ConfigMap and Leases in the namespace', async () => {
    const c = cluster!;
    const views = await until('every broker sees three brokers and the same controller', 20_000, async () => {
      const vs = await Promise.all(c.bootstrap().map((a) => client([a]).admin().describeCluster()));
      const ok = vs.every((v) => v.brokers.map((b) => b.id).sort().join() === '1,2,3' && v.controllerId === vs[0]!.controllerId);
      return ok ? vs : undefined;
    });
    expect([1, 2, 3]).toContain(views[0]!.controllerId);
    const elected = c.ids.filter((id) => c.broker(id)!.logs().some((l) => l.msg === 'Elected controller'));
    expect(elected).toEqual([views[0]!.controllerId]);

    const core = cp!.kubeConfig.makeApiClient(CoreV1Api);
    const cm = await core.readNamespacedConfigMap({ namespace: NS, name: configMapNameFor(`/kmq/${c.name}/`) });
    expect(Object.keys(cm.data ?? {}).length).toBeGreaterThan(0);
    const leases = await cp!.kubeConfig.makeApiClient(CoordinationV1Api).listNamespacedLease({ namespace: NS });
    // One per broker at least (registrations); their holders are the brokers.
    const holders = new Set(leases.items.map((l) => l.spec?.holderIdentity?.replace(/-\d+$/, '')));
    for (const id of c.ids) expect(holders).toContain(`${c.name}-broker-${id}`);
  });

  it('a topic with replication factor 3 gets leaders and a full in-sync set; kill -9 of a partition leader: a new leader within 10 s and nothing acknowledged lost', async () => {
    const c = cluster!;
    const k = client(c.bootstrap());
    await k.admin().createTopic('replicated', { partitions: 3, replicationFactor: 3, config: { minInsyncReplicas: 2 } });
    await until('every partition has a leader and three in-sync replicas', 20_000, async () => {
      const d = await k.admin().describeTopic('replicated');
      return d.topic.partitions.length === 3 && d.topic.partitions.every((p) => p.leader !== NO_BROKER && p.replicas.length === 3 && p.isr.length === 3) ? true : undefined;
    });

    const work = new ProduceWorkload(k, 'replicated');
    work.start();
    await new Promise((r) => setTimeout(r, 2000));
    const before = (await k.admin().describeTopic('replicated')).topic.partitions.find((p) => p.partition === 0)!;
    const killedAt = Date.now();
    await c.kill(before.leader);
    const after = await until('a new leader of partition 0', 10_000, async () => {
      const p = (await k.admin().describeTopic('replicated')).topic.partitions.find((x) => x.partition === 0)!;
      return p.leader !== before.leader && p.leader !== NO_BROKER ? p : undefined;
    });
    const probe = k.producer({ acks: 'all' });
    await probe.send('replicated', [{ partition: 0, key: 'probe', value: 'probe' }]).finally(() => probe.close());
    const failoverMs = Date.now() - killedAt;
    await c.restart(before.leader);
    await new Promise((r) => setTimeout(r, 2000));
    await work.stop();

    await until('every partition fully in sync again', 30_000, async () => {
      const d = await k.admin().describeTopic('replicated');
      return d.topic.partitions.every((p) => p.isr.length === 3) ? true : undefined;
    });
    const r = check(work.acked, work.sent, work.failedSends, (await readAll(k, 'replicated')).filter((x) => x.value !== 'probe'));
    process.stdout.write(
      `kubernetes store, leader kill: failover ${failoverMs} ms (leader ${before.leader} -> ${after.leader}), acked ${r.acked}, read ${r.read}, failed sends ${r.failedSends}, lost ${r.lost.length}, duplicated ${r.duplicated.length}, unexpected ${r.unexpected.length}, out-of-order ${r.outOfOrder.length} ${JSON.stringify(Object.fromEntries(work.errors))}\n`,
    );
    expect(after.leader).not.toBe(before.leader);
    expect(before.isr).toContain(after.leader);
    expect(failoverMs).toBeLessThan(10_000);
    expect(r.acked).toBeGreaterThan(100);
    expectConsistent(r);
  }, 120_000);

  it('queues and exchanges: the bindings live in the store ConfigMap, and a message routed through an exchange on one broker is consumed through another', async () => {
    const c = cluster!;
    const [a, b] = c.bootstrap();
    const first = client([a!]);
    await first.admin().createQueue('kube-jobs', { partitions: 1 });
    await first.admin().createExchange('kube-events', 'topic');
    await first.admin().bind({ exchange: 'kube-events', destination: { kind: 'queue', name: 'kube-jobs' }, routingKey: 'order.*' });
    const cm = await cp!.kubeConfig.makeApiClient(CoreV1Api).readNamespacedConfigMap({ namespace: NS, name: configMapNameFor(`/kmq/${c.name}/`) });
    expect(JSON.stringify(cm.data)).toContain('order.*');
    await first.publisher().publish({ exchange: 'kube-events', routingKey: 'order.created', mandatory: true }, [{ value: 'o-1' }, { value: 'o-2' }]);

    const second = client([b!]);
    expect((await second.admin().listExchanges()).find((e) => e.name === 'kube-events')?.bindings).toHaveLength(1);
    const consumer = second.queueConsumer({ queue: 'kube-jobs' });
    const got: string[] = [];
    for await (const batch of consumer.batches()) {
      await consumer.ackAll(batch);
      got.push(...batch.map((d) => d.value!.toString()));
      if (got.length >= 2) break;
    }
    await consumer.close();
    expect(got).toEqual(['o-1', 'o-2']);
  }, 60_000);
});
