/**
 * Where a broker keeps cluster metadata: topics and their settings, and the
 * producer-id counter. DESIGN.md §4 names three coordination stores (kubernetes,
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
}

export interface MetadataStore {
  readonly clusterId: string;
  load(): Promise<TopicRecord[]>;
  putTopic(topic: TopicRecord): Promise<void>;
  deleteTopic(name: string): Promise<void>;
  /** Reserves a block of producer ids that no other allocation will hand out again. */
  reserveProducerIds(count: number): Promise<number>;
}
