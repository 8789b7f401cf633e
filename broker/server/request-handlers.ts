import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { ApiKey, Apis } from '../../protocol/apis.js';
import type { ApiSpec } from '../../protocol/apis.js';
import { errorCodeToWire } from '../../protocol/error-codes.js';
import { NO_BROKER } from '../../protocol/well-known.js';
import { BATCH_LOG_OVERHEAD, batchRecordCount, batchTotalBytes } from '../../protocol/batch-header.js';
import * as pb from '../../protocol/gen/kmq/broker/v1/broker.js';
import type { ReplicaFetchRequest } from '../../protocol/gen/kmq/broker/v1/replication.js';
import type { CompiledBrokerOptions } from '../options.js';
import type { TopicManager, Topic } from '../topics/topic-manager.js';
import { nextAppend } from '../partition/partition.js';
import type { Partition } from '../partition/partition.js';
import type { TopicOverrides } from '../cluster/metadata-store.js';
import type { GroupCoordinator } from '../groups/group-coordinator.js';
import type { BrokerProbe } from '../metrics/broker-probe.js';
import type { ProducerIdAllocator } from './producer-id-allocator.js';
import type { ClientConnection, HandlerResult } from './client-connection.js';
import type { QueueHandlers } from './queue-handlers.js';
import type { IdempotencyHandlers } from './idempotency-handlers.js';
import type { ClusterMember } from '../cluster/cluster-member.js';

const MAX_FETCH_WAIT_MS = 30_000;

function ok<Res>(api: ApiSpec<unknown, Res>, res: Res, payload?: Buffer[]): HandlerResult {
  return payload === undefined ? { header: api.response.encode(res).finish() } : { header: api.response.encode(res).finish(), payload };
}

/** Turns the protocol's TopicConfig into overrides (absent fields stay absent). */
function overridesFrom(c: pb.TopicConfig | undefined): TopicOverrides {
  const o: TopicOverrides = {};
  if (c === undefined) return o;
  if (c.retentionMs !== undefined) o.retentionMs = c.retentionMs;
  if (c.retentionBytes !== undefined) o.retentionBytes = c.retentionBytes;
  if (c.segmentBytes !== undefined) o.segmentBytes = c.segmentBytes;
  if (c.segmentMs !== undefined) o.segmentMs = c.segmentMs;
  if (c.maxMessageBytes !== undefined) o.maxMessageBytes = c.maxMessageBytes;
  if (c.minInsyncReplicas !== undefined) o.minInSyncReplicas = c.minInsyncReplicas;
  if (c.cleanupPolicy !== undefined) {
    if (c.cleanupPolicy !== 'delete' && c.cleanupPolicy !== 'compact') {
      throw new KmqError(ErrorCode.InvalidConfig, `cleanup.policy must be delete or compact, got "${c.cleanupPolicy}"`);
    }
    o.cleanupPolicy = c.cleanupPolicy;
  }
  return o;
}

/**
 * The broker's request handlers, one method per api. Whole-request errors are
 * thrown as KmqError (the connection answers with a frame error); per-partition
 * errors go in the answer. Produce does no await before the append, so requests
 * on one connection append in the order they arrived.
 */
export class RequestHandlers {
  constructor(
    private readonly options: CompiledBrokerOptions,
    private readonly topics: TopicManager,
    /** The group coordinator, or NotLeader when another broker hosts it. */
    private readonly groups: () => GroupCoordinator,
    private readonly queueHandlers: QueueHandlers,
    private readonly producerIds: ProducerIdAllocator,
    private readonly probe: BrokerProbe,
    private readonly logger: Logger,
    private readonly clusterId: string,
    private readonly advertised: () => { host: string; port: number },
    private readonly idempotencyHandlers?: IdempotencyHandlers,
    /** The cluster this broker belongs to; undefined for a single node (throws while joining). */
    private readonly cluster: () => ClusterMember | undefined = () => undefined,
  ) {}

  dispatch = (apiKey: number, header: Buffer, payload: Buffer, conn: ClientConnection, correlationId: number): Promise<HandlerResult | null> | HandlerResult | null => {
    switch (apiKey) {
      case ApiKey.Produce:
        return this.produce(Apis.Produce.request.decode(header), payload);
      case ApiKey.Fetch:
        return this.fetch(Apis.Fetch.request.decode(header), conn);
      case ApiKey.ListOffsets:
        return this.listOffsets(Apis.ListOffsets.request.decode(header));
      case ApiKey.Metadata:
        return this.metadata(Apis.Metadata.request.decode(header));
      case ApiKey.InitProducerId:
        return this.producerIds.next().then((id) => ok(Apis.InitProducerId, { errorCode: 0, producerId: id, producerEpoch: 0 }));
      case ApiKey.CreateTopic:
        return this.createTopic(Apis.CreateTopic.request.decode(header));
      case ApiKey.DeleteTopic:
        return this.deleteTopic(Apis.DeleteTopic.request.decode(header));
      case ApiKey.DescribeTopic:
        return this.describeTopic(Apis.DescribeTopic.request.decode(header));
      case ApiKey.AlterTopicConfig:
        return this.alterTopicConfig(Apis.AlterTopicConfig.request.decode(header));
      case ApiKey.JoinGroup:
        return ok(Apis.JoinGroup, this.groups().join(Apis.JoinGroup.request.decode(header), conn.socket.remoteAddress ?? ''));
      case ApiKey.Heartbeat:
        return ok(Apis.Heartbeat, this.groups().heartbeat(Apis.Heartbeat.request.decode(header)));
      case ApiKey.LeaveGroup:
        return ok(Apis.LeaveGroup, this.groups().leave(Apis.LeaveGroup.request.decode(header)));
      case ApiKey.OffsetCommit:
        return this.groups().commitOffsets(Apis.OffsetCommit.request.decode(header)).then((r) => ok(Apis.OffsetCommit, r));
      case ApiKey.OffsetFetch:
        return ok(Apis.OffsetFetch, this.groups().fetchOffsets(Apis.OffsetFetch.request.decode(header)));
      case ApiKey.ListGroups:
        return ok(Apis.ListGroups, this.groups().listGroups());
      case ApiKey.DescribeGroup:
        return ok(Apis.DescribeGroup, this.groups().describeGroup(Apis.DescribeGroup.request.decode(header)));
      case ApiKey.ResetOffsets:
        return this.groups().resetOffsets(Apis.ResetOffsets.request.decode(header)).then((r) => ok(Apis.ResetOffsets, r));
      case ApiKey.DeleteGroup:
        return this.groups().deleteGroup(Apis.DeleteGroup.request.decode(header)).then((r) => ok(Apis.DeleteGroup, r));
      case ApiKey.ReplicaFetch:
        return this.replicaFetch(Apis.ReplicaFetch.request.decode(header), conn);
      case ApiKey.EpochEndOffset:
        return ok(Apis.EpochEndOffset, this.member('EpochEndOffset').replicas.epochEndOffset(Apis.EpochEndOffset.request.decode(header)));
      case ApiKey.Rebalance: {
        const r = Apis.Rebalance.request.decode(header);
        return this.member('Rebalance').rebalance(r.dryRun).then((moves) => ok(Apis.Rebalance, { moves }));
      }
      case ApiKey.DecommissionBroker: {
        const r = Apis.DecommissionBroker.request.decode(header);
        return this.member('DecommissionBroker').decommission(r.brokerId, r.dryRun).then((moves) => ok(Apis.DecommissionBroker, { moves }));
      }
      case ApiKey.ListReassignments:
        return ok(Apis.ListReassignments, { reassignments: this.member('ListReassignments').reassignments() });
      default: {
        // null is an answer (a stream answers later): only undefined passes the key on.
        const q = this.queueHandlers.dispatch(apiKey, header, payload, conn, correlationId);
        const r = q !== undefined ? q : this.idempotencyHandlers?.dispatch(apiKey, header);
        if (r === undefined) throw new KmqError(ErrorCode.UnsupportedVersion, `Unknown api key ${apiKey}`);
        return r;
      }
    }
  };

  private produce(req: pb.ProduceRequest, payload: Buffer): Promise<HandlerResult | null> | null {
    const started = performance.now();
    const topicName = req.topic;
    let topic: Topic;
    try {
      topic = this.topics.get(topicName);
      if (topic.record.internal) throw new KmqError(ErrorCode.InvalidTopic, `Internal topic "${topicName}" cannot be written by clients`, { topic: topicName });
    } catch (err) {
      return this.produceFailed(req, err);
    }
    const partition = topic.partitions[req.partition];
    if (partition === undefined) {
      return this.produceFailed(req, new KmqError(ErrorCode.UnknownPartition, `Topic "${topicName}" has no partition ${req.partition} (it has ${topic.partitions.length})`, { topic: topicName, partition: req.partition }));
    }
    const maxBytes = this.topics.effectiveConfig(topic.record).maxMessageBytes;
    const acksAll = req.acks === pb.Acks.ACKS_ALL;
    // acks=all in a cluster: answered once every in-sync replica has the records.
    const waitCommit = acksAll && partition.role.kind !== 'standalone';
    const appended = partition.append(payload, maxBytes, acksAll).then(async (r) => {
      if (waitCommit) await partition.waitForCommit(r.lastOffset, req.timeoutMs > 0 ? req.timeoutMs : 30_000);
      this.probe.produced(topicName, r.records, r.bytes, (performance.now() - started) / 1000);
      if (req.acks === pb.Acks.ACKS_NONE) return null;
      return ok(Apis.Produce, { errorCode: 0, errorMessage: '', baseOffset: r.baseOffset, lastOffset: r.lastOffset, logStartOffset: partition.logStartOffset, duplicate: r.duplicate });
    });
    if (req.acks !== pb.Acks.ACKS_NONE) return appended;
    appended.catch((err: unknown) => this.produceFailed(req, err));
    return null;
  }

  private produceFailed(req: pb.ProduceRequest, err: unknown): Promise<never> | null {
    if (req.acks === pb.Acks.ACKS_NONE) {
      // Nobody waits for an answer: count and log it, the producer chose not to know.
      const code = err instanceof KmqError ? err.code : ErrorCode.Unknown;
      this.probe.requestError('Produce', code);
      this.logger.debug({ topic: req.topic, partition: req.partition, code }, 'Dropped acks=none produce');
      return null;
    }
    return Promise.reject(err);
  }

  private async fetch(req: pb.FetchRequest, conn: ClientConnection): Promise<HandlerResult> {
    const started = performance.now();
    const maxBytes = req.maxBytes > 0 ? req.maxBytes : 50 * 1024 * 1024;
    const minBytes = Math.max(1, req.minBytes);
    const deadline = Date.now() + Math.min(req.maxWaitMs, MAX_FETCH_WAIT_MS);
    for (;;) {
      const { results, chunks, total, errors } = this.collect(req, maxBytes);
      const remaining = deadline - Date.now();
      if (total >= minBytes || errors || remaining <= 0 || conn.isClosed) {
        this.probe.fetched((performance.now() - started) / 1000);
        return ok(Apis.Fetch, { partitions: results }, chunks);
      }
      await this.waitForData(req, remaining, conn);
    }
  }

  private collect(req: pb.FetchRequest, maxBytes: number): { results: pb.FetchPartitionResult[]; chunks: Buffer[]; total: number; errors: boolean } {
    const results: pb.FetchPartitionResult[] = [];
    const chunks: Buffer[] = [];
    let total = 0;
    let errors = false;
    for (const fp of req.partitions) {
      const r: pb.FetchPartitionResult = { topic: fp.topic, partition: fp.partition, errorCode: 0, errorMessage: '', highWatermark: -1, logStartOffset: -1, recordsLength: 0 };
      results.push(r);
      try {
        const p = this.topics.partition(fp.topic, fp.partition);
        p.checkLeader();
        r.highWatermark = p.highWatermark;
        r.logStartOffset = p.logStartOffset;
        const budget = Math.min(fp.maxBytes > 0 ? fp.maxBytes : maxBytes, maxBytes - total);
        if (budget <= 0 && total > 0) continue;
        const data = p.read(fp.fetchOffset, Math.max(budget, 1));
        if (data.length > 0) {
          chunks.push(data);
          r.recordsLength = data.length;
          total += data.length;
          this.probe.sent(fp.topic, countRecords(data), data.length);
        }
      } catch (err) {
        const e = err instanceof KmqError ? err : new KmqError(ErrorCode.Unknown, String(err));
        r.errorCode = errorCodeToWire(e.code);
        r.errorMessage = e.message;
        this.probe.requestError('Fetch', e.code);
        errors = true;
      }
    }
    return { results, chunks, total, errors };
  }

  private waitForData(req: pb.FetchRequest, ms: number, conn: ClientConnection): Promise<void> {
    const partitions: Partition[] = [];
    for (const fp of req.partitions) {
      try {
        partitions.push(this.topics.partition(fp.topic, fp.partition));
      } catch {
        // Reported by collect() on the next pass.
      }
    }
    return nextAppend(partitions, ms, (wake) => conn.onClose(wake));
  }

  private listOffsets(req: pb.ListOffsetsRequest): HandlerResult {
    const topic = this.topics.get(req.topic);
    const wanted = req.partitions.length > 0 ? req.partitions : topic.partitions.map((p) => p.index);
    const offsets = wanted.map((index): pb.PartitionOffset => {
      const p = topic.partitions[index];
      if (p === undefined) return { partition: index, errorCode: errorCodeToWire(ErrorCode.UnknownPartition), offset: -1, timestamp: -1 };
      try {
        p.checkLeader();
      } catch (err) {
        return { partition: index, errorCode: errorCodeToWire((err as KmqError).code), offset: -1, timestamp: -1 };
      }
      const hw = p.highWatermark;
      const offset = req.timestamp === -1 ? hw : req.timestamp === -2 ? p.logStartOffset : Math.min(p.offsetForTimestamp(req.timestamp), hw);
      return { partition: index, errorCode: 0, offset, timestamp: req.timestamp };
    });
    return ok(Apis.ListOffsets, { errorCode: 0, errorMessage: '', offsets });
  }

  private member(api: string): ClusterMember {
    const m = this.cluster();
    if (m === undefined) throw new KmqError(ErrorCode.InvalidRequest, `${api} is a cluster api; this broker runs as a single node`);
    return m;
  }

  private async replicaFetch(req: ReplicaFetchRequest, conn: ClientConnection): Promise<HandlerResult> {
    const chunks: Buffer[] = [];
    const res = await this.member('ReplicaFetch').replicas.replicaFetch(req, chunks, () => conn.isClosed);
    return ok(Apis.ReplicaFetch, res, chunks);
  }

  private clusterMetadata(req: pb.MetadataRequest, m: ClusterMember): HandlerResult {
    const topicMeta = (t: Topic): pb.TopicMetadata => ({
      name: t.record.name,
      errorCode: 0,
      errorMessage: '',
      internal: t.record.internal,
      partitions: t.partitions.map((p) => {
        const s = m.partitionState(t.record.name, p.index);
        // No leader: an id no broker has, so clients find no route and retry.
        const leader = s === undefined || s.leader < 0 ? NO_BROKER : s.leader;
        return { partition: p.index, leader, replicas: s?.replicas ?? [], isr: s?.isr ?? [], logStartOffset: p.logStartOffset, logEndOffset: p.highWatermark };
      }),
    });
    // Internal topics are still per broker: not part of cluster metadata.
    const visible = (name: string): boolean => this.topics.has(name) && (!this.topics.get(name).record.internal || m.partitionState(name, 0) !== undefined);
    const topics =
      req.topics.length === 0
        ? this.topics.list(false, 'topic').map(topicMeta)
        : req.topics.map((name) =>
            visible(name)
              ? topicMeta(this.topics.get(name))
              : { name, errorCode: errorCodeToWire(ErrorCode.UnknownTopic), errorMessage: `Unknown topic "${name}"`, internal: false, partitions: [] },
          );
    const brokers = [...m.brokers().values()].map((b) => ({ id: b.id, host: b.host, port: b.port }));
    return ok(Apis.Metadata, { brokers, topics, controllerId: m.controller.isController ? m.brokerId : (m.view.controller()?.brokerId ?? NO_BROKER), clusterId: m.clusterId });
  }

  private metadata(req: pb.MetadataRequest): HandlerResult {
    const m = this.cluster();
    if (m !== undefined) return this.clusterMetadata(req, m);
    const nodeId = this.options.nodeId;
    const topicMeta = (t: Topic): pb.TopicMetadata => ({
      name: t.record.name,
      errorCode: 0,
      errorMessage: '',
      internal: t.record.internal,
      partitions: t.partitions.map((p) => ({ partition: p.index, leader: nodeId, replicas: [nodeId], isr: [nodeId], logStartOffset: p.logStartOffset, logEndOffset: p.logEndOffset })),
    });
    const topics =
      req.topics.length === 0
        ? this.topics.list(req.includeInternal, 'topic').map(topicMeta)
        : req.topics.map((name) =>
            this.topics.has(name)
              ? topicMeta(this.topics.get(name))
              : { name, errorCode: errorCodeToWire(ErrorCode.UnknownTopic), errorMessage: `Unknown topic "${name}"`, internal: false, partitions: [] },
          );
    const { host, port } = this.advertised();
    return ok(Apis.Metadata, { brokers: [{ id: nodeId, host, port }], topics, controllerId: nodeId, clusterId: this.clusterId });
  }

  private async createTopic(req: pb.CreateTopicRequest): Promise<HandlerResult> {
    if (req.ifNotExists && this.topics.has(req.name)) return ok(Apis.CreateTopic, { errorCode: 0, errorMessage: '' });
    const partitions = req.partitions === 0 ? this.options.defaultPartitions : req.partitions;
    const m = this.cluster();
    if (m !== undefined) {
      await m.createTopic(req.name, partitions, req.replicationFactor, overridesFrom(req.config));
      return ok(Apis.CreateTopic, { errorCode: 0, errorMessage: '' });
    }
    await this.topics.create(req.name, partitions, req.replicationFactor === 0 ? 1 : req.replicationFactor, overridesFrom(req.config));
    return ok(Apis.CreateTopic, { errorCode: 0, errorMessage: '' });
  }

  private async deleteTopic(req: pb.DeleteTopicRequest): Promise<HandlerResult> {
    if (req.ifExists && !this.topics.has(req.name)) return ok(Apis.DeleteTopic, { errorCode: 0, errorMessage: '' });
    if (this.topics.get(req.name).record.queue !== undefined) {
      throw new KmqError(ErrorCode.InvalidTopic, `"${req.name}" is a queue: delete it with kmq queue delete`, { topic: req.name });
    }
    const m = this.cluster();
    if (m !== undefined) await m.deleteTopic(req.name);
    else await this.topics.delete(req.name);
    return ok(Apis.DeleteTopic, { errorCode: 0, errorMessage: '' });
  }

  private describeTopic(req: pb.DescribeTopicRequest): HandlerResult {
    const t = this.topics.get(req.name);
    const e = this.topics.effectiveConfig(t.record);
    const meta = pb.MetadataResponse.decode(this.metadata({ topics: [req.name], includeInternal: true }).header).topics[0];
    const sizeBytes = t.partitions.reduce((s, p) => s + p.log.sizeBytes, 0);
    return ok(Apis.DescribeTopic, {
      errorCode: 0,
      errorMessage: '',
      topic: meta,
      config: { retentionMs: e.retentionMs, retentionBytes: e.retentionBytes, segmentBytes: e.segmentBytes, segmentMs: e.segmentMs, maxMessageBytes: e.maxMessageBytes, cleanupPolicy: e.cleanupPolicy },
      sizeBytes,
    });
  }

  private async alterTopicConfig(req: pb.AlterTopicConfigRequest): Promise<HandlerResult> {
    await this.topics.alterConfig(req.name, overridesFrom(req.config));
    return ok(Apis.AlterTopicConfig, { errorCode: 0, errorMessage: '' });
  }
}

function countRecords(data: Buffer): number {
  let n = 0;
  for (let pos = 0; pos + BATCH_LOG_OVERHEAD <= data.length; pos += batchTotalBytes(data, pos)) {
    if (pos + 61 > data.length) break;
    n += batchRecordCount(data, pos);
  }
  return n;
}
