import { describe, expect, it } from 'vitest';
import type { BrokerCluster, DLQPolicy, Subscription } from '../api/v1alpha1/index.js';
import { brokerAddress, sidecarResolver, sidecarSubscription } from './resolve.js';
import type { KmqObjectsApi, Resolution } from './resolve.js';

function subscription(name: string, spec: Subscription['spec']): Subscription {
  return { apiVersion: 'kmq.dev/v1alpha1', kind: 'Subscription', metadata: { name, namespace: 'shop' }, spec };
}

describe('sidecarSubscription', () => {
  it('scopes every broker-side name by the namespace', () => {
    expect(sidecarSubscription('shop', subscription('billing', { topic: 'orders' }))).toEqual({ name: 'shop.billing', topic: 'shop.orders' });
    expect(sidecarSubscription('shop', subscription('mailer', { queue: 'emails', maxInFlight: 10 }))).toEqual({ name: 'shop.mailer', queue: 'shop.emails', maxInFlight: 10 });
  });

  it('maps every field of the spec to the sidecar setting of the same meaning', () => {
    const sub = subscription('billing', {
      topic: 'orders',
      mode: 'ordered',
      maxInFlight: 50,
      startFrom: 'latest',
      dlqPolicy: 'standard',
      deadLetterTopic: 'orders-dead',
      retry: { mode: 'topic', topic: 'orders-retry' },
      guarantee: 'effectively-once',
      idempotency: { keyHeader: 'x-key', processedKeyTtl: '12h' },
      delivery: { push: { port: 8080 } },
      commit: { maxCount: 500, interval: '2s' },
      reset: { to: 'earliest', requestId: 'r1' },
      deletionPolicy: 'Delete',
      brokerCluster: 'main',
    });
    const dlq: DLQPolicy = { apiVersion: 'kmq.dev/v1alpha1', kind: 'DLQPolicy', metadata: { name: 'standard' }, spec: { maxAttempts: 3, backoff: { initial: '200ms', max: '30s', multiplier: 2, jitter: 0.2 }, handlerTimeout: '10s' } };
    expect(sidecarSubscription('shop', sub, dlq)).toEqual({
      name: 'shop.billing',
      topic: 'shop.orders',
      mode: 'ordered',
      maxInFlight: 50,
      startFrom: 'latest',
      dlqPolicy: { maxAttempts: 3, backoff: { initial: '200ms', max: '30s', multiplier: 2, jitter: 0.2 }, handlerTimeoutMs: '10s' },
      deadLetterTopic: 'shop.orders-dead',
      retry: { mode: 'topic', topic: 'shop.orders-retry' },
      guarantee: 'effectively-once',
      idempotencyKeyHeader: 'x-key',
      processedKeyTtlMs: '12h',
      delivery: { push: { port: 8080 } },
      commit: { maxCount: 500, intervalMs: '2s' },
    });
  });

  it('leaves out what the DLQPolicy does not set', () => {
    const dlq: DLQPolicy = { apiVersion: 'kmq.dev/v1alpha1', kind: 'DLQPolicy', metadata: { name: 'p' }, spec: { maxAttempts: 2 } };
    expect(sidecarSubscription('shop', subscription('b', { topic: 't', dlqPolicy: 'p' }), dlq)).toEqual({ name: 'shop.b', topic: 'shop.t', dlqPolicy: { maxAttempts: 2 } });
  });
});

describe('brokerAddress', () => {
  it('is the client Service of the BrokerCluster', () => {
    expect(brokerAddress('main', 'shop')).toBe('main-client.shop.svc:9092');
  });
});

/** A KmqObjectsApi over objects in memory: plural → name → object, all in namespace shop. */
function fakeApi(objects: Record<string, Array<{ metadata: { name?: string } }>>): KmqObjectsApi {
  return {
    getNamespacedCustomObject: ({ plural, name }: { plural: string; name: string }) => {
      const found = (objects[plural] ?? []).find((x) => x.metadata.name === name);
      return found === undefined ? Promise.reject(Object.assign(new Error('not found'), { code: 404 })) : Promise.resolve(found);
    },
    listNamespacedCustomObject: ({ plural }: { plural: string }) => Promise.resolve({ items: objects[plural] ?? [] }),
  } as unknown as KmqObjectsApi;
}

function cluster(name: string, spec: BrokerCluster['spec'] = {}): BrokerCluster {
  return { apiVersion: 'kmq.dev/v1alpha1', kind: 'BrokerCluster', metadata: { name }, spec };
}

describe('sidecarResolver', () => {
  const opts = { defaultImage: 'kmq:default', version: '1.2.3' };
  const resolve = (objects: Parameters<typeof fakeApi>[0], subscriptions: string[], appPort?: number): Promise<Resolution> =>
    sidecarResolver(fakeApi(objects), opts)('shop', { subscriptions, ...(appPort === undefined ? {} : { appPort }) }, new AbortController().signal);

  it("uses the namespace's only BrokerCluster and its sidecar image and resources", async () => {
    const r = await resolve({ brokerclusters: [cluster('main', { imagePullPolicy: 'Always', sidecar: { image: 'kmq:custom', resources: { requests: { cpu: '10m', memory: 1048576 } } } })], subscriptions: [subscription('billing', { topic: 'orders' })] }, ['billing'], 8080);
    expect(r).toEqual({
      ok: true,
      context: {
        namespace: 'shop',
        brokerAddress: 'main-client.shop.svc:9092',
        image: 'kmq:custom',
        imagePullPolicy: 'Always',
        resources: { requests: { cpu: '10m', memory: '1048576' } },
        subscriptions: [{ name: 'shop.billing', topic: 'shop.orders' }],
        appPort: 8080,
        version: '1.2.3',
      },
    });
  });

  it('defaults the image, and serves a publish-only pod', async () => {
    const r = await resolve({ brokerclusters: [cluster('main')] }, []);
    expect(r).toMatchObject({ ok: true, context: { image: 'kmq:default', subscriptions: [] } });
  });

  it('picks the BrokerCluster the Subscriptions name among several', async () => {
    const r = await resolve({ brokerclusters: [cluster('a'), cluster('b')], subscriptions: [subscription('s', { topic: 't', brokerCluster: 'b' })] }, ['s']);
    expect(r).toMatchObject({ ok: true, context: { brokerAddress: 'b-client.shop.svc:9092' } });
  });

  it.each([
    [{}, [], 'namespace shop has no BrokerCluster'],
    [{ brokerclusters: [cluster('a'), cluster('b')] }, [], 'namespace shop has several BrokerClusters; name one in the pod\'s Subscriptions (spec.brokerCluster)'],
    [{ brokerclusters: [cluster('a')] }, ['ghost'], 'Subscription "ghost" (annotation kmq.dev/subscriptions) does not exist in namespace shop'],
    [{ brokerclusters: [cluster('a')], subscriptions: [subscription('s', { topic: 't', brokerCluster: 'z' })] }, ['s'], 'BrokerCluster "z" does not exist in namespace shop'],
    [
      { brokerclusters: [cluster('a'), cluster('b')], subscriptions: [subscription('s', { topic: 't', brokerCluster: 'a' }), subscription('u', { topic: 't', brokerCluster: 'b' })] },
      ['s', 'u'],
      'the subscriptions of the pod are on different BrokerClusters (a, b); a sidecar serves one',
    ],
    [{ brokerclusters: [cluster('a')], subscriptions: [subscription('s', { topic: 't', dlqPolicy: 'p' })] }, ['s'], 'DLQPolicy "p" of Subscription s does not exist in namespace shop'],
    [{ brokerclusters: [cluster('a')], subscriptions: [subscription('s', { queue: 'q', delivery: { push: {} } })] }, ['s'], 'Subscription s pushes to the app: set the annotation kmq.dev/app-port (or spec.delivery.push.port)'],
  ] as Array<[Parameters<typeof fakeApi>[0], string[], string]>)('refuses: %#', async (objects, names, message) => {
    expect(await resolve(objects, names)).toEqual({ ok: false, message });
  });

  it('passes on API errors other than NotFound', async () => {
    const api = { getNamespacedCustomObject: () => Promise.reject(Object.assign(new Error('forbidden'), { code: 403 })) } as unknown as KmqObjectsApi;
    await expect(sidecarResolver(api, opts)('shop', { subscriptions: ['s'] }, new AbortController().signal)).rejects.toThrow('forbidden');
  });
});
