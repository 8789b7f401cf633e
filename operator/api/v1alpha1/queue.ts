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
  immutable,
  immutableOptional,
  integer,
  nameRef,
  object,
  readyColumn,
  reasonColumn,
  retentionSchema,
  statusSchema,
  withRules,
} from './schema.js';
import type { KindDefinition } from './schema.js';
import { MAX_PARTITIONS } from './topic.js';

/** Point-to-point work distribution: a log with one built-in shared group; each message goes to one consumer. */
export interface QueueSpec extends ClusterScopedSpec {
  /** Default 1. Immutable. */
  partitions?: number;
  retention?: Retention;
  /** Deliveries of a message before it is dead-lettered; 0 = unlimited (default). */
  maxDeliveries?: number;
  /** The Queue (same namespace) that dead letters go to. Default none: they are dropped. */
  deadLetterQueue?: string;
  /** How long a delivered message stays locked to its consumer before it is delivered again. Default 30s. */
  lockTimeout?: string;
  /** At most one message per key in flight, so messages of one key are handled in order. Default false. Immutable. */
  perKeyOrdering?: boolean;
  /** Largest message accepted. Default: the broker's (1 MiB). */
  maxMessageBytes?: number | string;
  bindings?: Binding[];
}

export interface QueueStatus extends CommonStatus {
  /** The name of the queue on the broker: `<namespace>.<name>`. */
  brokerName?: string;
  partitions?: number;
  /** Messages waiting, being handled, and waiting for a delayed redelivery. */
  depth?: { ready: number; inFlight: number; delayed: number };
  /** Messages in the dead-letter queue (deadLetterQueue's ready depth). */
  dlqDepth?: number;
  /** Consumers attached. */
  consumers?: number;
  redeliveries?: number;
  deadLettered?: number;
  bindings?: number;
}

export type Queue = KmqResource<'Queue', QueueSpec, QueueStatus>;

const count = (description: string) => ({ type: 'integer' as const, format: 'int64', minimum: 0, description });

const spec = object<QueueSpec>(
  'The desired queue.',
  {
    brokerCluster: brokerClusterSchema,
    deletionPolicy: deletionPolicySchema('the queue on the broker (empty: no message ready, in flight or delayed)'),
    partitions: withRules(integer('Partitions: more spread the load over brokers. Immutable.', 1, MAX_PARTITIONS, 1), immutable('partitions', 'a queue\'s acknowledgement state is kept per partition')),
    retention: retentionSchema('the queue'),
    maxDeliveries: integer('Deliveries of a message before it goes to deadLetterQueue; 0 means unlimited.', 0, 1_000_000, 0),
    deadLetterQueue: nameRef('The Queue (same namespace) that receives messages delivered maxDeliveries times or rejected. Default none.'),
    lockTimeout: duration('How long a delivered message stays locked to its consumer before it is delivered again (visibility timeout).', { default: '30s', minMs: 100, maxMs: 43_200_000 }),
    perKeyOrdering: withRules({ type: 'boolean', description: 'At most one message per key in flight. Immutable.', default: false }, immutable('perKeyOrdering')),
    maxMessageBytes: byteSize('Largest message accepted; at least 64. Default: the broker\'s (1Mi).', { min: 64 }),
    bindings: bindingsSchema('queue'),
  },
  { 'x-kubernetes-validations': [immutableOptional('brokerCluster', 'a queue cannot move between clusters')] },
);

export const queueKind: KindDefinition = {
  kind: 'Queue',
  plural: 'queues',
  singular: 'queue',
  shortNames: ['kq', 'kqueue'],
  description: 'A kmq queue: each message goes to one consumer and is gone once acknowledged.',
  spec,
  status: statusSchema('The queue as the broker reports it.', {
    brokerName: { type: 'string', description: 'The queue\'s name on the broker: <namespace>.<name>.' },
    partitions: { type: 'integer' },
    depth: {
      type: 'object',
      description: 'Messages by state.',
      properties: { ready: count('Waiting for a consumer.'), inFlight: count('Delivered, not yet acknowledged.'), delayed: count('Waiting for a delayed redelivery.') },
    },
    dlqDepth: count('Messages ready in the dead-letter queue.'),
    consumers: count('Consumers attached.'),
    redeliveries: count('Deliveries after the first, since the broker started.'),
    deadLettered: count('Messages dead-lettered, since the broker started.'),
    bindings: count('Bindings in place on the broker.'),
  }),
  printerColumns: [
    readyColumn,
    { name: 'Messages', type: 'integer', jsonPath: '.status.depth.ready', description: 'Messages ready' },
    { name: 'In Flight', type: 'integer', jsonPath: '.status.depth.inFlight', description: 'Messages delivered, not yet acknowledged' },
    { name: 'DLQ', type: 'integer', jsonPath: '.status.dlqDepth', description: 'Messages in the dead-letter queue' },
    { name: 'Consumers', type: 'integer', jsonPath: '.status.consumers', priority: 1 },
    reasonColumn,
    ageColumn,
  ],
  validations: [
    brokerSideNameRule,
    { rule: '!has(self.spec.deadLetterQueue) || self.spec.deadLetterQueue != self.metadata.name', message: 'spec.deadLetterQueue must name another queue' },
  ],
};
