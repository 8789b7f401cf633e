import type { CommonStatus, KmqResource, Retention } from './meta.js';
import { ageColumn, byteSize, duration, enumOf, immutable, integer, object, readyColumn, reasonColumn, retentionSchema, statusSchema, stringMap, withRules } from './schema.js';
import type { JsonSchema, KindDefinition } from './schema.js';

export const FLUSH_MODES = ['every-batch', 'interval', 'none'] as const;

/** CPU and memory of a container (core/v1 ResourceRequirements without claims). */
export interface ContainerResources {
  requests?: Record<string, number | string>;
  limits?: Record<string, number | string>;
}

/** Where messages live: a StatefulSet of brokers with their Services and volumes. */
export interface BrokerClusterSpec {
  /** Brokers. Default 1. */
  replicas?: number;
  /** The broker image. Default: the operator's own version of it. */
  image?: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** A volume per broker. Immutable: a StatefulSet's volume claim templates cannot change. */
  storage?: { size?: number | string; storageClassName?: string };
  resources?: ContainerResources;
  /** Broker settings (broker/options.ts). */
  config?: BrokerConfig;
  /** The sidecar injected into app pods of this namespace. */
  sidecar?: { image?: string; resources?: ContainerResources };
  nodeSelector?: Record<string, string>;
  priorityClassName?: string;
}

export interface BrokerConfig {
  /** When appended data is fsynced. Default every-batch. */
  flush?: (typeof FLUSH_MODES)[number];
  /** flush interval: how often. Default 1s. */
  flushInterval?: string;
  /** Retention of topics and queues that set none. */
  retention?: Retention;
  /** Largest record batch accepted. Default 1Mi. */
  maxMessageBytes?: number | string;
  /** How long a published idempotency key is remembered; 0s disables publish dedupe. Default 10m. */
  dedupeWindow?: string;
  /** Replication factor of topics and queues created without one. Default: min(3, brokers alive at creation). */
  defaultReplicationFactor?: number;
  /** In-sync replicas an acks=all write needs, for topics that set none (capped at their replication factor). Default 2. */
  minInSyncReplicas?: number;
}

export interface BrokerClusterStatus extends CommonStatus {
  /** Broker pods of the StatefulSet. */
  replicas?: number;
  /** Broker pods ready. */
  readyReplicas?: number;
  /** The address clients and sidecars connect to: `<service>.<namespace>.svc:<port>`. */
  bootstrap?: string;
  /** The image the brokers run. */
  image?: string;
}

export type BrokerCluster = KmqResource<'BrokerCluster', BrokerClusterSpec, BrokerClusterStatus>;

const quantityMap = (description: string): JsonSchema => ({
  type: 'object',
  description,
  maxProperties: 16,
  additionalProperties: {
    'x-kubernetes-int-or-string': true,
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    pattern: '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$',
  },
});

const resources = (of: string): JsonSchema =>
  object<ContainerResources>(`CPU and memory of ${of}.`, {
    requests: quantityMap('Requested resources, e.g. {cpu: 500m, memory: 1Gi}.'),
    limits: quantityMap('Resource limits.'),
  });

const image: JsonSchema = { type: 'string', minLength: 1, maxLength: 512 };

const spec = object<BrokerClusterSpec>('The desired broker cluster.', {
  replicas: integer('Brokers in the StatefulSet.', 1, 15, 1),
  image: { ...image, description: 'The broker image. Default: the image matching the operator\'s version.' },
  imagePullPolicy: enumOf('Pull policy of the broker and sidecar images.', ['Always', 'IfNotPresent', 'Never'], 'IfNotPresent'),
  storage: withRules(
    object<NonNullable<BrokerClusterSpec['storage']>>(
      'A PersistentVolumeClaim per broker. Immutable.',
      {
        size: { ...byteSize('Volume size.', { default: '10Gi', min: 1 }) },
        storageClassName: { type: 'string', description: 'Default: the cluster\'s default StorageClass.', minLength: 1, maxLength: 253 },
      },
      { default: {} },
    ),
    immutable('storage', 'a StatefulSet\'s volume claim templates cannot change'),
  ),
  resources: resources('each broker'),
  config: object<BrokerConfig>('Broker settings.', {
    flush: enumOf('When appended data is fsynced: every-batch (before the ack), interval, or none (left to the OS and to replication).', FLUSH_MODES, 'every-batch'),
    flushInterval: duration('flush interval: how often data is fsynced.', { minMs: 1, maxMs: 3_600_000 }),
    retention: retentionSchema('a topic or queue that sets none'),
    maxMessageBytes: byteSize('Largest record batch accepted; at least 64. Default 1Mi.', { min: 64 }),
    dedupeWindow: duration('How long a published idempotency key is remembered; 0s disables publish dedupe. Default 10m.', { maxMs: 7 * 86_400_000 }),
    defaultReplicationFactor: integer('Replication factor of topics and queues created without one; at most replicas. Default: min(3, brokers alive when the topic is created).', 1, 15),
    minInSyncReplicas: integer('In-sync replicas an acks=all write needs, for topics that set none (capped at their replication factor). Default 2.', 1, 15),
  }, {
    'x-kubernetes-validations': [{ rule: "!has(self.flushInterval) || (has(self.flush) && self.flush == 'interval')", message: 'flushInterval applies to flush: interval', fieldPath: '.flushInterval' }],
  }),
  sidecar: object<NonNullable<BrokerClusterSpec['sidecar']>>('The sidecar injected into app pods of this namespace.', {
    image: { ...image, description: 'The sidecar image. Default: the image matching the operator\'s version.' },
    resources: resources('each sidecar'),
  }),
  nodeSelector: stringMap('Nodes the broker pods may run on.', 32, 253),
  priorityClassName: { type: 'string', description: 'PriorityClass of the broker pods.', maxLength: 253 },
}, {
  default: {},
  'x-kubernetes-validations': [
    {
      rule: '!has(self.config) || !has(self.config.defaultReplicationFactor) || self.config.defaultReplicationFactor <= (has(self.replicas) ? self.replicas : 1)',
      message: 'config.defaultReplicationFactor must not exceed replicas: a partition keeps each replica on another broker',
      fieldPath: '.config.defaultReplicationFactor',
    },
  ],
});

export const brokerClusterKind: KindDefinition = {
  kind: 'BrokerCluster',
  plural: 'brokerclusters',
  singular: 'brokercluster',
  shortNames: ['kbc'],
  description: 'A kmq broker cluster: a StatefulSet of brokers with their Services, volumes and disruption budget.',
  spec,
  status: statusSchema('The brokers as Kubernetes reports them.', {
    replicas: { type: 'integer', minimum: 0, description: 'Broker pods.' },
    readyReplicas: { type: 'integer', minimum: 0, description: 'Broker pods ready.' },
    bootstrap: { type: 'string', description: 'The address clients and sidecars connect to.' },
    image: { type: 'string', description: 'The image the brokers run.' },
  }),
  printerColumns: [
    { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas', description: 'Brokers desired' },
    { name: 'Ready Replicas', type: 'integer', jsonPath: '.status.readyReplicas', description: 'Brokers ready' },
    readyColumn,
    { name: 'Bootstrap', type: 'string', jsonPath: '.status.bootstrap', priority: 1 },
    reasonColumn,
    ageColumn,
  ],
  validations: [
    {
      rule: "self.metadata.name.size() <= 40 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
      message: 'a BrokerCluster\'s name must be a DNS label of at most 40 characters that starts with a letter: it names a StatefulSet and Services',
    },
  ],
};
