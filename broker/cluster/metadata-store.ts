import type { RoutingStore } from '../routing/exchange-types.js';

/**
 * Where a broker keeps cluster metadata: topics and their settings, and the
 * producer-id counter, exchanges and bindings. DESIGN.md §4 names three coordination stores (kubernetes,
 * etcd, local); a single node uses the local one (local-metadata-store.ts).
 */

/** Per-topic settings that differ from the broker's defaults; absent = default. */
export interface TopicOverrides {
  retentionMs?: number;
  retentionBytes?: number;
  segmentBytes?: number;
  segmentMs?: number;
  maxMessageBytes?: number;
  cleanupPolicy?: 'delete' | 'compact';
  /** In a cluster: acks=all produce needs at least this many in-sync replicas. */
  minInSyncReplicas?: number;
}

/** What makes a topic a queue: its built-in shared group's settings. */
export interface QueueSettings {
  /** Deliveries before a message is dead-lettered; 0 = unlimited. */
  maxDeliveries: number;
  /** Queue that receives dead letters; '' = none (they are dropped and counted). */
  deadLetterQueue: string;
  /** How long a consumer holds a message before it is redelivered, ms. */
  lockTimeoutMs: number;
  /** At most one in-flight message per key. */
  perKeyOrdering: boolean;
}

export interface TopicRecord {
  name: string;
  /** Random id, so a topic deleted and created again is a different topic. */
  id: string;
  partitions: number;
  replicationFactor: number;
  config: TopicOverrides;
  internal: boolean;
  createdAt: number;
  /** Set when the topic is a queue. */
  queue?: QueueSettings;
}

export interface MetadataStore {
  readonly clusterId: string;
  load(): Promise<TopicRecord[]>;
  putTopic(topic: TopicRecord): Promise<void>;
  deleteTopic(name: string): Promise<void>;
  /** Exchanges and bindings (broker/routing), kept beside the topics. */
  readonly routing: RoutingStore;
  /** Reserves a block of producer ids that no other allocation will hand out again. */
  reserveProducerIds(count: number): Promise<number>;
}
