import path from 'node:path';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { CompiledBrokerOptions } from '../options.js';
import type { MetadataStore, QueueSettings, TopicOverrides, TopicRecord } from '../cluster/metadata-store.js';
import { Partition } from '../partition/partition.js';
import type { LogConfig } from '../storage/partition-log.js';

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,200}$/;

export interface Topic {
  readonly record: TopicRecord;
  readonly partitions: Partition[];
}

export interface EffectiveTopicConfig {
  retentionMs: number;
  retentionBytes: number;
  segmentBytes: number;
  segmentMs: number;
  maxMessageBytes: number;
  cleanupPolicy: 'delete' | 'compact';
}

/**
 * The topics this broker holds: their metadata (in the MetadataStore) and their
 * open partitions (folders `<dataDir>/logs/<topic>-<partition>`). Event-loop only;
 * create and delete are serialised by awaiting the metadata store.
 */
export class TopicManager {
  private readonly topics = new Map<string, Topic>();
  private readonly pending = new Set<string>();

  constructor(
    private readonly options: CompiledBrokerOptions,
    private readonly store: MetadataStore,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  private get logsDir(): string {
    return path.join(this.options.dataDir, 'logs');
  }

  async start(): Promise<void> {
    for (const record of await this.store.load()) this.open(record);
  }

  /** Creates an internal topic at start-up when it is missing. */
  async ensureInternalTopic(name: string, partitions: number, config: TopicOverrides): Promise<Topic> {
    const existing = this.topics.get(name);
    if (existing !== undefined) return existing;
    return this.create(name, partitions, 1, config, { internal: true });
  }

  /** Topics (queues are topics too: `kind` picks). */
  list(includeInternal = false, kind: 'topic' | 'queue' | 'any' = 'any'): Topic[] {
    return [...this.topics.values()].filter(
      (t) => (includeInternal || !t.record.internal) && (kind === 'any' || (kind === 'queue') === (t.record.queue !== undefined)),
    );
  }

  /** The queue of that name; a topic of that name is not a queue. */
  queue(name: string): Topic & { record: TopicRecord & { queue: QueueSettings } } {
    const t = this.topics.get(name);
    if (t === undefined || t.record.queue === undefined) throw new KmqError(ErrorCode.UnknownQueue, `Unknown queue "${name}"`, { queue: name });
    return t as Topic & { record: TopicRecord & { queue: QueueSettings } };
  }

  get(name: string): Topic {
    const t = this.topics.get(name);
    if (t === undefined) throw new KmqError(ErrorCode.UnknownTopic, `Unknown topic "${name}"`, { topic: name });
    return t;
  }

  has(name: string): boolean {
    return this.topics.has(name);
  }

  partition(topic: string, index: number): Partition {
    const t = this.get(topic);
    const p = t.partitions[index];
    if (p === undefined) {
      throw new KmqError(ErrorCode.UnknownPartition, `Topic "${topic}" has no partition ${index} (it has ${t.partitions.length})`, { topic, partition: index });
    }
    return p;
  }

  /** Checks a new topic's name, partition count and settings (not whether it exists). */
  validateNew(name: string, partitions: number, overrides: TopicOverrides, internal = false): void {
    if (!TOPIC_NAME.test(name) || name === '.' || name === '..') {
      throw new KmqError(ErrorCode.InvalidTopic, `Invalid topic name "${name}": use 1-200 letters, digits, '.', '_' or '-'`, { topic: name });
    }
    if (!internal && name.startsWith('__')) {
      throw new KmqError(ErrorCode.InvalidTopic, `Topic names starting with "__" are reserved for internal topics: "${name}"`, { topic: name });
    }
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > 10_000) {
      throw new KmqError(ErrorCode.InvalidPartitions, `Partitions must be between 1 and 10000, got ${partitions}`, { topic: name });
    }
    validateOverrides(name, overrides);
  }

  async create(name: string, partitions: number, replicationFactor: number, overrides: TopicOverrides, opts: { internal?: boolean; queue?: QueueSettings } = {}): Promise<Topic> {
    const internal = opts.internal ?? false;
    this.validateNew(name, partitions, overrides, internal);
    if (replicationFactor !== 1) {
      throw new KmqError(ErrorCode.InvalidConfig, `Replication factor ${replicationFactor} is not possible on a single broker; use 1`, { topic: name });
    }
    if (this.topics.has(name) || this.pending.has(name)) {
      const kind = this.topics.get(name)?.record.queue !== undefined ? 'A queue' : 'A topic';
      throw new KmqError(ErrorCode.TopicExists, `${kind} named "${name}" already exists`, { topic: name });
    }
    this.pending.add(name);
    try {
      const record: TopicRecord = { name, id: randomUUID(), partitions, replicationFactor, config: overrides, internal, createdAt: this.clock() };
      if (opts.queue !== undefined) record.queue = opts.queue;
      // Leftover folders of an earlier topic with this name would resurrect its data.
      for (let i = 0; i < partitions; i++) fs.rmSync(this.partitionDir(name, i), { recursive: true, force: true });
      await this.store.putTopic(record);
      const topic = this.open(record);
      this.logger.info({ topic: name, partitions, queue: opts.queue !== undefined }, opts.queue === undefined ? 'Topic created' : 'Queue created');
      return topic;
    } finally {
      this.pending.delete(name);
    }
  }

  /**
   * Holds a topic the cluster created (its record from the coordination store): opens
   * it when new here, keeps it when this broker already has the same topic (same id),
   * and replaces a different topic of that name (deleted and created again elsewhere).
   */
  async adopt(record: TopicRecord): Promise<Topic> {
    const existing = this.topics.get(record.name);
    if (existing !== undefined && existing.record.id === record.id) {
      if (JSON.stringify(existing.record.config) !== JSON.stringify(record.config)) {
        await this.store.putTopic(record);
        const updated: Topic = { record, partitions: existing.partitions };
        this.topics.set(record.name, updated);
        for (const p of existing.partitions) p.log.updateConfig(this.logConfig(record));
        return updated;
      }
      return existing;
    }
    if (existing !== undefined) await this.delete(record.name, true);
    for (let i = 0; i < record.partitions; i++) fs.rmSync(this.partitionDir(record.name, i), { recursive: true, force: true });
    await this.store.putTopic(record);
    const topic = this.open(record);
    this.logger.info({ topic: record.name, partitions: record.partitions, replicationFactor: record.replicationFactor }, 'Topic adopted from the cluster');
    return topic;
  }

  async delete(name: string, evenInternal = false): Promise<void> {
    const topic = this.get(name);
    if (topic.record.internal && !evenInternal) throw new KmqError(ErrorCode.InvalidTopic, `Internal topic "${name}" cannot be deleted`, { topic: name });
    this.deleting(topic);
    this.topics.delete(name);
    await this.store.deleteTopic(name);
    for (const p of topic.partitions) await p.log.deleteAll();
    this.logger.info({ topic: name }, 'Topic deleted');
  }

  async alterConfig(name: string, change: TopicOverrides): Promise<void> {
    const topic = this.get(name);
    validateOverrides(name, change);
    const record: TopicRecord = { ...topic.record, config: { ...topic.record.config, ...change } };
    await this.store.putTopic(record);
    const updated: Topic = { record, partitions: topic.partitions };
    this.topics.set(name, updated);
    const logConfig = this.logConfig(record);
    for (const p of topic.partitions) p.log.updateConfig(logConfig);
  }

  /** Listeners called when a topic or queue is deleted (bindings, subscriptions). */
  private readonly deleteListeners: Array<(t: Topic) => void> = [];

  onDelete(fn: (t: Topic) => void): void {
    this.deleteListeners.push(fn);
  }

  private deleting(t: Topic): void {
    for (const fn of this.deleteListeners) fn(t);
  }

  /** Changes a queue's settings. */
  async alterQueue(name: string, queue: QueueSettings): Promise<void> {
    const topic = this.queue(name);
    const record: TopicRecord = { ...topic.record, queue };
    await this.store.putTopic(record);
    this.topics.set(name, { record, partitions: topic.partitions });
  }

  effectiveConfig(record: TopicRecord): EffectiveTopicConfig {
    const o = this.options;
    const c = record.config;
    return {
      retentionMs: c.retentionMs ?? o.retentionMs,
      retentionBytes: c.retentionBytes ?? o.retentionBytes,
      segmentBytes: c.segmentBytes ?? o.segmentBytes,
      segmentMs: c.segmentMs ?? o.segmentMs,
      maxMessageBytes: c.maxMessageBytes ?? o.maxMessageBytes,
      cleanupPolicy: c.cleanupPolicy ?? 'delete',
    };
  }

  /** Applies retention (and compaction on compacted topics) to every partition. */
  async enforceRetention(): Promise<number> {
    let removed = 0;
    const now = this.clock();
    for (const topic of this.topics.values()) {
      for (const p of topic.partitions) {
        try {
          removed += p.log.enforceRetention(now);
          if (this.effectiveConfig(topic.record).cleanupPolicy === 'compact') await p.log.compact();
        } catch (err) {
          this.logger.error({ err, topic: topic.record.name, partition: p.index }, 'Retention failed');
        }
      }
    }
    return removed;
  }

  async close(): Promise<void> {
    for (const t of this.topics.values()) for (const p of t.partitions) await p.close();
    this.topics.clear();
  }

  private partitionDir(topic: string, index: number): string {
    return path.join(this.logsDir, `${topic}-${index}`);
  }

  private logConfig(record: TopicRecord): LogConfig {
    const e = this.effectiveConfig(record);
    const internal = record.internal;
    return {
      segmentBytes: e.segmentBytes,
      segmentMs: e.segmentMs,
      retentionMs: e.retentionMs,
      retentionBytes: e.retentionBytes,
      indexIntervalBytes: 4096,
      // Internal state (committed offsets) is always fsynced before the answer.
      flush: { mode: internal ? 'every-batch' : this.options.flush, intervalMs: this.options.flushIntervalMs },
      cleanupPolicy: e.cleanupPolicy,
    };
  }

  private open(record: TopicRecord): Topic {
    const config = this.logConfig(record);
    const partitions: Partition[] = [];
    for (let i = 0; i < record.partitions; i++) {
      partitions.push(Partition.open(record.name, i, this.partitionDir(record.name, i), config, { logger: this.logger, clock: this.clock }));
    }
    const topic = { record, partitions };
    this.topics.set(record.name, topic);
    return topic;
  }
}

function validateOverrides(topic: string, o: TopicOverrides): void {
  const check = (name: string, v: number | undefined, min: number): void => {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) {
      throw new KmqError(ErrorCode.InvalidConfig, `Topic "${topic}": ${name} must be an integer >= ${min}, got ${v}`, { topic });
    }
  };
  check('retention.ms', o.retentionMs, -1);
  check('retention.bytes', o.retentionBytes, -1);
  check('segment.bytes', o.segmentBytes, 1024);
  check('segment.ms', o.segmentMs, 1);
  check('max.message.bytes', o.maxMessageBytes, 64);
  check('min.insync.replicas', o.minInSyncReplicas, 1);
  if (o.cleanupPolicy !== undefined && o.cleanupPolicy !== 'delete' && o.cleanupPolicy !== 'compact') {
    throw new KmqError(ErrorCode.InvalidConfig, `Topic "${topic}": cleanup.policy must be delete or compact, got "${String(o.cleanupPolicy)}"`, { topic });
  }
}
