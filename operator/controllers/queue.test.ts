import { describe, expect, it } from 'vitest';
import type { QueueInfo } from '../../client/queue-admin.js';
import { desiredQueueConfig, queueDrift, queueFigures, queueIsEmpty } from './queue.js';

function info(depth = { ready: 0, inFlight: 0, delayed: 0 }): QueueInfo {
  return {
    name: 'shop.emails',
    config: { partitions: 3, retentionMs: 604_800_000, retentionBytes: -1, maxDeliveries: 5, deadLetterQueue: 'shop.emails-dead', lockTimeoutMs: 60_000, perKeyOrdering: false, maxMessageBytes: 1_048_576 },
    depth,
    consumers: 2,
    redeliveries: 4,
    deadLettered: 1,
    logStartOffset: 0,
    logEndOffset: 10,
  };
}

describe('Queue', () => {
  it('spec → broker config: the dead-letter queue namespaced, defaults explicit', () => {
    expect(desiredQueueConfig('shop', { partitions: 3, lockTimeout: '60s', maxDeliveries: 5, deadLetterQueue: 'emails-dead' })).toEqual({
      partitions: 3,
      maxDeliveries: 5,
      deadLetterQueue: 'shop.emails-dead',
      lockTimeoutMs: 60_000,
      perKeyOrdering: false,
    });
    expect(desiredQueueConfig('shop', { retention: { time: '14d' }, maxMessageBytes: '512Ki' })).toEqual({
      partitions: 1,
      maxDeliveries: 0,
      deadLetterQueue: '',
      lockTimeoutMs: 30_000,
      perKeyOrdering: false,
      retentionMs: 14 * 86_400_000,
      maxMessageBytes: 512 * 1024,
    });
  });

  it('drift names each setting the broker cannot change', () => {
    const config = desiredQueueConfig('shop', { partitions: 3, lockTimeout: '60s', maxDeliveries: 5, deadLetterQueue: 'emails-dead' });
    expect(queueDrift(config, info().config)).toEqual([]);
    expect(queueDrift({ ...config, maxDeliveries: 9, lockTimeoutMs: 1000 }, info().config)).toEqual([
      'spec.maxDeliveries asks for 9 but the queue has 5',
      'spec.lockTimeout asks for 1000 but the queue has 60000',
    ]);
    expect(queueDrift({ ...config, deadLetterQueue: '' }, info().config)).toEqual(['spec.deadLetterQueue asks for "" but the queue has "shop.emails-dead"']);
  });

  it('figures and emptiness from the depth', () => {
    expect(queueFigures('shop.emails', info({ ready: 3, inFlight: 1, delayed: 2 }), 4, 1)).toEqual({
      brokerName: 'shop.emails',
      partitions: 3,
      depth: { ready: 3, inFlight: 1, delayed: 2 },
      dlqDepth: 4,
      consumers: 2,
      redeliveries: 4,
      deadLettered: 1,
      bindings: 1,
    });
    expect(queueFigures('shop.emails', info(), undefined, 0)).not.toHaveProperty('dlqDepth');
    expect(queueIsEmpty(info())).toBe(true);
    expect(queueIsEmpty(info({ ready: 0, inFlight: 0, delayed: 1 }))).toBe(false);
    expect(queueIsEmpty(info({ ready: 0, inFlight: 1, delayed: 0 }))).toBe(false);
  });
});
