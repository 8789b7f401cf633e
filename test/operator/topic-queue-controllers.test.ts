import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { KmqClient } from '../../client/client.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { BrokerClientPool } from '../../operator/controllers/common/broker-clients.js';
import { FINALIZER } from '../../operator/controllers/common/finalizer.js';
import { exchangeController } from '../../operator/controllers/exchange.js';
import { queueController } from '../../operator/controllers/queue.js';
import { topicController } from '../../operator/controllers/topic.js';
import { Manager } from '../../operator/runtime/manager.js';
import { BrokerProcess, tempDir } from '../utils/broker-process.js';
import { ControlPlane, controlPlaneBinary, freePort } from '../utils/control-plane.js';

// The Topic, Queue and Exchange controllers in-process under a Manager, against a real
// kube-apiserver (with the controller-manager, for namespace deletion) and a real broker
// process: objects become Ready with the broker's figures, drift is repaired, bindings
// route, deletion policies hold, a broker outage is a condition, and a namespace whose
// broker is gone still finishes deleting.

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const GROUP = 'kmq.dev';
const VERSION = 'v1alpha1';
const NS = `tq-${process.pid}`;
/** A namespace without a BrokerCluster. */
const LONELY = `tq-lonely-${process.pid}`;
const PLURALS: Record<string, string> = { BrokerCluster: 'brokerclusters', Topic: 'topics', Queue: 'queues', Exchange: 'exchanges' };

type Condition = { type: string; status: string; reason: string; message: string; observedGeneration?: number };
type Obj = {
  apiVersion?: string;
  kind: string;
  metadata: { name: string; namespace?: string; finalizers?: string[]; generation?: number; deletionTimestamp?: string };
  spec: Record<string, unknown>;
  status?: Record<string, unknown> & { conditions?: Condition[]; observedGeneration?: number };
};

let cp: ControlPlane | undefined;
let broker: BrokerProcess | undefined;
let dataDir: string | undefined;
let manager: Manager | undefined;
let clients: BrokerClientPool | undefined;
let client: KmqClient | undefined;
let custom: CustomObjectsApi;
let core: CoreV1Api;

function example(file: string): Obj[] {
  const text = fs.readFileSync(path.join(root, 'examples', 'kubernetes', file), 'utf8');
  return parseAllDocuments(text).map((d) => d.toJS() as Obj);
}

function exampleNamed(file: string, name: string): Obj {
  const obj = example(file).find((o) => o.metadata.name === name);
  if (obj === undefined) throw new Error(`No ${name} in ${file}`);
  return obj;
}

async function create(obj: Obj, namespace = NS): Promise<void> {
  const body = { ...obj, apiVersion: `${GROUP}/${VERSION}`, metadata: { ...obj.metadata, namespace } };
  await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURALS[obj.kind]!, body });
}

async function get(kind: string, name: string, namespace = NS): Promise<Obj | undefined> {
  try {
    return (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURALS[kind]!, name })) as Obj;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

async function remove(kind: string, name: string, namespace = NS): Promise<void> {
  await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURALS[kind]!, name });
}

function condition(obj: Obj | undefined, type: string): Condition | undefined {
  return obj?.status?.conditions?.find((c) => c.type === type);
}

/** Polls `check` until it returns a value other than undefined / false, or fails with the last observation. */
async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The object once its Ready condition is `status` (and, when given, has `reason`). */
function waitCondition(kind: string, name: string, type: string, status: string, reason?: string, namespace = NS, timeoutMs = 30_000): Promise<Obj> {
  return eventually(`${kind} ${name} ${type}=${status}${reason === undefined ? '' : ` (${reason})`}`, async () => {
    const obj = await get(kind, name, namespace);
    const c = condition(obj, type);
    return c !== undefined && c.status === status && (reason === undefined || c.reason === reason) && obj!.status?.observedGeneration === obj!.metadata.generation ? obj : undefined;
  }, timeoutMs);
}

async function topicExists(name: string): Promise<boolean> {
  try {
    await client!.admin().describeTopic(name);
    return true;
  } catch (err) {
    if (err instanceof KmqError && err.code === ErrorCode.UnknownTopic) return false;
    throw err;
  }
}

async function queueExists(name: string): Promise<boolean> {
  try {
    await client!.admin().describeQueue(name);
    return true;
  } catch (err) {
    if (err instanceof KmqError && err.code === ErrorCode.UnknownQueue) return false;
    throw err;
  }
}

let brokerPorts: { port: number; httpPort: number } | undefined;

/**
 * Starts the broker on its data folder; a restart keeps the ports, as a Service address
 * stays the same. They are picked outside the ephemeral range, so no client connection
 * of another test can take them while the broker is down.
 */
async function startBroker(): Promise<void> {
  brokerPorts ??= { port: await freePort(), httpPort: await freePort() };
  broker = await BrokerProcess.start({ dataDir: dataDir!, args: ['--port', String(brokerPorts.port), '--http-port', String(brokerPorts.httpPort)] });
  expect(broker.port).toBe(brokerPorts.port);
  client ??= new KmqClient({ brokers: [broker.address], retry: { retries: 2, initialMs: 50, maxMs: 500 } });
}

beforeAll(async () => {
  cp = await ControlPlane.start({ controllerManager: true });
  custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  core = cp.kubeConfig.makeApiClient(CoreV1Api);
  await run(controlPlaneBinary('kubectl'), ['apply', '--server-side', '--field-manager=kmq-test', '-f', path.join(root, 'crds'), '--kubeconfig', cp.kubeconfigPath]);
  const ext = cp.kubeConfig.makeApiClient(ApiextensionsV1Api);
  for (const p of Object.values(PLURALS)) {
    await eventually(`CRD ${p} Established`, async () => (await ext.readCustomResourceDefinition({ name: `${p}.${GROUP}` })).status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'));
  }
  for (const name of [NS, LONELY]) await core.createNamespace({ body: { metadata: { name } } });
  dataDir = tempDir('kmq-tq-broker-');
  await startBroker();
  // One broker stands in for the BrokerCluster (no StatefulSet here): the example with one replica.
  const cluster = exampleNamed('broker-cluster.yaml', 'main');
  await create({ ...cluster, spec: { ...cluster.spec, replicas: 1 } });

  const kubeConfig = cp.kubeConfig;
  manager = new Manager({ kubeConfig, drainTimeoutMs: 5_000 });
  clients = new BrokerClientPool({ resolveAddress: () => broker!.address });
  const options = { kubeConfig, manager, clients, resyncMs: 1_000, rateLimiter: { maxMs: 1_000 } };
  manager.add(topicController(options)).add(queueController(options)).add(exchangeController(options));
  void manager.start();
}, 180_000);

afterAll(async () => {
  await manager?.stop();
  await clients?.close();
  await client?.close();
  await broker?.cleanup();
  if (dataDir !== undefined) fs.rmSync(dataDir, { recursive: true, force: true });
  await cp?.stop();
}, 60_000);

describe('Topic, Queue and Exchange controllers against a real broker', () => {
  it('makes the example Topic Ready with real figures, finalizer in place', async () => {
    const orders = exampleNamed('topic.yaml', 'orders');
    // A single broker: one copy of each partition.
    await create({ ...orders, spec: { ...orders.spec, partitions: 3, replicationFactor: 1 } });
    const ready = await waitCondition('Topic', 'orders', 'Ready', 'True');
    expect(ready.metadata.finalizers).toContain(FINALIZER);
    expect(ready.status).toMatchObject({ brokerName: `${NS}.orders`, partitions: 3, replicationFactor: 1, messages: 0, bindings: 0 });
    const d = await client!.admin().describeTopic(`${NS}.orders`);
    expect(d.topic.partitions).toHaveLength(3);
    // retention {time: 7d, bytes: 50Gi} reached the broker.
    expect(d.config).toMatchObject({ retentionMs: 7 * 86_400_000, retentionBytes: 50 * 2 ** 30 });

    const producer = client!.producer();
    await producer.send(`${NS}.orders`, [1, 2, 3, 4, 5].map((i) => ({ key: `k${i}`, value: `order ${i}` })));
    await producer.close();
    const counted = await eventually('status.messages 5', async () => ((await get('Topic', 'orders'))?.status?.messages === 5 ? true : undefined));
    expect(counted).toBe(true);
  });

  it('reports what a single broker cannot do: the example replicationFactor 3', async () => {
    await create({ ...exampleNamed('topic.yaml', 'orders'), metadata: { name: 'orders-rf3' } });
    const t = await waitCondition('Topic', 'orders-rf3', 'Degraded', 'True', 'ReplicationFactorTooHigh');
    expect(condition(t, 'Ready')).toMatchObject({ status: 'False', reason: 'ReplicationFactorTooHigh' });
    expect(condition(t, 'Degraded')!.message).toContain('spec.replicationFactor is 3 but BrokerCluster main has 1 broker');
    expect(await topicExists(`${NS}.orders-rf3`)).toBe(false);
  });

  it('recreates a topic deleted behind its back', async () => {
    await client!.admin().deleteTopic(`${NS}.orders`);
    expect(await topicExists(`${NS}.orders`)).toBe(false);
    await eventually('topic recreated', () => topicExists(`${NS}.orders`));
    const t = await eventually('status of the recreated topic', async () => {
      const o = await get('Topic', 'orders');
      return o?.status?.messages === 0 && condition(o, 'Ready')?.status === 'True' ? o : undefined;
    });
    expect(t.status).toMatchObject({ partitions: 3 });
  });

  it('applies a retention change; reports a partitions increase the broker cannot apply as Degraded NotAppliedByBroker', async () => {
    await custom.patchNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: 'topics',
      name: 'orders',
      body: [
        { op: 'replace', path: '/spec/partitions', value: 4 },
        { op: 'replace', path: '/spec/retention/time', value: '1d' },
      ],
    });
    const t = await waitCondition('Topic', 'orders', 'Degraded', 'True', 'NotAppliedByBroker');
    expect((await client!.admin().describeTopic(`${NS}.orders`)).config?.retentionMs).toBe(86_400_000);
    expect(condition(t, 'Degraded')!.message).toContain('spec.partitions is 4 but the topic has 3');
    expect(condition(t, 'Ready')).toMatchObject({ status: 'False', reason: 'NotAppliedByBroker' });
    expect(t.status).toMatchObject({ partitions: 3 });
  });

  it('a Topic in a namespace without a BrokerCluster is not Ready: BrokerClusterNotFound', async () => {
    await create({ kind: 'Topic', metadata: { name: 'alone' }, spec: {} }, LONELY);
    const t = await waitCondition('Topic', 'alone', 'Ready', 'False', 'BrokerClusterNotFound', LONELY);
    expect(condition(t, 'Ready')!.message).toContain(`No BrokerCluster in namespace ${LONELY}`);
    await remove('Topic', 'alone', LONELY);
    // Nothing to clean up on a broker: the finalizer goes at once.
    await eventually('lonely topic gone', async () => (await get('Topic', 'alone', LONELY)) === undefined);
  });

  it('makes the example Queues and Exchange Ready, binds, and a message published through the exchange reaches the queue', async () => {
    // The Queue naming its dead-letter queue first: it waits for it rather than failing.
    for (const q of example('queue.yaml')) await create(q);
    await create(exampleNamed('exchange.yaml', 'notifications'));
    const emails = await waitCondition('Queue', 'emails', 'Ready', 'True');
    expect(emails.status).toMatchObject({ brokerName: `${NS}.emails`, partitions: 3, depth: { ready: 0, inFlight: 0, delayed: 0 }, dlqDepth: 0, bindings: 1 });
    await waitCondition('Queue', 'emails-dead', 'Ready', 'True');
    await waitCondition('Queue', 'unrouted', 'Ready', 'True');
    const info = await client!.admin().describeQueue(`${NS}.emails`);
    expect(info.config).toMatchObject({ partitions: 3, lockTimeoutMs: 60_000, maxDeliveries: 5, deadLetterQueue: `${NS}.emails-dead` });
    const exchange = await eventually('exchange with its binding', async () => {
      const x = await waitCondition('Exchange', 'notifications', 'Ready', 'True');
      return x.status?.bindings === 1 ? x : undefined;
    });
    expect(exchange.status).toMatchObject({ brokerName: `${NS}.notifications` });

    const publisher = client!.publisher();
    await publisher.publish({ exchange: `${NS}.notifications`, routingKey: 'email.welcome' }, [{ value: 'hello' }]);
    await publisher.publish({ exchange: `${NS}.notifications`, routingKey: 'sms.welcome' }, [{ value: 'to the alternate' }]);
    await eventually('emails depth 1 in status', async () => ((await get('Queue', 'emails'))?.status?.depth as { ready?: number } | undefined)?.ready === 1);
    // Queues are topics on the broker: a Topic of a Queue's name is refused, not mistaken for it.
    await create({ kind: 'Topic', metadata: { name: 'unrouted' }, spec: {} });
    const clash = await waitCondition('Topic', 'unrouted', 'Degraded', 'True', 'NameTaken');
    expect(clash.status).not.toHaveProperty('messages');
    await remove('Topic', 'unrouted');
    await eventually('unrouted depth 1 in status', async () => ((await get('Queue', 'unrouted'))?.status?.depth as { ready?: number } | undefined)?.ready === 1);
  });

  it('binds exactly the declared set: a binding removed from the spec is unbound, one added is bound', async () => {
    await custom.patchNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: 'queues',
      name: 'emails',
      body: [{ op: 'replace', path: '/spec/bindings', value: [{ exchange: 'notifications', routingKey: 'mail.*' }] }],
    });
    const bindingKeys = async (): Promise<string[]> =>
      (await client!.admin().listExchanges())
        .filter((x) => x.name === `${NS}.notifications`)
        .flatMap((x) => x.bindings)
        .filter((b) => b.destination?.name === `${NS}.emails`)
        .map((b) => b.routingKey);
    await eventually('bindings replaced', async () => JSON.stringify(await bindingKeys()) === JSON.stringify(['mail.*']));
    // A binding to an Exchange that does not exist yet: not Ready, and the rest still in place.
    await custom.patchNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: 'queues',
      name: 'emails',
      body: [{ op: 'add', path: '/spec/bindings/-', value: { exchange: 'later', routingKey: 'x' } }],
    });
    const q = await waitCondition('Queue', 'emails', 'Ready', 'False', 'ExchangeNotFound');
    expect(condition(q, 'Ready')!.message).toContain(`${NS}.later`);
    await create({ kind: 'Exchange', metadata: { name: 'later' }, spec: { type: 'direct' } });
    await waitCondition('Queue', 'emails', 'Ready', 'True');
    expect(await bindingKeys()).toEqual(['mail.*']);
  });

  it('an operator restart repeats no side effect: same topics, queues, exchanges and bindings, objects stay Ready', async () => {
    const snapshot = async (): Promise<string> => {
      const admin = client!.admin();
      const topics = (await admin.listTopics()).map((t) => `${t.name}:${t.partitions.length}`).sort();
      const queues = (await admin.listQueues()).map((q) => `${q.name}:${q.logEndOffset}`).sort();
      const exchanges = (await admin.listExchanges()).map((x) => `${x.name}:${x.bindings.map((b) => `${b.destination?.name}/${b.routingKey}`).sort().join(',')}`).sort();
      return JSON.stringify({ topics, queues, exchanges });
    };
    const before = await snapshot();
    await manager!.stop();
    await clients!.close();
    const kubeConfig = cp!.kubeConfig;
    manager = new Manager({ kubeConfig, drainTimeoutMs: 5_000 });
    clients = new BrokerClientPool({ resolveAddress: () => broker!.address });
    const options = { kubeConfig, manager, clients, resyncMs: 1_000, rateLimiter: { maxMs: 1_000 } };
    manager.add(topicController(options)).add(queueController(options)).add(exchangeController(options));
    void manager.start();
    // A few resyncs of the new operator.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await snapshot()).toBe(before);
    for (const name of ['emails', 'emails-dead', 'unrouted']) await waitCondition('Queue', name, 'Ready', 'True');
    await waitCondition('Exchange', 'notifications', 'Ready', 'True');
  });

  it('deletionPolicy: Retain keeps the broker topic, Delete removes it, DeleteIfEmpty waits while the queue holds messages', async () => {
    await create({ kind: 'Topic', metadata: { name: 'kept' }, spec: { deletionPolicy: 'Retain' } });
    await create({ kind: 'Topic', metadata: { name: 'dropped' }, spec: { deletionPolicy: 'Delete' } });
    await create({ kind: 'Queue', metadata: { name: 'careful' }, spec: { deletionPolicy: 'DeleteIfEmpty' } });
    for (const name of ['kept', 'dropped']) await waitCondition('Topic', name, 'Ready', 'True');
    await waitCondition('Queue', 'careful', 'Ready', 'True');
    await client!.publisher().publish({ queue: `${NS}.careful` }, [{ value: 'pending' }]);

    await remove('Topic', 'kept');
    await remove('Topic', 'dropped');
    await eventually('kept and dropped objects gone', async () => (await get('Topic', 'kept')) === undefined && (await get('Topic', 'dropped')) === undefined);
    expect(await topicExists(`${NS}.kept`)).toBe(true);
    expect(await topicExists(`${NS}.dropped`)).toBe(false);

    await remove('Queue', 'careful');
    const held = await waitCondition('Queue', 'careful', 'Degraded', 'True', 'NotEmpty');
    expect(held.metadata.deletionTimestamp).toBeDefined();
    expect(held.metadata.finalizers).toContain(FINALIZER);
    // Still held a few resyncs later, messages intact.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await get('Queue', 'careful')).toBeDefined();
    expect((await client!.admin().describeQueue(`${NS}.careful`)).depth?.ready).toBe(1);

    expect(await client!.admin().purgeQueue(`${NS}.careful`)).toBe(1);
    await eventually('careful object gone once empty', async () => (await get('Queue', 'careful')) === undefined);
    expect(await queueExists(`${NS}.careful`)).toBe(false);
  });

  it('a broker outage is Ready=False BrokerUnavailable, and Ready again once it is back', async () => {
    await broker!.stop();
    const t = await waitCondition('Queue', 'unrouted', 'Ready', 'False', 'BrokerUnavailable');
    expect(condition(t, 'Ready')!.message).toMatch(/^Broker unreachable/);
    await startBroker();
    // The operator's pooled client for this BrokerCluster reconnects to the same address.
    await waitCondition('Queue', 'unrouted', 'Ready', 'True');
    // The broker kept its data: the message routed earlier is still there.
    expect(((await get('Queue', 'unrouted'))!.status!.depth as { ready: number }).ready).toBe(1);
  }, 90_000);

  it('a namespace holding kmq objects finishes deleting while its broker is down', async () => {
    await create({ kind: 'Topic', metadata: { name: 'doomed' }, spec: { deletionPolicy: 'Delete' } });
    await waitCondition('Topic', 'doomed', 'Ready', 'True');
    await broker!.stop();
    // The BrokerCluster object is held by a finalizer of the test's own, so the Topic's
    // finalizer is released because the namespace terminates and the broker is unreachable,
    // not because its BrokerCluster went first.
    const hold = 'test.kmq.dev/hold';
    await custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'brokerclusters', name: 'main', body: [{ op: 'add', path: '/metadata/finalizers', value: [hold] }] });
    await core.deleteNamespace({ name: NS });
    await eventually('Topic doomed gone', async () => (await get('Topic', 'doomed')) === undefined, 60_000);
    // The BrokerCluster was still there when the Topic went. The namespace controller
    // deletes kinds in no fixed order, so its deletion may only be marked a moment later.
    expect(await get('BrokerCluster', 'main')).toBeDefined();
    await eventually('BrokerCluster main marked for deletion', async () => (await get('BrokerCluster', 'main'))?.metadata.deletionTimestamp !== undefined);
    await custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'brokerclusters', name: 'main', body: [{ op: 'remove', path: '/metadata/finalizers' }] });
    await eventually(
      'namespace gone',
      async () => {
        try {
          await core.readNamespace({ name: NS });
          return false;
        } catch (err) {
          return (err as { code?: number }).code === 404;
        }
      },
      120_000,
    );
    // The broker object was left alone (it could not be reached): nothing was lost silently.
    await startBroker();
    expect(await topicExists(`${NS}.doomed`)).toBe(true);
  }, 180_000);
});
