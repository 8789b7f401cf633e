import { describe, expect, it } from 'vitest';
import type { DLQPolicy, Subscription } from '../api/v1alpha1/index.js';
import { brokerAddress, sidecarSubscription } from './resolve.js';

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
