import { ErrorCode, KmqError, toKmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { BrokerAddress } from '../../protocol/connection.js';
import { errorCodeToWire } from '../../protocol/error-codes.js';
import type {
  EpochEndOffsetRequest,
  EpochEndOffsetResponse,
  ReplicaFetchPartitionResult,
  ReplicaFetchRequest,
  ReplicaFetchResponse,
} from '../../protocol/gen/kmq/broker/v1/replication.js';
import { nextAppend } from './partition.js';
import type { Partition } from './partition.js';
import { ReplicaFetcher } from './replica-fetcher.js';

/** A partition's replication state as the coordination store holds it. */
export interface ReplicaAssignment {
  replicas: readonly number[];
  /** -1: no leader. */
  leader: number;
  leaderEpoch: number;
  isr: readonly number[];
}

/** What replication needs of the cluster: where brokers are, and the store's in-sync-set writes. */
export interface ReplicationCluster {
  brokerAddress(id: number): BrokerAddress | undefined;
  /**
   * Writes the partition's in-sync set by compare-and-swap while the store still names
   * this broker leader at `leaderEpoch`. 'fenced': it no longer does (the new state
   * arrives through applyState).
   */
  updateIsr(topic: string, partition: number, leaderEpoch: number, isr: number[]): Promise<'ok' | 'fenced'>;
}

export interface ReplicaManagerOptions {
  brokerId: number;
  cluster: ReplicationCluster;
  /** The local partition, or undefined when this broker does not hold it. */
  partition: (topic: string, index: number) => Partition | undefined;
  /** A follower that has not caught up for this long leaves the in-sync set, ms. */
  replicaLagTimeMs: number;
  /** Long poll of a follower's fetch, ms. */
  fetchMaxWaitMs: number;
  fetchMaxBytes: number;
  logger: Logger;
  clock?: () => number;
}

const MAX_REPLICA_WAIT_MS = 10_000;

/**
 * This broker's part in replication (DESIGN.md §4 "Cluster"): it applies each
 * partition's state from the coordination store (leader, follower, or neither),
 * runs one ReplicaFetcher per leader it follows, answers its own followers'
 * fetches, and, as leader, writes in-sync set changes to the store — a lagging
 * follower leaves the set, a caught-up one joins it — before acting on them, so
 * the store's set always holds every replica the high watermark counted.
 */
export class ReplicaManager {
  private readonly fetchers = new Map<number, ReplicaFetcher>();
  /** Partitions with an in-sync-set write in flight (one at a time per partition). */
  private readonly isrWrites = new Set<Partition>();
  private readonly leaders = new Set<Partition>();
  private readonly clock: () => number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: ReplicaManagerOptions) {
    this.clock = options.clock ?? Date.now;
    this.timer = setInterval(() => this.shrinkLagging(), Math.max(100, Math.floor(options.replicaLagTimeMs / 4)));
    this.timer.unref();
  }

  /** Applies the stored state of one local partition. */
  applyState(partition: Partition, state: ReplicaAssignment, minInSyncReplicas: number): void {
    if (this.stopped) return;
    const self = this.options.brokerId;
    partition.minInSyncReplicas = minInSyncReplicas;
    if (state.leader === self) {
      this.unfollow(partition);
      partition.becomeLeader(self, state.leaderEpoch, state.replicas, state.isr, this.clock());
      this.leaders.add(partition);
      return;
    }
    this.leaders.delete(partition);
    if (state.leader >= 0 && state.replicas.includes(self)) {
      partition.becomeFollower(state.leader, state.leaderEpoch);
      this.follow(partition, state.leader, state.leaderEpoch);
      return;
    }
    this.unfollow(partition);
    partition.becomeFollower(-1, state.leaderEpoch);
  }

  /** The partition is going away (topic deleted or no longer held here). */
  forget(partition: Partition): void {
    this.leaders.delete(partition);
    this.unfollow(partition);
  }

  /** Leader side of ReplicaFetch: records each follower's progress, long-polls until there is data. */
  async replicaFetch(req: ReplicaFetchRequest, payloadOut: Buffer[], isClosed: () => boolean): Promise<ReplicaFetchResponse> {
    const maxBytes = req.maxBytes > 0 ? req.maxBytes : 16 * 1024 * 1024;
    const deadline = this.clock() + Math.min(req.maxWaitMs, MAX_REPLICA_WAIT_MS);
    for (;;) {
      payloadOut.length = 0;
      const { results, total, errors, partitions } = this.collect(req, maxBytes, payloadOut);
      const remaining = deadline - this.clock();
      if (total > 0 || errors || remaining <= 0 || isClosed() || this.stopped) return { partitions: results };
      await nextAppend(partitions, remaining);
    }
  }

  private collect(req: ReplicaFetchRequest, maxBytes: number, chunks: Buffer[]): { results: ReplicaFetchPartitionResult[]; total: number; errors: boolean; partitions: Partition[] } {
    const results: ReplicaFetchPartitionResult[] = [];
    const partitions: Partition[] = [];
    let total = 0;
    let errors = false;
    const now = this.clock();
    for (const fp of req.partitions) {
      const r: ReplicaFetchPartitionResult = { topic: fp.topic, partition: fp.partition, errorCode: 0, errorMessage: '', highWatermark: -1, logStartOffset: -1, logEndOffset: -1, recordsLength: 0 };
      results.push(r);
      try {
        const p = this.options.partition(fp.topic, fp.partition);
        if (p === undefined) throw new KmqError(ErrorCode.NotLeader, `This broker holds no replica of ${fp.topic}-${fp.partition}`, { topic: fp.topic, partition: fp.partition });
        partitions.push(p);
        r.logStartOffset = p.logStartOffset;
        r.logEndOffset = p.logEndOffset;
        if (fp.fetchOffset < p.logStartOffset) {
          throw new KmqError(ErrorCode.OffsetOutOfRange, `Replica ${req.replicaId} fetches ${fp.topic}-${fp.partition} from ${fp.fetchOffset}, below the log start ${p.logStartOffset}`, { topic: fp.topic, partition: fp.partition });
        }
        const join = p.onReplicaFetch(req.replicaId, fp.leaderEpoch, fp.fetchOffset, now);
        if (join) this.expandIsr(p, req.replicaId);
        r.highWatermark = p.highWatermark;
        const budget = maxBytes - total;
        if (budget <= 0) continue;
        const data = p.readForReplica(fp.fetchOffset, budget);
        if (data.length > 0) {
          chunks.push(data);
          r.recordsLength = data.length;
          total += data.length;
        }
      } catch (err) {
        const e = toKmqError(err);
        r.errorCode = errorCodeToWire(e.code);
        r.errorMessage = e.message;
        errors = true;
      }
    }
    return { results, total, errors, partitions };
  }

  /** Leader side of EpochEndOffset: where the requested epoch ends in this leader's log. */
  epochEndOffset(req: EpochEndOffsetRequest): EpochEndOffsetResponse {
    try {
      const p = this.options.partition(req.topic, req.partition);
      if (p === undefined) throw new KmqError(ErrorCode.NotLeader, `This broker holds no replica of ${req.topic}-${req.partition}`, { topic: req.topic, partition: req.partition });
      p.checkLeader();
      const role = p.role;
      if (role.kind === 'leader' && role.state.epoch !== req.leaderEpoch) {
        throw new KmqError(ErrorCode.FencedLeaderEpoch, `Leader of ${req.topic}-${req.partition} is at epoch ${role.state.epoch}, not ${req.leaderEpoch}`, { topic: req.topic, partition: req.partition });
      }
      const end = p.epochs.endOf(req.requestedEpoch, p.logEndOffset);
      return { errorCode: 0, errorMessage: '', epoch: end.epoch, endOffset: end.endOffset, logStartOffset: p.logStartOffset };
    } catch (err) {
      const e = toKmqError(err);
      return { errorCode: errorCodeToWire(e.code), errorMessage: e.message, epoch: -1, endOffset: -1, logStartOffset: -1 };
    }
  }

  /** The partitions this broker leads now, with their in-sync and replica counts. */
  *led(): Iterable<{ topic: string; partition: number; inSync: number; replicas: number; highWatermark: number }> {
    for (const p of this.leaders) {
      const r = p.role;
      if (r.kind === 'leader') yield { topic: p.topic, partition: p.index, inSync: r.state.isr.size, replicas: r.state.replicas.length, highWatermark: p.highWatermark };
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await Promise.all([...this.fetchers.values()].map((f) => f.stop()));
    this.fetchers.clear();
  }

  private follow(partition: Partition, leader: number, epoch: number): void {
    for (const [id, f] of this.fetchers) if (id !== leader) f.unfollow(partition);
    let fetcher = this.fetchers.get(leader);
    if (fetcher === undefined) {
      fetcher = new ReplicaFetcher({
        brokerId: this.options.brokerId,
        leaderId: leader,
        address: () => this.options.cluster.brokerAddress(leader),
        maxWaitMs: this.options.fetchMaxWaitMs,
        maxBytes: this.options.fetchMaxBytes,
        retryMs: 200,
        logger: this.options.logger.child({ component: 'replica-fetcher', leader }),
      });
      this.fetchers.set(leader, fetcher);
    }
    fetcher.follow(partition, epoch);
  }

  private unfollow(partition: Partition): void {
    for (const f of this.fetchers.values()) f.unfollow(partition);
  }

  private expandIsr(p: Partition, replica: number): void {
    const role = p.role;
    if (role.kind !== 'leader' || role.state.isr.has(replica)) return;
    // With another write in flight the follower's next fetch proposes it again (it counts for the high watermark meanwhile).
    this.writeIsr(p, role.state.epoch, [...role.state.isr, replica], 'joined');
  }

  private shrinkLagging(): void {
    const now = this.clock();
    for (const p of this.leaders) {
      const role = p.role;
      if (role.kind !== 'leader') continue;
      const lagging = p.laggingReplicas(now, this.options.replicaLagTimeMs);
      if (lagging.length === 0) continue;
      const isr = [...role.state.isr].filter((id) => !lagging.includes(id));
      this.writeIsr(p, role.state.epoch, isr, 'lagging');
    }
  }

  /** Starts an in-sync set write unless one is in flight for the partition; false when it did not. */
  private writeIsr(p: Partition, epoch: number, isr: number[], why: 'joined' | 'lagging'): boolean {
    if (this.isrWrites.has(p) || this.stopped) return false;
    this.isrWrites.add(p);
    const log = this.options.logger;
    let accepted = false;
    this.options.cluster
      .updateIsr(p.topic, p.index, epoch, isr)
      .then((result) => {
        const role = p.role;
        if (result === 'ok' && role.kind === 'leader' && role.state.epoch === epoch) {
          accepted = true;
          p.updateIsr(isr);
          log.info({ topic: p.topic, partition: p.index, epoch, isr, reason: why }, why === 'joined' ? 'Replica joined the in-sync set' : 'Lagging replicas left the in-sync set');
        }
      })
      .catch((err: unknown) => log.warn({ topic: p.topic, partition: p.index, err: toKmqError(err).message }, 'In-sync set update failed; retrying'))
      .finally(() => {
        this.isrWrites.delete(p);
        const role = p.role;
        // Only this leadership's proposal: a later one's joining followers have their own write.
        if (why === 'joined' && !accepted && role.kind === 'leader' && role.state.epoch === epoch) for (const id of isr) if (!role.state.isr.has(id)) p.abandonIsrJoin(id);
      });
    return true;
  }
}
