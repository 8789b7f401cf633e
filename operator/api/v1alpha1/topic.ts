import { bindingsSchema } from './bindings.js';
import type { Binding } from './bindings.js';
import type { ClusterScopedSpec, CommonStatus, KmqResource, Retention } from './meta.js';
import {
  ageColumn,
  brokerClusterSchema,
  brokerSideNameRule,
  byteSize,
  deletionPolicySchema,
  duration,
  enumOf,
  immutable,
  immutableOptional,
  integer,
  object,
  readyColumn,
  reasonColumn,
  retentionSchema,
  statusSchema,
  withRules,
} from './schema.js';
import type { KindDefinition } from './schema.js';

/** The broker's limit on partitions per topic. */
export const MAX_PARTITIONS = 10_000;

/** A partitioned, replicated log: pub/sub and streaming. Each Subscription on it is an independent group. */
export interface TopicSpec extends ClusterScopedSpec {
  /** 1 to 10,000. Default 1. May only grow. */
  partitions?: number;
  /** Copies of each partition. Default 1. Immutable. */
  replicationFactor?: number;
  retention?: Retention;
  /** `delete` (default) removes old segments; `compact` keeps the newest record of each key. */
  cleanupPolicy?: 'delete' | 'compact';
  /** Segment roll. Defaults: the broker's (128 MiB, 7 days). */
  segment?: { bytes?: number | string; time?: string };
  /** Largest record batch accepted. Default: the broker's (1 MiB). */
  maxMessageBytes?: number | string;
  bindings?: Binding[];
}

export interface TopicStatus extends CommonStatus {
  /** The name of the topic on the broker: `<namespace>.<name>`. */
  brokerName?: string;
  /** Partitions the broker reports. */
  partitions?: number;
  replicationFactor?: number;
  /** Records appended over every partition (sum of log end offsets). */
  messages?: number;
  sizeBytes?: number;
  /** Bindings in place on the broker. */
  bindings?: number;
}

export type Topic = KmqResource<'Topic', TopicSpec, TopicStatus>;

const spec = object<TopicSpec>(
  'The desired topic.',
  {
    brokerCluster: brokerClusterSchema,
    deletionPolicy: deletionPolicySchema('the topic on the broker'),
    partitions: withRules(integer('Partitions: the unit of order and of parallelism of ordered subscriptions. May only grow.', 1, MAX_PARTITIONS, 1), {
      rule: 'self >= oldSelf',
      message: 'partitions can only be increased',
    }),
    replicationFactor: withRules(integer('Copies of each partition on distinct brokers; at most the BrokerCluster\'s replicas. Immutable.', 1, 7, 1), immutable('replicationFactor', 'create a new Topic to change it')),
    retention: retentionSchema('the topic'),
    cleanupPolicy: enumOf('delete removes old segments; compact keeps the newest record of each key.', ['delete', 'compact'], 'delete'),
    segment: object<NonNullable<TopicSpec['segment']>>('When the active segment of a partition is rolled.', {
      bytes: byteSize('Segment size; at least 1Ki. Default: the broker\'s (128Mi).', { min: 1024 }),
      time: duration('Segment age. Default: the broker\'s (7d).', { minMs: 1 }),
    }),
    maxMessageBytes: byteSize('Largest record batch accepted; at least 64. Default: the broker\'s (1Mi).', { min: 64 }),
    bindings: bindingsSchema('topic'),
  },
  { 'x-kubernetes-validations': [immutableOptional('brokerCluster', 'a topic cannot move between clusters')] },
);

export const topicKind: KindDefinition = {
  kind: 'Topic',
  plural: 'topics',
  singular: 'topic',
  shortNames: ['kt', 'ktopic'],
  description: 'A kmq topic: a partitioned, append-only log that every Subscription on it reads independently.',
  spec,
  status: statusSchema('The topic as the broker reports it.', {
    brokerName: { type: 'string', description: 'The topic\'s name on the broker: <namespace>.<name>.' },
    partitions: { type: 'integer', description: 'Partitions on the broker.' },
    replicationFactor: { type: 'integer' },
    messages: { type: 'integer', format: 'int64', description: 'Records appended over every partition.' },
    sizeBytes: { type: 'integer', format: 'int64', description: 'Bytes stored over every partition.' },
    bindings: { type: 'integer', description: 'Bindings in place on the broker.' },
  }),
  printerColumns: [
    readyColumn,
    { name: 'Partitions', type: 'integer', jsonPath: '.status.partitions', description: 'Partitions on the broker' },
    { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicationFactor', description: 'Replication factor' },
    { name: 'Messages', type: 'integer', jsonPath: '.status.messages', description: 'Records appended', priority: 1 },
    { name: 'Broker Name', type: 'string', jsonPath: '.status.brokerName', priority: 1 },
    reasonColumn,
    ageColumn,
  ],
  validations: [brokerSideNameRule],
};
