import { ErrorCode, KmqError } from '../lib/errors.js';
import { throwIfWireError } from '../protocol/error-codes.js';
import { Apis } from '../protocol/apis.js';
import { ResetStrategy } from '../protocol/gen/kmq/broker/v1/broker.js';
import type {
  CommittedOffset,
  DescribeGroupResponse,
  GroupSummary,
  TopicConfig,
  MetadataResponse,
  TopicMetadata,
} from '../protocol/gen/kmq/broker/v1/broker.js';
import type { Cluster } from './cluster.js';
import type { TopicPartition } from './group-member.js';
import { fetchCommitted, listOffsets } from './offsets.js';
import type { OffsetSpec } from './offsets.js';
import { invalidSetting } from './settings.js';
import type { ExchangeInfo, QueueConfig, QueueInfo } from '../protocol/gen/kmq/broker/v1/queues.js';
import type { PartitionReassignment } from '../protocol/gen/kmq/broker/v1/cluster.js';
import {
  bindingToWire,
  deadLetterFilterToWire,
  decodeDeadLetters,
  destinationToWire,
  exchangeTypeToWire,
} from './queue-admin.js';
import type {
  BindingSpec,
  CreateExchangeOptions,
  CreateQueueOptions,
  DeadLetter,
  DeadLetterQuery,
  DeleteQueueOptions,
  DlqReplayOptions,
  ExchangeTypeName,
} from './queue-admin.js';

export type { CommittedOffset, DescribeGroupResponse, GroupSummary, TopicConfig, TopicMetadata } from '../protocol/gen/kmq/broker/v1/broker.js';
export type { OffsetSpec } from './offsets.js';
export type { PartitionReassignment } from '../protocol/gen/kmq/broker/v1/cluster.js';

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

/** Topic, group, queue, exchange and dead-letter administration. Every call is retried on retriable errors. */
export class Admin {
  constructor(private readonly cluster: Cluster) {}

  async createTopic(name: string, options: CreateTopicOptions): Promise<void> {
    const res = await this.cluster.callAny(Apis.CreateTopic, {
      name,
      partitions: options.partitions,
      // 0: the broker's default (1 on a single node).
      replicationFactor: options.replicationFactor ?? 0,
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

  /** Brokers, controller and every topic's partitions with leader, replicas and in-sync set, as the broker asked sees them. */
  async describeCluster(): Promise<MetadataResponse> {
    return this.cluster.metadata([], false);
  }

  /**
   * Spreads every topic's replicas and leadership evenly over the live brokers
   * with the fewest moves: writes reassignment targets, which the controller
   * carries out (throttled). Returns the partitions given a target.
   */
  async rebalance(options: { dryRun?: boolean } = {}): Promise<PartitionReassignment[]> {
    return (await this.cluster.callAny(Apis.Rebalance, { dryRun: options.dryRun ?? false })).header.moves;
  }

  /**
   * Moves every replica off a broker (and keeps new ones off it while it runs);
   * refused when the other live brokers are fewer than a topic's replication
   * factor. Returns the partitions given a target; the moves finish later
   * (listReassignments, describeCluster).
   */
  async decommissionBroker(brokerId: number, options: { dryRun?: boolean } = {}): Promise<PartitionReassignment[]> {
    return (await this.cluster.callAny(Apis.DecommissionBroker, { brokerId, dryRun: options.dryRun ?? false })).header.moves;
  }

  /** Partitions with a reassignment in progress or waiting for its turn. */
  async listReassignments(): Promise<PartitionReassignment[]> {
    return (await this.cluster.callAny(Apis.ListReassignments, {})).header.reassignments;
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

  // ---- Queues

  /** Absent config fields keep the broker's defaults. */
  async createQueue(name: string, config: QueueConfig = {}, options: CreateQueueOptions = {}): Promise<void> {
    await this.cluster.callQueue(Apis.CreateQueue, { name, config, ifNotExists: options.ifNotExists ?? false });
  }

  async deleteQueue(name: string, options: DeleteQueueOptions = {}): Promise<void> {
    await this.cluster.callQueue(Apis.DeleteQueue, { name, ifExists: options.ifExists ?? false, ifEmpty: options.ifEmpty ?? false });
  }

  /** Effective config, depth (ready, in flight, delayed), consumers and counters. */
  async describeQueue(name: string): Promise<QueueInfo> {
    const res = await this.cluster.callQueue(Apis.DescribeQueue, { name });
    if (res.header.queue === undefined) throw new KmqError(ErrorCode.UnknownQueue, `Queue ${name} does not exist`, { queue: name });
    return res.header.queue;
  }

  async listQueues(): Promise<QueueInfo[]> {
    return (await this.cluster.callQueue(Apis.ListQueues, {})).header.queues;
  }

  /** Removes every ready message; returns how many. */
  async purgeQueue(name: string): Promise<number> {
    return (await this.cluster.callQueue(Apis.PurgeQueue, { name })).header.purged;
  }

  // ---- Exchanges

  async createExchange(name: string, type: ExchangeTypeName, options: CreateExchangeOptions = {}): Promise<void> {
    await this.cluster.callQueue(Apis.CreateExchange, {
      name,
      type: exchangeTypeToWire(type),
      alternate: options.alternate === undefined ? undefined : destinationToWire(options.alternate),
      ifNotExists: options.ifNotExists ?? false,
    });
  }

  async deleteExchange(name: string, options: { ifExists?: boolean } = {}): Promise<void> {
    await this.cluster.callQueue(Apis.DeleteExchange, { name, ifExists: options.ifExists ?? false });
  }

  /** Exchanges with their bindings and routed / unroutable counters. */
  async listExchanges(): Promise<ExchangeInfo[]> {
    return (await this.cluster.callQueue(Apis.ListExchanges, {})).header.exchanges;
  }

  async bind(binding: BindingSpec): Promise<void> {
    await this.cluster.callQueue(Apis.Bind, { binding: bindingToWire(binding) });
  }

  async unbind(binding: BindingSpec): Promise<void> {
    await this.cluster.callQueue(Apis.Unbind, { binding: bindingToWire(binding) });
  }

  // ---- Dead letters

  /** The dead letters of queue `source` matching the query, without consuming them. */
  async dlqPeek(source: string, query: DeadLetterQuery = {}): Promise<DeadLetter[]> {
    const res = await this.cluster.callQueue(Apis.DlqPeek, { source, filter: deadLetterFilterToWire(query) });
    const payload = res.payload.subarray(0, Math.min(res.payload.length, res.header.recordsLength));
    return decodeDeadLetters(res.header.positions, payload);
  }

  /** Puts matching dead letters back on their source; a letter already replayed is skipped. */
  async dlqReplay(source: string, query: DeadLetterQuery = {}, options: DlqReplayOptions = {}): Promise<{ replayed: number; skippedDuplicates: number }> {
    const rate = options.ratePerSecond ?? 0;
    if (!Number.isInteger(rate) || rate < 0) throw invalidSetting('ratePerSecond', 'must be an integer >= 0', rate);
    const timeoutMs = options.timeoutMs ?? (rate > 0 ? 3_600_000 : this.cluster.requestTimeoutMs);
    const res = await this.cluster.callQueue(
      Apis.DlqReplay,
      { source, filter: deadLetterFilterToWire(query), ratePerSecond: rate, dryRun: options.dryRun ?? false },
      { timeoutMs },
    );
    return { replayed: res.header.replayed, skippedDuplicates: res.header.skippedDuplicates };
  }

  /** Removes every dead letter of `source`; returns how many. */
  async dlqPurge(source: string): Promise<number> {
    return (await this.cluster.callQueue(Apis.DlqPurge, { source })).header.purged;
  }
}
