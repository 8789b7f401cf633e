import { throwIfWireError } from '../protocol/error-codes.js';
import { Apis } from '../protocol/apis.js';
import { ResetStrategy } from '../protocol/gen/kmq/broker/v1/broker.js';
import type {
  CommittedOffset,
  DescribeGroupResponse,
  GroupSummary,
  TopicConfig,
  TopicMetadata,
} from '../protocol/gen/kmq/broker/v1/broker.js';
import type { Cluster } from './cluster.js';
import type { TopicPartition } from './group-member.js';
import { fetchCommitted, listOffsets } from './offsets.js';
import type { OffsetSpec } from './offsets.js';
import { invalidSetting } from './settings.js';

export type { CommittedOffset, DescribeGroupResponse, GroupSummary, TopicConfig, TopicMetadata } from '../protocol/gen/kmq/broker/v1/broker.js';
export type { OffsetSpec } from './offsets.js';

export interface CreateTopicOptions {
  partitions: number;
  /** Default 1. */
  replicationFactor?: number;
  /** Absent fields keep the broker's defaults. */
  config?: TopicConfig;
  /** Succeed when the topic exists already. Default false. */
  ifNotExists?: boolean;
}

export interface TopicDescription {
  topic: TopicMetadata;
  /** The effective config, every field set. */
  config: TopicConfig | undefined;
  sizeBytes: number;
}

export type ResetStrategyName = 'earliest' | 'latest' | 'offset' | 'timestamp';

export interface ResetOffsetsOptions {
  /** Default: every partition of the topic. */
  partitions?: number[];
  /** Report the offsets a reset would set without setting them. */
  dryRun?: boolean;
}

const STRATEGIES: Record<ResetStrategyName, ResetStrategy> = {
  earliest: ResetStrategy.RESET_EARLIEST,
  latest: ResetStrategy.RESET_LATEST,
  offset: ResetStrategy.RESET_OFFSET,
  timestamp: ResetStrategy.RESET_TIMESTAMP,
};

/** Topic and group administration. Every call is retried on retriable errors. */
export class Admin {
  constructor(private readonly cluster: Cluster) {}

  async createTopic(name: string, options: CreateTopicOptions): Promise<void> {
    const res = await this.cluster.callAny(Apis.CreateTopic, {
      name,
      partitions: options.partitions,
      replicationFactor: options.replicationFactor ?? 1,
      config: options.config,
      ifNotExists: options.ifNotExists ?? false,
    });
    this.cluster.invalidate(name);
    throwIfWireError(res.header.errorCode, res.header.errorMessage, { topic: name });
  }

  async deleteTopic(name: string, options: { ifExists?: boolean } = {}): Promise<void> {
    const res = await this.cluster.callAny(Apis.DeleteTopic, { name, ifExists: options.ifExists ?? false });
    this.cluster.invalidate(name);
    throwIfWireError(res.header.errorCode, res.header.errorMessage, { topic: name });
  }

  async describeTopic(name: string): Promise<TopicDescription> {
    const res = await this.cluster.callAny(Apis.DescribeTopic, { name });
    throwIfWireError(res.header.errorCode, res.header.errorMessage, { topic: name });
    const topic = res.header.topic ?? { name, errorCode: 0, errorMessage: '', partitions: [], internal: false };
    return { topic, config: res.header.config, sizeBytes: res.header.sizeBytes };
  }

  /** Topics with their partitions (leaders, replicas, offsets). */
  async listTopics(options: { includeInternal?: boolean } = {}): Promise<TopicMetadata[]> {
    const md = await this.cluster.metadata([], options.includeInternal ?? false);
    return md.topics;
  }

  /** Changes only the config fields given. */
  async alterTopicConfig(name: string, config: TopicConfig): Promise<void> {
    const res = await this.cluster.callAny(Apis.AlterTopicConfig, { name, config });
    throwIfWireError(res.header.errorCode, res.header.errorMessage, { topic: name });
  }

  /** partition → offset, for every partition of the topic unless `partitions` is given. */
  async listOffsets(topic: string, spec: OffsetSpec, partitions?: number[]): Promise<Map<number, number>> {
    const ps = partitions ?? [...(await this.cluster.route(topic, true)).leaders.keys()];
    return listOffsets(this.cluster, topic, ps, spec);
  }

  async listGroups(): Promise<GroupSummary[]> {
    const res = await this.cluster.call(() => this.cluster.coordinatorConnection(), Apis.ListGroups, {});
    return res.header.groups;
  }

  async describeGroup(group: string): Promise<DescribeGroupResponse> {
    const res = await this.cluster.call(() => this.cluster.coordinatorConnection(), Apis.DescribeGroup, { group });
    throwIfWireError(res.header.errorCode, res.header.errorMessage, { group });
    return res.header;
  }

  /** Committed offsets of a group, with log end and lag. */
  fetchOffsets(group: string, partitions: TopicPartition[] = []): Promise<CommittedOffset[]> {
    return fetchCommitted(this.cluster, group, partitions);
  }

  /** Resets a group's offsets of `topic` (the group must have no members); returns the new offsets. */
  async resetOffsets(group: string, topic: string, strategy: ResetStrategyName, value?: number, options: ResetOffsetsOptions = {}): Promise<CommittedOffset[]> {
    const wire = STRATEGIES[strategy];
    if (wire === undefined) throw invalidSetting('strategy', 'must be earliest, latest, offset or timestamp', strategy);
    if ((strategy === 'offset' || strategy === 'timestamp') && (value === undefined || !Number.isInteger(value) || value < 0)) {
      throw invalidSetting('value', `strategy ${strategy} needs an integer value >= 0`, value);
    }
    const res = await this.cluster.call(() => this.cluster.coordinatorConnection(), Apis.ResetOffsets, {
      group,
      topic,
      partitions: options.partitions ?? [],
      strategy: wire,
      value: value ?? 0,
      dryRun: options.dryRun ?? false,
    });
    throwIfWireError(res.header.errorCode, res.header.errorMessage, { group, topic });
    return res.header.offsets;
  }

  async deleteGroup(group: string): Promise<void> {
    const res = await this.cluster.call(() => this.cluster.coordinatorConnection(), Apis.DeleteGroup, { group });
    throwIfWireError(res.header.errorCode, res.header.errorMessage, { group });
  }
}
