import { describe, expect, it } from 'vitest';
import type { TopicDescription } from '../../client/admin.js';
import { desiredTopicConfig, topicConfigChanges, topicDrift, topicFigures, topicIsEmpty } from './topic.js';

function described(partitions: Array<[start: number, end: number]>, replicas = 1): TopicDescription {
  return {
    topic: {
      name: 'shop.orders',
      errorCode: 0,
      errorMessage: '',
      internal: false,
      partitions: partitions.map(([start, end], partition) => ({ partition, leader: 0, replicas: Array.from({ length: replicas }, (_, i) => i), isr: [0], logStartOffset: start, logEndOffset: end })),
    },
    config: { retentionMs: 604_800_000, retentionBytes: -1, segmentBytes: 134_217_728, segmentMs: 604_800_000, maxMessageBytes: 1_048_576, cleanupPolicy: 'delete' },
    sizeBytes: 4096,
  };
}

describe('Topic', () => {
  it('spec → broker config: durations and quantities in ms and bytes, unlimited as -1, absent fields absent', () => {
    expect(desiredTopicConfig({ retention: { time: '7d', bytes: '50Gi' }, segment: { bytes: '64Mi', time: '1h' }, maxMessageBytes: '2Mi', cleanupPolicy: 'compact' })).toEqual({
      retentionMs: 604_800_000,
      retentionBytes: 50 * 2 ** 30,
      segmentBytes: 64 * 2 ** 20,
      segmentMs: 3_600_000,
      maxMessageBytes: 2 * 2 ** 20,
      cleanupPolicy: 'compact',
    });
    expect(desiredTopicConfig({ retention: { time: 'unlimited', bytes: 'unlimited' } })).toEqual({ retentionMs: -1, retentionBytes: -1 });
    expect(desiredTopicConfig({})).toEqual({});
  });

  it('config changes: only the declared fields that differ', () => {
    const d = described([[0, 0]]);
    expect(topicConfigChanges({ retentionMs: 604_800_000, cleanupPolicy: 'delete' }, d.config)).toEqual({});
    expect(topicConfigChanges({ retentionMs: 3_600_000, cleanupPolicy: 'delete', retentionBytes: 10 }, d.config)).toEqual({ retentionMs: 3_600_000, retentionBytes: 10 });
  });

  it('drift the broker cannot repair: more partitions, fewer, another replication factor', () => {
    expect(topicDrift({ partitions: 3 }, described([[0, 0], [0, 0], [0, 0]]))).toEqual([]);
    expect(topicDrift({ partitions: 4 }, described([[0, 0], [0, 0], [0, 0]]))).toEqual(['spec.partitions is 4 but the topic has 3: the broker cannot add partitions to an existing topic']);
    expect(topicDrift({ partitions: 1 }, described([[0, 0], [0, 0]]))).toEqual(['spec.partitions is 1 but the topic has 2: partitions cannot be removed']);
    expect(topicDrift({ replicationFactor: 3 }, described([[0, 0]], 1))).toEqual(['spec.replicationFactor is 3 but the topic has 1: the replication factor is fixed when a topic is created']);
  });

  it('figures: messages are the sum of log end offsets; empty means start = end everywhere', () => {
    expect(topicFigures('shop.orders', described([[0, 5], [2, 7]]), 1)).toEqual({ brokerName: 'shop.orders', partitions: 2, replicationFactor: 1, messages: 12, sizeBytes: 4096, bindings: 1 });
    expect(topicIsEmpty(described([[5, 5], [7, 7]]))).toBe(true);
    expect(topicIsEmpty(described([[5, 5], [6, 7]]))).toBe(false);
    expect(topicIsEmpty(described([]))).toBe(true);
  });
});
