import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ApiextensionsV1Api, AppsV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ControlPlane, controlPlaneBinary } from '../utils/control-plane.js';

// The CRDs of crds/ in a real kube-apiserver: they accept the examples of
// examples/kubernetes, reject invalid objects and forbidden changes with clear
// messages, have a status subresource, printer columns and the kmq category.

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const GROUP = 'kmq.dev';
const VERSION = 'v1alpha1';
// The examples are in namespace shop; the invalid and immutability cases get their own.
const SHOP = 'shop';
const NS = `crds-test-${process.pid}`;

let cp: ControlPlane | undefined;
let custom: CustomObjectsApi;

type Obj = Record<string, unknown> & { kind: string; metadata: { name: string; namespace?: string; generation?: number } };

const PLURALS: Record<string, string> = {
  BrokerCluster: 'brokerclusters',
  Topic: 'topics',
  Queue: 'queues',
  Exchange: 'exchanges',
  Subscription: 'subscriptions',
  DLQPolicy: 'dlqpolicies',
};

function plural(kind: string): string {
  const p = PLURALS[kind];
  if (p === undefined) throw new Error(`Not a kmq kind: ${kind}`);
  return p;
}

/** The API server's message of a failed request, or '' when it succeeded. */
async function failure(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return '';
  } catch (err) {
    const body = (err as { body?: unknown }).body;
    if (typeof body !== 'string') throw err;
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
}

function create(obj: Obj, namespace = NS): Promise<unknown> {
  return custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: plural(obj.kind), body: { apiVersion: `${GROUP}/${VERSION}`, ...obj }, fieldValidation: 'Strict' });
}

function get(kind: string, name: string, namespace = NS): Promise<Obj & { spec: Record<string, unknown>; status?: Record<string, unknown> }> {
  return custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: plural(kind), name });
}

/** A JSON patch of the object's spec. */
function patch(kind: string, name: string, ops: Array<{ op: string; path: string; value?: unknown }>, namespace = NS): Promise<unknown> {
  return custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: plural(kind), name, body: ops });
}

function kubectl(...args: string[]): Promise<{ stdout: string }> {
  return run(controlPlaneBinary('kubectl'), [...args, '--kubeconfig', cp!.kubeconfigPath]);
}

beforeAll(async () => {
  cp = await ControlPlane.start();
  custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  for (const name of [SHOP, NS]) await core.createNamespace({ body: { metadata: { name } } });
}, 120_000);

afterAll(async () => {
  await cp?.stop();
});

describe('kmq CRDs in a real API server', () => {
  it('every CRD of crds/ is created and becomes Established', async () => {
    const ext = cp!.kubeConfig.makeApiClient(ApiextensionsV1Api);
    const files = fs.readdirSync(path.join(root, 'crds')).filter((f) => f.endsWith('.yaml'));
    expect(files.sort()).toEqual(Object.values(PLURALS).map((p) => `${GROUP}_${p}.yaml`).sort());
    // As users install them: server-side apply, strict field validation.
    const { stdout } = await kubectl('apply', '--server-side', '--field-manager=kmq-test', '--validate=strict', '-f', path.join(root, 'crds'));
    for (const p of Object.values(PLURALS)) expect(stdout).toContain(`customresourcedefinition.apiextensions.k8s.io/${p}.${GROUP} serverside-applied`);
    const deadline = Date.now() + 30_000;
    for (const p of Object.values(PLURALS)) {
      for (;;) {
        const crd = await ext.readCustomResourceDefinition({ name: `${p}.${GROUP}` });
        const established = crd.status?.conditions?.find((c) => c.type === 'Established')?.status === 'True';
        if (established) break;
        if (Date.now() > deadline) throw new Error(`CRD ${p}.${GROUP} is not Established: ${JSON.stringify(crd.status)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  });

  it('accepts every example of examples/kubernetes, the app Deployment too (kubectl apply, strict validation)', async () => {
    const dir = path.join(root, 'examples', 'kubernetes');
    const { stdout } = await kubectl('apply', '--validate=strict', '-f', dir);
    const docs = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.yaml'))
      .flatMap((f) => parseAllDocuments(fs.readFileSync(path.join(dir, f), 'utf8')).map((d) => d.toJSON() as Obj));
    const kinds = new Set(docs.map((d) => d.kind));
    for (const kind of [...Object.keys(PLURALS), 'Deployment']) expect(kinds, `an example of ${kind}`).toContain(kind);
    for (const d of docs) {
      expect(stdout).toMatch(new RegExp(`^${d.kind.toLowerCase()}\\.\\S+/${d.metadata.name} created$`, 'm'));
      if (d.kind === 'Deployment') {
        const deploy = await cp!.kubeConfig.makeApiClient(AppsV1Api).readNamespacedDeployment({ namespace: SHOP, name: d.metadata.name });
        expect(deploy.spec?.template.metadata?.labels?.['kmq.dev/inject']).toBe('true');
        expect(deploy.spec?.template.metadata?.annotations?.['kmq.dev/subscriptions']).toBeDefined();
      } else {
        expect((await get(d.kind, d.metadata.name, SHOP)).metadata.name).toBe(d.metadata.name);
      }
    }
  });

  it('fills the schema defaults: deletionPolicy Retain, one partition, DLQPolicy backoff', async () => {
    await create({ kind: 'Topic', metadata: { name: 'defaults' }, spec: {} });
    const topic = await get('Topic', 'defaults');
    expect(topic.spec).toEqual({ deletionPolicy: 'Retain', partitions: 1, replicationFactor: 1, cleanupPolicy: 'delete' });
    await create({ kind: 'DLQPolicy', metadata: { name: 'defaults' }, spec: {} });
    expect((await get('DLQPolicy', 'defaults')).spec).toEqual({ maxAttempts: 5, handlerTimeout: '30s', backoff: { initial: '200ms', max: '30s', multiplier: 2, jitter: 0.2 } });
    const sub = (await get('Subscription', 'billing', SHOP)).spec;
    expect(sub).toMatchObject({ maxInFlight: 100, guarantee: 'effectively-once', deletionPolicy: 'Retain' });
  });

  const invalid: Array<{ what: string; obj: Obj; message: RegExp | string }> = [
    { what: 'partitions below 1', obj: { kind: 'Topic', metadata: { name: 'bad' }, spec: { partitions: 0 } }, message: 'spec.partitions: Invalid value: 0: spec.partitions in body should be greater than or equal to 1' },
    { what: 'partitions above 10000', obj: { kind: 'Topic', metadata: { name: 'bad' }, spec: { partitions: 20_000 } }, message: 'spec.partitions in body should be less than or equal to 10000' },
    { what: 'an unknown cleanupPolicy', obj: { kind: 'Topic', metadata: { name: 'bad' }, spec: { cleanupPolicy: 'archive' } }, message: 'spec.cleanupPolicy: Unsupported value: "archive": supported values: "delete", "compact"' },
    { what: 'a retention time that is no duration', obj: { kind: 'Topic', metadata: { name: 'bad' }, spec: { retention: { time: '7 days' } } }, message: 'spec.retention.time: Invalid value: "string": must be a duration: digits and a unit ms, s, m, h or d (e.g. 200ms, 30s, 7d), or unlimited' },
    { what: 'a retention size that is no quantity', obj: { kind: 'Topic', metadata: { name: 'bad' }, spec: { retention: { bytes: '20 GB' } } }, message: 'spec.retention.bytes: Invalid value: "": must be a number of bytes or a quantity such as 512Ki, 64Mi or 20Gi, or unlimited' },
    { what: 'an unknown field (strict)', obj: { kind: 'Topic', metadata: { name: 'bad' }, spec: { partitons: 3 } }, message: 'unknown field "spec.partitons"' },
    { what: 'a name too long for the broker', obj: { kind: 'Topic', metadata: { name: 'x'.repeat(129) }, spec: {} }, message: 'metadata.name must be at most 128 characters: the broker-side name is <namespace>.<name>' },
    { what: 'a Subscription with topic and queue', obj: { kind: 'Subscription', metadata: { name: 'bad' }, spec: { topic: 'orders', queue: 'emails' } }, message: 'spec: Invalid value: "object": give exactly one of topic and queue' },
    { what: 'a Subscription with neither topic nor queue', obj: { kind: 'Subscription', metadata: { name: 'bad' }, spec: { mode: 'ordered' } }, message: 'give exactly one of topic and queue' },
    { what: 'a queue consumed ordered', obj: { kind: 'Subscription', metadata: { name: 'bad' }, spec: { queue: 'emails', mode: 'ordered' } }, message: 'spec.mode: Invalid value: "object": a queue is always consumed shared: mode must be shared or unset' },
    { what: 'a bad topic name', obj: { kind: 'Subscription', metadata: { name: 'bad' }, spec: { topic: 'Orders!' } }, message: /spec\.topic: Invalid value: "Orders!": spec\.topic in body should match '\^\[a-z0-9\]/ },
    { what: 'an unknown mode', obj: { kind: 'Subscription', metadata: { name: 'bad' }, spec: { topic: 'orders', mode: 'broadcast' } }, message: 'spec.mode: Unsupported value: "broadcast": supported values: "ordered", "shared"' },
    { what: 'startFrom on a shared subscription', obj: { kind: 'Subscription', metadata: { name: 'bad' }, spec: { queue: 'emails', startFrom: 'latest' } }, message: 'spec.startFrom: Invalid value: "object": startFrom applies to ordered subscriptions' },
    { what: 'retry.topic with retry.mode in-place', obj: { kind: 'Subscription', metadata: { name: 'bad' }, spec: { topic: 'orders', retry: { topic: 'orders-retry' } } }, message: 'spec.retry.topic: Invalid value: "object": retry.topic applies to retry.mode topic' },
    { what: 'a dead-letter topic that is the topic consumed', obj: { kind: 'Subscription', metadata: { name: 'bad' }, spec: { topic: 'orders', deadLetterTopic: 'orders' } }, message: 'deadLetterTopic must differ from the topic consumed' },
    { what: 'a reset to no time', obj: { kind: 'Subscription', metadata: { name: 'bad' }, spec: { topic: 'orders', reset: { to: 'yesterday', requestId: 'r1' } } }, message: 'spec.reset.to: Invalid value: "string": reset.to must be earliest, latest or an RFC 3339 timestamp (e.g. 2026-01-31T12:00:00Z)' },
    { what: 'a reset without requestId', obj: { kind: 'Subscription', metadata: { name: 'bad' }, spec: { topic: 'orders', reset: { to: 'earliest' } } }, message: 'spec.reset.requestId: Required value' },
    { what: 'a push port out of range', obj: { kind: 'Subscription', metadata: { name: 'bad' }, spec: { topic: 'orders', delivery: { push: { port: 70_000 } } } }, message: 'spec.delivery.push.port in body should be less than or equal to 65535' },
    { what: 'backoff initial above max', obj: { kind: 'DLQPolicy', metadata: { name: 'bad' }, spec: { backoff: { initial: '1m', max: '30s' } } }, message: 'spec.backoff.initial: Invalid value: "object": backoff.initial must not be greater than backoff.max' },
    { what: 'a backoff that is no duration', obj: { kind: 'DLQPolicy', metadata: { name: 'bad' }, spec: { backoff: { max: '30 seconds' } } }, message: 'spec.backoff.max: Invalid value: "string": must be a duration: digits and a unit ms, s, m, h or d (e.g. 200ms, 30s, 7d)' },
    { what: 'a backoff longer than a timer holds', obj: { kind: 'DLQPolicy', metadata: { name: 'bad' }, spec: { backoff: { max: '30d' } } }, message: 'spec.backoff.max: Invalid value: "string": must be at most 2147483647 ms (about 24.9 days)' },
    { what: 'jitter above 1', obj: { kind: 'DLQPolicy', metadata: { name: 'bad' }, spec: { backoff: { jitter: 1.5 } } }, message: 'spec.backoff.jitter in body should be less than or equal to 1' },
    { what: 'maxAttempts 0', obj: { kind: 'DLQPolicy', metadata: { name: 'bad' }, spec: { maxAttempts: 0 } }, message: 'spec.maxAttempts in body should be greater than or equal to 1' },
    { what: 'an exchange of no known type', obj: { kind: 'Exchange', metadata: { name: 'bad' }, spec: { type: 'broadcast' } }, message: 'spec.type: Unsupported value: "broadcast": supported values: "direct", "topic", "fanout", "headers"' },
    { what: 'an exchange without type', obj: { kind: 'Exchange', metadata: { name: 'bad' }, spec: {} }, message: 'spec.type: Required value' },
    { what: 'a queue that dead-letters to itself', obj: { kind: 'Queue', metadata: { name: 'loop' }, spec: { deadLetterQueue: 'loop' } }, message: 'spec.deadLetterQueue must name another queue' },
    { what: 'a binding with routingKey and headers', obj: { kind: 'Queue', metadata: { name: 'bad' }, spec: { bindings: [{ exchange: 'x', routingKey: 'a', headers: { h: 'v' } }] } }, message: 'spec.bindings[0]: Invalid value: "object": give routingKey (direct and topic exchanges) or headers (headers exchanges), not both' },
    { what: 'an unknown deletionPolicy', obj: { kind: 'Queue', metadata: { name: 'bad' }, spec: { deletionPolicy: 'Purge' } }, message: 'spec.deletionPolicy: Unsupported value: "Purge": supported values: "Retain", "Delete", "DeleteIfEmpty"' },
    { what: 'a lockTimeout below 100 ms', obj: { kind: 'Queue', metadata: { name: 'bad' }, spec: { lockTimeout: '10ms' } }, message: 'spec.lockTimeout: Invalid value: "string": must be at least 100ms' },
    { what: 'zero brokers', obj: { kind: 'BrokerCluster', metadata: { name: 'bad' }, spec: { replicas: 0 } }, message: 'spec.replicas in body should be greater than or equal to 1' },
    { what: 'a BrokerCluster name that is no DNS label', obj: { kind: 'BrokerCluster', metadata: { name: '1st.cluster' }, spec: {} }, message: "a BrokerCluster's name must be a DNS label of at most 40 characters that starts with a letter" },
    { what: 'a default replication factor above the brokers', obj: { kind: 'BrokerCluster', metadata: { name: 'bad' }, spec: { replicas: 2, config: { defaultReplicationFactor: 3 } } }, message: 'spec.config.defaultReplicationFactor: Invalid value: "object": config.defaultReplicationFactor must not exceed replicas' },
    { what: 'flushInterval without flush interval', obj: { kind: 'BrokerCluster', metadata: { name: 'bad' }, spec: { config: { flushInterval: '1s' } } }, message: 'spec.config.flushInterval: Invalid value: "object": flushInterval applies to flush: interval' },
  ];

  it.each(invalid)('rejects $what', async ({ obj, message }) => {
    const got = await failure(() => create(obj));
    expect(got, 'the API server accepted it').not.toBe('');
    if (typeof message === 'string') expect(got).toContain(message);
    else expect(got).toMatch(message);
  });

  it('prunes an unknown field when validation is not strict: the schema is structural', async () => {
    const body = { apiVersion: `${GROUP}/${VERSION}`, kind: 'Topic', metadata: { name: 'pruned' }, spec: { partitons: 3, retention: { time: '1d', size: '1Gi' } } };
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'topics', body, fieldValidation: 'Ignore' });
    const spec = (await get('Topic', 'pruned')).spec;
    expect(spec).not.toHaveProperty('partitons');
    expect(spec.retention).toEqual({ time: '1d' });
    expect(spec.partitions).toBe(1);
  });

  it('rejects changes of immutable fields with the rules\' messages, and accepts the allowed ones', async () => {
    await create({ kind: 'Topic', metadata: { name: 'immutable' }, spec: { partitions: 3 } });
    expect(await failure(() => patch('Topic', 'immutable', [{ op: 'replace', path: '/spec/replicationFactor', value: 2 }]))).toContain(
      'spec.replicationFactor: Invalid value: "integer": replicationFactor is immutable: create a new Topic to change it',
    );
    expect(await failure(() => patch('Topic', 'immutable', [{ op: 'replace', path: '/spec/partitions', value: 2 }]))).toContain('spec.partitions: Invalid value: "integer": partitions can only be increased');
    expect(await failure(() => patch('Topic', 'immutable', [{ op: 'replace', path: '/spec/partitions', value: 6 }]))).toBe('');
    expect((await get('Topic', 'immutable')).spec.partitions).toBe(6);
    expect(await failure(() => patch('Topic', 'immutable', [{ op: 'add', path: '/spec/brokerCluster', value: 'other' }]))).toContain('brokerCluster is immutable');

    await create({ kind: 'Subscription', metadata: { name: 'immutable' }, spec: { topic: 'orders' } });
    expect(await failure(() => patch('Subscription', 'immutable', [{ op: 'add', path: '/spec/mode', value: 'shared' }]))).toContain('mode is immutable: create a new Subscription to change it');
    // Naming the effective mode is no change.
    expect(await failure(() => patch('Subscription', 'immutable', [{ op: 'add', path: '/spec/mode', value: 'ordered' }]))).toBe('');
    expect(await failure(() => patch('Subscription', 'immutable', [{ op: 'replace', path: '/spec/topic', value: 'payments' }]))).toContain(
      'topic and queue are immutable: create a new Subscription to read another source',
    );
    expect(await failure(() => patch('Subscription', 'immutable', [{ op: 'add', path: '/spec/reset', value: { to: 'earliest', requestId: 'r1' } }]))).toBe('');
    expect(await failure(() => patch('Subscription', 'immutable', [{ op: 'replace', path: '/spec/reset/to', value: 'latest' }]))).toContain('a new reset.to needs a new reset.requestId');
    expect(await failure(() => patch('Subscription', 'immutable', [{ op: 'replace', path: '/spec/reset', value: { to: 'latest', requestId: 'r2' } }]))).toBe('');

    await create({ kind: 'Exchange', metadata: { name: 'immutable' }, spec: { type: 'direct' } });
    expect(await failure(() => patch('Exchange', 'immutable', [{ op: 'replace', path: '/spec/type', value: 'fanout' }]))).toContain('type is immutable: create a new Exchange to change it');
    await create({ kind: 'Queue', metadata: { name: 'immutable' }, spec: { partitions: 2 } });
    expect(await failure(() => patch('Queue', 'immutable', [{ op: 'replace', path: '/spec/partitions', value: 4 }]))).toContain('partitions is immutable');
    expect(await failure(() => patch('Queue', 'immutable', [{ op: 'add', path: '/spec/bindings', value: [{ exchange: 'immutable', routingKey: 'k' }] }]))).toBe('');
    await create({ kind: 'BrokerCluster', metadata: { name: 'immutable' }, spec: {} });
    expect(await failure(() => patch('BrokerCluster', 'immutable', [{ op: 'replace', path: '/spec/storage/size', value: '50Gi' }]))).toContain(
      "storage is immutable: a StatefulSet's volume claim templates cannot change",
    );
    expect(await failure(() => patch('BrokerCluster', 'immutable', [{ op: 'replace', path: '/spec/replicas', value: 3 }]))).toBe('');
  });

  it('has a status subresource: a status patch leaves the spec, and a spec patch leaves the status', async () => {
    const before = await get('Topic', 'orders', SHOP);
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const status = {
      observedGeneration: before.metadata.generation,
      conditions: [{ type: 'Ready', status: 'True', reason: 'Created', message: 'Topic shop.orders has 12 partitions', lastTransitionTime: now, observedGeneration: 1 }],
      brokerName: 'shop.orders',
      partitions: 12,
      replicationFactor: 3,
      messages: 42,
    };
    await custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace: SHOP, plural: 'topics', name: 'orders', body: [{ op: 'add', path: '/status', value: status }] });
    const after = await get('Topic', 'orders', SHOP);
    expect(after.status).toEqual(status);
    expect(after.spec).toEqual(before.spec);
    expect(after.metadata.generation).toBe(before.metadata.generation);

    // The main resource ignores status.
    await patch('Topic', 'orders', [{ op: 'replace', path: '/status/partitions', value: 1 }], SHOP);
    expect((await get('Topic', 'orders', SHOP)).status?.partitions).toBe(12);

    // The status is validated too.
    const bad = [{ op: 'replace', path: '/status/conditions/0/status', value: 'Maybe' }];
    expect(await failure(() => custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace: SHOP, plural: 'topics', name: 'orders', body: bad }))).toContain(
      'status.conditions[0].status: Unsupported value: "Maybe"',
    );
  });

  it('kubectl get kmq lists the examples through the category; kubectl get topics shows the printer columns', async () => {
    const { stdout: all } = await kubectl('get', 'kmq', '-n', SHOP, '-o', 'name');
    const names = all.trim().split('\n').sort();
    expect(names).toEqual(
      [
        'brokercluster.kmq.dev/main',
        'dlqpolicy.kmq.dev/standard',
        'exchange.kmq.dev/notifications',
        'queue.kmq.dev/emails',
        'queue.kmq.dev/emails-dead',
        'queue.kmq.dev/unrouted',
        'subscription.kmq.dev/billing',
        'subscription.kmq.dev/email-workers',
        'topic.kmq.dev/orders',
      ].sort(),
    );

    // orders got a status in the status subresource test.
    const { stdout: topics } = await kubectl('get', 'topics', '-n', SHOP);
    const [header, row] = topics.trim().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual(['NAME', 'READY', 'PARTITIONS', 'REPLICAS', 'AGE']);
    expect(row).toMatch(/^orders\s+True\s+12\s+3\s+\d+s$/);
    const { stdout: wide } = await kubectl('get', 'kt', '-n', SHOP, '-o', 'wide');
    expect(wide.split('\n')[0]!.split(/\s{2,}/)).toEqual(['NAME', 'READY', 'PARTITIONS', 'REPLICAS', 'MESSAGES', 'BROKER NAME', 'REASON', 'AGE']);
    expect(wide).toMatch(/orders\s+True\s+12\s+3\s+42\s+shop\.orders\s+Created\s+\d+s/);

    const { stdout: subs } = await kubectl('get', 'ksub', '-n', SHOP);
    expect(subs.split('\n')[0]!.split(/\s{2,}/)).toEqual(['NAME', 'TOPIC', 'QUEUE', 'MODE', 'READY', 'LAG', 'DLQ', 'AGE']);
    const { stdout: queues } = await kubectl('get', 'kq', '-n', SHOP);
    expect(queues.split('\n')[0]!.split(/\s{2,}/)).toEqual(['NAME', 'READY', 'MESSAGES', 'IN FLIGHT', 'DLQ', 'AGE']);
    for (const short of ['kbc', 'kx', 'kdlq']) {
      const { stdout } = await kubectl('get', short, '-n', SHOP, '-o', 'name');
      expect(stdout.trim()).not.toBe('');
    }
  });
});
