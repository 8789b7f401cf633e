import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ApiextensionsV1Api, AppsV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, PolicyV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { KubernetesObject, V1StatefulSet } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmqClient } from '../../client/index.js';
import { BrokerProcess } from '../utils/broker-process.js';
import { ControlPlane, controlPlaneBinary } from '../utils/control-plane.js';

// The operator as a real process (node dist/operator/main.js) against a real kube-apiserver
// with kube-controller-manager (StatefulSet pods, garbage collection) and a real broker
// process, reached through --broker-address-override.

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(root, 'dist', 'operator', 'main.js');
const GROUP = 'kmq.dev';
const VERSION = 'v1alpha1';
const SHOP = 'shop';
const SYSTEM = `kmq-system-${process.pid}`;
const LEASE = 'kmq-operator';

let cp: ControlPlane | undefined;
let broker: BrokerProcess | undefined;
let client: KmqClient | undefined;
let custom: CustomObjectsApi;
let apps: AppsV1Api;
let core: CoreV1Api;
const operators: OperatorProcess[] = [];

type Obj = KubernetesObject & { spec?: Record<string, unknown>; status?: Record<string, unknown> & { conditions?: Array<Record<string, unknown>> } };

/** The operator's own sources must not be fresher than the build (dist/, as `npm test` builds it first). */
function builtOperator(): void {
  const files = ['main', 'options', 'probe', 'apply', 'status', 'controllers/broker-cluster', 'controllers/subscription', 'controllers/dlq-policy'];
  for (const file of files) {
    const ts = path.join(root, 'operator', `${file}.ts`);
    const js = path.join(root, 'dist', 'operator', `${file}.js`);
    if (!fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(ts).mtimeMs) {
      throw new Error(`${path.relative(root, js)} is missing or older than its source: run \`npm run build\``);
    }
  }
}

/** `kmq operator` as a process of its own, its JSON log lines collected. */
class OperatorProcess {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly text: string[] = [];
  readonly exited: Promise<number | null>;
  healthPort = 0;
  private readonly child: ChildProcess;

  constructor(
    readonly identity: string,
    webhook = false,
  ) {
    const args = [
      MAIN,
      ...(webhook ? ['--webhook-host=127.0.0.1', '--webhook-port=0', '--webhook-extra-sans=127.0.0.1'] : ['--no-webhook']),
      '--health-host=127.0.0.1',
      '--health-port=0',
      `--identity=${identity}`,
      '--lease-duration=4s',
      '--renew-deadline=3s',
      '--retry-period=300ms',
      '--drain-timeout=5s',
      '--broker-image=registry.test/kmq:it',
      `--broker-address-override=${broker!.address}`,
    ];
    this.child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KUBECONFIG: cp!.kubeconfigPath, POD_NAMESPACE: SYSTEM, KMQ_LOG_LEVEL: 'info' },
    });
    operators.push(this);
    // 'close', not 'exit': it comes once stdout and stderr are drained, so every log line is in by then.
    this.exited = new Promise((resolve) => this.child.once('close', (code) => resolve(code)));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.text.push(line);
      try {
        this.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => this.text.push(line));
  }

  /** Resolves with the first log line for which `match` holds. */
  async waitForLog(match: (line: Record<string, unknown>) => boolean, what: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.find(match);
      if (line !== undefined) return line;
      if (this.child.exitCode !== null) throw new Error(`Operator ${this.identity} exited (${this.child.exitCode}) before ${what}:\n${this.text.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`Operator ${this.identity}: no ${what} in ${timeoutMs} ms:\n${this.text.slice(-40).join('\n')}`);
      await sleep(50);
    }
  }

  webhookPort: number | undefined;
  controllers: string[] = [];

  async started(): Promise<void> {
    const line = await this.waitForLog((l) => l.msg === 'Operator started', '"Operator started"');
    this.healthPort = line.healthPort as number;
    this.webhookPort = line.webhookPort as number | undefined;
    this.controllers = line.controllers as string[];
  }

  count(msg: string): number {
    return this.lines.filter((l) => l.msg === msg).length;
  }

  /** The value of a metric sample, e.g. `kmq_operator_reconciles_total{controller="broker-cluster"}`. */
  async metric(sample: string): Promise<number> {
    const body = await (await fetch(`http://127.0.0.1:${this.healthPort}/metrics`)).text();
    const line = body.split('\n').find((l) => l.startsWith(`${sample} `));
    return line === undefined ? 0 : Number(line.slice(sample.length + 1));
  }

  /** SIGTERM; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`);
    await sleep(200);
  }
}

function kubectl(...args: string[]): Promise<{ stdout: string }> {
  return run(controlPlaneBinary('kubectl'), [...args, '--kubeconfig', cp!.kubeconfigPath]);
}

function getCustom(plural: string, name: string): Promise<Obj> {
  return custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: SHOP, plural, name }) as Promise<Obj>;
}

function condition(obj: Obj, type: string): Record<string, unknown> | undefined {
  return obj.status?.conditions?.find((c) => c.type === type);
}

async function statefulSet(): Promise<V1StatefulSet | undefined> {
  try {
    return await apps.readNamespacedStatefulSet({ namespace: SHOP, name: 'main-broker' });
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

async function leaseHolder(): Promise<string | undefined> {
  const coordination = cp!.kubeConfig.makeApiClient(CoordinationV1Api);
  const lease = await coordination.readNamespacedLease({ namespace: SYSTEM, name: LEASE });
  return lease.spec?.holderIdentity ?? undefined;
}

/** resourceVersions of the BrokerCluster's children and of the kmq objects, to see that nothing was written. */
async function versions(): Promise<Record<string, string | undefined>> {
  const policy = cp!.kubeConfig.makeApiClient(PolicyV1Api);
  const rbac = cp!.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  const sts = await statefulSet();
  return {
    statefulSet: `${sts?.metadata?.resourceVersion}/${sts?.metadata?.generation}`,
    headless: (await core.readNamespacedService({ namespace: SHOP, name: 'main-broker' })).metadata?.resourceVersion,
    client: (await core.readNamespacedService({ namespace: SHOP, name: 'main-client' })).metadata?.resourceVersion,
    configMap: (await core.readNamespacedConfigMap({ namespace: SHOP, name: 'main-broker-config' })).metadata?.resourceVersion,
    pdb: (await policy.readNamespacedPodDisruptionBudget({ namespace: SHOP, name: 'main-broker' })).metadata?.resourceVersion,
    serviceAccount: (await core.readNamespacedServiceAccount({ namespace: SHOP, name: 'main-broker' })).metadata?.resourceVersion,
    role: (await rbac.readNamespacedRole({ namespace: SHOP, name: 'main-broker' })).metadata?.resourceVersion,
    roleBinding: (await rbac.readNamespacedRoleBinding({ namespace: SHOP, name: 'main-broker' })).metadata?.resourceVersion,
    brokerCluster: (await getCustom('brokerclusters', 'main')).metadata?.resourceVersion,
    subscription: (await getCustom('subscriptions', 'billing')).metadata?.resourceVersion,
    dlqPolicy: (await getCustom('dlqpolicies', 'standard')).metadata?.resourceVersion,
    queueSubscription: (await getCustom('subscriptions', 'email-workers')).metadata?.resourceVersion,
  };
}

async function committed(): Promise<number[]> {
  const offsets = await client!.admin().fetchOffsets('shop.billing', [0, 1].map((partition) => ({ topic: 'shop.orders', partition })));
  return offsets.map((o) => o.offset);
}

/** Moves the group to the end of the topic, as consumers that read everything would. */
async function consumeAll(): Promise<void> {
  await client!.admin().resetOffsets('shop.billing', 'shop.orders', 'latest');
}

function applySubscription(reset?: { to: string; requestId: string }): Promise<{ stdout: string }> {
  const doc = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'Subscription',
    metadata: { name: 'billing', namespace: SHOP },
    spec: { topic: 'orders', mode: 'ordered', dlqPolicy: 'standard', ...(reset === undefined ? {} : { reset }) },
  };
  const file = path.join(cp!.dir, 'subscription.json');
  fs.writeFileSync(file, JSON.stringify(doc));
  return kubectl('apply', '--server-side', '--field-manager=kmq-test', '-f', file);
}

/** Makes the Subscription reconcile again without changing its spec (an annotation: no new generation). */
async function touchSubscription(value: string): Promise<void> {
  await custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: SHOP, plural: 'subscriptions', name: 'billing', body: [{ op: 'add', path: '/metadata/annotations', value: { 'test.kmq.dev/touch': value } }] });
}

beforeAll(async () => {
  builtOperator();
  cp = await ControlPlane.start({ controllerManager: true });
  custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  apps = cp.kubeConfig.makeApiClient(AppsV1Api);
  core = cp.kubeConfig.makeApiClient(CoreV1Api);
  for (const name of [SHOP, SYSTEM]) await core.createNamespace({ body: { metadata: { name } } });
  await kubectl('apply', '--server-side', '--field-manager=kmq-test', '-f', path.join(root, 'crds'));
  const ext = cp.kubeConfig.makeApiClient(ApiextensionsV1Api);
  for (const p of ['brokerclusters', 'topics', 'queues', 'exchanges', 'subscriptions', 'dlqpolicies']) {
    await eventually(`CRD ${p} Established`, async () => {
      const crd = await ext.readCustomResourceDefinition({ name: `${p}.${GROUP}` });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
    });
  }
  broker = await BrokerProcess.start();
  client = new KmqClient({ brokers: [broker.address], clientId: 'operator-test' });
  // The Topic behind the Subscription (the Topic controller is not under test here).
  await client.admin().createTopic('shop.orders', { partitions: 2 });
  const producer = client.producer();
  await producer.send('shop.orders', Array.from({ length: 10 }, (_, i) => ({ value: `order-${i}`, partition: i % 2 })));
  await producer.close();
}, 180_000);

afterAll(async () => {
  await Promise.all(operators.map((o) => o.stop()));
  await client?.close();
  await broker?.cleanup();
  await cp?.stop();
}, 60_000);

describe('kmq operator against a real API server and broker', () => {
  let a: OperatorProcess;

  it('starts, takes the Lease, and turns the example BrokerCluster into its objects with status', async () => {
    a = new OperatorProcess('operator-a', true);
    await a.started();
    await a.waitForLog((l) => l.msg === 'Started leading', 'leadership');
    expect(await leaseHolder()).toBe('operator-a');
    expect(a.controllers).toEqual(['broker-cluster', 'topic', 'queue', 'exchange', 'subscription', 'dlq-policy']);

    // The webhook serves HTTPS with the certificate it keeps in its Secret.
    const secret = await core.readNamespacedSecret({ namespace: SYSTEM, name: 'kmq-webhook-tls' });
    const ca = Buffer.from(secret.data!['ca.crt']!, 'base64');
    const healthz = await new Promise<number | undefined>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: a.webhookPort, path: '/healthz', ca }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on('error', reject);
    });
    expect(healthz).toBe(200);
    expect((await fetch(`http://127.0.0.1:${a.healthPort}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${a.healthPort}/readyz`)).status).toBe(200);

    await kubectl('apply', '-f', path.join(root, 'examples', 'kubernetes', 'broker-cluster.yaml'));
    await kubectl('apply', '-f', path.join(root, 'examples', 'kubernetes', 'dlq-policy.yaml'));
    const bc = await getCustom('brokerclusters', 'main');
    const uid = bc.metadata!.uid!;

    const sts = await eventually('the StatefulSet', statefulSet);
    expect(sts.spec?.replicas).toBe(3);
    expect(sts.spec?.serviceName).toBe('main-broker');
    // The example names no image: the operator's --broker-image.
    expect(sts.spec?.template.spec?.containers[0]?.image).toBe('registry.test/kmq:it');
    const policy = cp!.kubeConfig.makeApiClient(PolicyV1Api);
    const rbac = cp!.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    const children: KubernetesObject[] = await eventually('every child', async () => {
      try {
        return [
          sts,
          await core.readNamespacedService({ namespace: SHOP, name: 'main-broker' }),
          await core.readNamespacedService({ namespace: SHOP, name: 'main-client' }),
          await core.readNamespacedConfigMap({ namespace: SHOP, name: 'main-broker-config' }),
          await policy.readNamespacedPodDisruptionBudget({ namespace: SHOP, name: 'main-broker' }),
          await core.readNamespacedServiceAccount({ namespace: SHOP, name: 'main-broker' }),
          await rbac.readNamespacedRole({ namespace: SHOP, name: 'main-broker' }),
          await rbac.readNamespacedRoleBinding({ namespace: SHOP, name: 'main-broker' }),
        ];
      } catch {
        return undefined;
      }
    });
    for (const child of children) {
      expect(child.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'BrokerCluster', name: 'main', uid, controller: true })]);
      expect(child.metadata?.managedFields?.some((f) => f.manager === 'kmq-operator' && f.operation === 'Apply')).toBe(true);
    }
    const headless = children[1] as { spec?: { clusterIP?: string } };
    expect(headless.spec?.clusterIP).toBe('None');

    // kube-controller-manager creates the pods (nothing runs them): 3 replicas, none ready.
    const withStatus = await eventually('status.replicas 3', async () => {
      const o = await getCustom('brokerclusters', 'main');
      return o.status?.replicas === 3 ? o : undefined;
    });
    expect(withStatus.status).toMatchObject({ replicas: 3, readyReplicas: 0, observedGeneration: 1, bootstrap: 'main-client.shop.svc:9092', image: 'registry.test/kmq:it' });
    expect(condition(withStatus, 'Ready')).toMatchObject({ status: 'False', reason: 'BrokersNotReady', observedGeneration: 1 });

    // The DLQPolicy is valid and used by nobody yet.
    const dlq = await eventually('DLQPolicy Ready', async () => {
      const o = await getCustom('dlqpolicies', 'standard');
      return condition(o, 'Ready')?.status === 'True' ? o : undefined;
    });
    expect(dlq.status).toMatchObject({ subscriptions: 0, observedGeneration: 1 });
  }, 90_000);

  it('restores a StatefulSet deleted by hand', async () => {
    const before = (await statefulSet())!;
    await apps.deleteNamespacedStatefulSet({ namespace: SHOP, name: 'main-broker' });
    const after = await eventually('a new StatefulSet', async () => {
      const s = await statefulSet();
      return s !== undefined && s.metadata?.uid !== before.metadata?.uid ? s : undefined;
    });
    expect(after.spec?.replicas).toBe(3);
    expect(after.metadata?.ownerReferences?.[0]?.name).toBe('main');
  }, 60_000);

  it('undoes a hand edit of the StatefulSet replicas', async () => {
    await kubectl('-n', SHOP, 'scale', 'statefulset/main-broker', '--replicas=1');
    // The edit lands, then the operator's apply takes the field back.
    const restored = await eventually('replicas back at 3', async () => {
      const s = await statefulSet();
      return s?.spec?.replicas === 3 && (s.metadata?.generation ?? 0) >= 3 ? s : undefined;
    });
    expect(restored.spec?.replicas).toBe(3);
    // Logged once the apply returns: the line can reach the test after the object does.
    await eventually('the update logged', async () => (a.lines.some((l) => l.msg === 'Child updated' && l.child === 'StatefulSet/main-broker') ? true : undefined));
  }, 60_000);

  it('resets a Subscription group once per requestId, and waits while the group has members', async () => {
    await consumeAll();
    expect(await committed()).toEqual([5, 5]);
    await applySubscription({ to: 'earliest', requestId: 'replay-1' });
    const first = await eventually('lastReset replay-1', async () => {
      const o = await getCustom('subscriptions', 'billing');
      return (o.status?.lastReset as { requestId?: string } | undefined)?.requestId === 'replay-1' && condition(o, 'Ready')?.status === 'True' ? o : undefined;
    });
    expect(first.status).toMatchObject({ mode: 'ordered', brokerGroup: 'shop.billing', lag: 10, consumers: 0, lastReset: { requestId: 'replay-1', to: 'earliest' } });
    expect(await committed()).toEqual([0, 0]);
    expect(a.count('Offsets reset')).toBe(1);

    // The same requestId again: consumers moved on, another reconcile runs, nothing is reset.
    await consumeAll();
    await touchSubscription('1');
    await eventually('lag 0 reported', async () => ((await getCustom('subscriptions', 'billing')).status?.lag === 0 ? true : undefined));
    expect(await committed()).toEqual([5, 5]);
    expect(a.count('Offsets reset')).toBe(1);

    // A new requestId resets again.
    await applySubscription({ to: 'earliest', requestId: 'replay-2' });
    await eventually('lastReset replay-2', async () => ((await getCustom('subscriptions', 'billing')).status?.lastReset as { requestId?: string } | undefined)?.requestId === 'replay-2' || undefined);
    expect(await committed()).toEqual([0, 0]);
    expect(a.count('Offsets reset')).toBe(2);

    // A member in the group: the reset waits, Degraded with reason GroupActive, and is applied once it leaves.
    await consumeAll();
    const consumer = client!.consumer({ groupId: 'shop.billing', topics: ['shop.orders'], autoCommit: false });
    await consumer.start();
    try {
      await applySubscription({ to: 'earliest', requestId: 'replay-3' });
      const waiting = await eventually('GroupActive', async () => {
        const o = await getCustom('subscriptions', 'billing');
        return condition(o, 'Degraded')?.reason === 'GroupActive' ? o : undefined;
      });
      expect(condition(waiting, 'Ready')).toMatchObject({ status: 'False', reason: 'GroupActive' });
      expect((waiting.status?.lastReset as { requestId?: string }).requestId).toBe('replay-2');
      expect(await committed()).toEqual([5, 5]);
    } finally {
      await consumer.close();
    }
    const applied = await eventually(
      'lastReset replay-3',
      async () => {
        const o = await getCustom('subscriptions', 'billing');
        return (o.status?.lastReset as { requestId?: string } | undefined)?.requestId === 'replay-3' && condition(o, 'Ready')?.status === 'True' ? o : undefined;
      },
      40_000,
    );
    expect(condition(applied, 'Degraded')).toBeUndefined();
    expect(await committed()).toEqual([0, 0]);
    expect(a.count('Offsets reset')).toBe(3);

    // The DLQPolicy counts its user.
    await eventually('DLQPolicy used by billing', async () => ((await getCustom('dlqpolicies', 'standard')).status?.subscriptions === 1 ? true : undefined));
  }, 120_000);

  it('reports a queue Subscription\'s depth, and waits for its queue to exist', async () => {
    // The example's email-workers reads queue emails, which the broker does not have yet.
    const file = path.join(cp!.dir, 'email-workers.yaml');
    const docs = fs.readFileSync(path.join(root, 'examples', 'kubernetes', 'subscription.yaml'), 'utf8').split(/^---$/m);
    fs.writeFileSync(file, docs.find((d) => d.includes('name: email-workers'))!);
    await kubectl('apply', '-f', file);
    const missing = await eventually('SourceNotFound', async () => {
      const o = await getCustom('subscriptions', 'email-workers');
      return condition(o, 'Ready')?.reason === 'SourceNotFound' ? o : undefined;
    });
    expect(condition(missing, 'Ready')).toMatchObject({ status: 'False', message: 'Queue shop.emails does not exist on the broker' });
    expect(condition(missing, 'Degraded')).toBeUndefined();

    await client!.admin().createQueue('shop.emails');
    const publisher = client!.publisher();
    await publisher.publish({ queue: 'shop.emails' }, [{ value: 'a' }, { value: 'b' }, { value: 'c' }]);
    // The common resync looks again; a change of the object makes it look at once.
    await custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: SHOP, plural: 'subscriptions', name: 'email-workers', body: [{ op: 'add', path: '/metadata/annotations', value: { 'test.kmq.dev/touch': '1' } }] });
    const ready = await eventually('email-workers Ready', async () => {
      const o = await getCustom('subscriptions', 'email-workers');
      return condition(o, 'Ready')?.status === 'True' ? o : undefined;
    });
    expect(ready.status).toMatchObject({ mode: 'shared', brokerGroup: 'shop.email-workers', lag: 3, consumers: 0, observedGeneration: 1 });
    await eventually('DLQPolicy used by both', async () => ((await getCustom('dlqpolicies', 'standard')).status?.subscriptions === 2 ? true : undefined));
  }, 60_000);

  it('a restart writes nothing and resets nothing when there is nothing to do', async () => {
    // Let the writes of the previous steps settle.
    await sleep(1500);
    const before = await versions();
    const offsets = await committed();
    expect(await a.stop()).toBe(0);
    a = new OperatorProcess('operator-a2');
    await a.started();
    await a.waitForLog((l) => l.msg === 'Controllers running', 'controllers running');
    await eventually('every controller reconciled', async () => {
      const done = await Promise.all(['broker-cluster', 'subscription', 'dlq-policy'].map((c) => a.metric(`kmq_operator_reconciles_total{controller="${c}"}`)));
      return done.every((n) => n >= 1) ? true : undefined;
    });
    await sleep(1500);
    expect(await versions()).toEqual(before);
    expect(await committed()).toEqual(offsets);
    expect(a.count('Offsets reset')).toBe(0);
    expect(a.count('Child created') + a.count('Child updated')).toBe(0);
  }, 90_000);

  it('with two replicas only the leader reconciles; stopping it hands over and the other repairs drift', async () => {
    const b = new OperatorProcess('operator-b');
    await b.started();
    expect(await leaseHolder()).toBe('operator-a2');
    await kubectl('-n', SHOP, 'scale', 'statefulset/main-broker', '--replicas=2');
    await eventually('replicas back at 3 (by the leader)', async () => ((await statefulSet())?.spec?.replicas === 3 ? true : undefined));
    expect(b.count('Started leading')).toBe(0);
    expect(await b.metric('kmq_operator_reconciles_total{controller="broker-cluster"}')).toBe(0);
    expect(await b.metric('kmq_operator_leader')).toBe(0);
    expect(await a.metric('kmq_operator_leader')).toBe(1);

    expect(await a.stop()).toBe(0);
    await b.waitForLog((l) => l.msg === 'Started leading', 'leadership', 20_000);
    expect(await leaseHolder()).toBe('operator-b');
    const before = (await statefulSet())!;
    await apps.deleteNamespacedStatefulSet({ namespace: SHOP, name: 'main-broker' });
    await eventually('the StatefulSet recreated by operator-b', async () => {
      const s = await statefulSet();
      return s !== undefined && s.metadata?.uid !== before.metadata?.uid ? true : undefined;
    });
    // The object can be read back before operator-b's log line about it reaches the test.
    await eventually('operator-b logs the StatefulSet it created', async () => (b.count('Child created') >= 1 ? true : undefined));
    // The count moves when the reconcile that recreated it has applied the rest too.
    await eventually('operator-b counts its reconciles', async () => ((await b.metric('kmq_operator_reconciles_total{controller="broker-cluster"}')) > 0 ? true : undefined));
    expect(await b.metric('kmq_operator_leader')).toBe(1);

    // Deleting the BrokerCluster: garbage collection removes the children, and the operator does not bring them back.
    const created = b.count('Child created') + b.count('Child updated');
    await kubectl('-n', SHOP, 'delete', 'brokercluster', 'main', '--wait=true');
    await eventually('children collected', async () => ((await statefulSet()) === undefined && (await core.listNamespacedService({ namespace: SHOP })).items.length === 0 ? true : undefined), 60_000);
    const subscription = await eventually('Subscriptions without a BrokerCluster', async () => {
      const o = await getCustom('subscriptions', 'billing');
      return condition(o, 'Ready')?.reason === 'BrokerClusterNotFound' ? o : undefined;
    });
    expect(condition(subscription, 'Ready')?.status).toBe('False');
    await sleep(1000);
    expect(await statefulSet()).toBeUndefined();
    expect(b.count('Child created') + b.count('Child updated')).toBe(created);
    expect(await b.stop()).toBe(0);
  }, 150_000);
});
