import { ErrorCode, KmqError, toKmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { Apis } from '../../protocol/apis.js';
import { BrokerConnection } from '../../protocol/connection.js';
import type { BrokerAddress } from '../../protocol/connection.js';
import { errorCodeFromWire } from '../../protocol/error-codes.js';
import type { ReplicaFetchPartition } from '../../protocol/gen/kmq/broker/v1/replication.js';
import type { Partition } from './partition.js';

/** Settings of the follower side. */
export interface ReplicaFetcherOptions {
  brokerId: number;
  /** The leader this fetcher copies from. */
  leaderId: number;
  address: () => BrokerAddress | undefined;
  /** Long poll of one fetch, ms. */
  maxWaitMs: number;
  maxBytes: number;
  /** Pause after a failed round (leader unreachable, fenced), ms. */
  retryMs: number;
  logger: Logger;
}

interface Followed {
  partition: Partition;
  epoch: number;
  /** Truncation by leader epoch runs before the first fetch of each leadership. */
  needsTruncation: boolean;
  /** Errors pause a partition until this time. */
  pausedUntil: number;
}

function keyOf(p: Partition): string {
  return `${p.topic}\u0000${p.index}`;
}

/**
 * Copies the partitions one leader leads into this broker's logs: a loop of
 * long-poll ReplicaFetch requests over one connection, each partition first
 * truncated to where its latest leader epoch ends on the leader (EpochEndOffset),
 * so a replica that returns with records the leader never had drops them before
 * it copies anything. Errors pause only the partition concerned; a lost
 * connection pauses the round and reconnects.
 */
export class ReplicaFetcher {
  private readonly followed = new Map<string, Followed>();
  private conn: BrokerConnection | undefined;
  private running = true;
  private wake: (() => void) | undefined;
  private readonly loop: Promise<void>;

  constructor(private readonly options: ReplicaFetcherOptions) {
    this.loop = this.run();
  }

  get size(): number {
    return this.followed.size;
  }

  /** Follows `partition` at leader epoch `epoch` (again from truncation when the epoch changed). */
  follow(partition: Partition, epoch: number): void {
    const k = keyOf(partition);
    const f = this.followed.get(k);
    if (f !== undefined && f.epoch === epoch) return;
    this.followed.set(k, { partition, epoch, needsTruncation: true, pausedUntil: 0 });
    this.wake?.();
  }

  unfollow(partition: Partition): void {
    this.followed.delete(keyOf(partition));
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    this.conn?.close().catch(() => undefined);
    await this.loop;
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        if (this.followed.size === 0) {
          await this.idle(1000);
          continue;
        }
        const conn = await this.connection();
        await this.truncateNew(conn);
        // The leader long-polls, so the next round can start at once.
        await this.fetchRound(conn);
      } catch (err) {
        if (!this.running) break;
        const e = toKmqError(err);
        this.options.logger.warn({ leader: this.options.leaderId, err: e.message }, 'Replica fetch failed; retrying');
        this.conn?.close().catch(() => undefined);
        this.conn = undefined;
        await this.idle(this.options.retryMs);
      }
    }
  }

  /** Waits `ms`, or until follow() or stop() wakes the loop. */
  private async idle(ms: number): Promise<void> {
    if (ms <= 0) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
    this.wake = undefined;
  }

  private async connection(): Promise<BrokerConnection> {
    if (this.conn !== undefined && !this.conn.closed) return this.conn;
    const address = this.options.address();
    if (address === undefined) throw new KmqError(ErrorCode.BrokerNotAvailable, `Leader broker ${this.options.leaderId} is not registered`, { broker: String(this.options.leaderId) });
    const conn = new BrokerConnection({
      address,
      connectTimeoutMs: 2000,
      requestTimeoutMs: this.options.maxWaitMs + 10_000,
      maxFrameBytes: this.options.maxBytes + 16 * 1024 * 1024,
      logger: this.options.logger,
    });
    await conn.connect();
    this.conn = conn;
    return conn;
  }

  private async truncateNew(conn: BrokerConnection): Promise<void> {
    for (const f of [...this.followed.values()]) {
      if (!f.needsTruncation || f.pausedUntil > Date.now()) continue;
      const p = f.partition;
      const requested = p.epochs.latestEpoch;
      if (requested < 0) {
        f.needsTruncation = false;
        continue;
      }
      const res = (await conn.request(Apis.EpochEndOffset, { topic: p.topic, partition: p.index, leaderEpoch: f.epoch, requestedEpoch: requested })).header;
      if (this.followed.get(keyOf(p)) !== f) continue;
      if (res.errorCode !== 0) {
        this.pause(f, new KmqError(errorCodeFromWire(res.errorCode), res.errorMessage));
        continue;
      }
      let to: number;
      if (res.epoch < 0) {
        // The leader knows no epoch this old: keep only what was committed.
        to = p.highWatermark;
      } else if (res.epoch === requested) {
        to = Math.min(Number(res.endOffset), p.logEndOffset);
      } else {
        to = Math.min(Number(res.endOffset), p.epochs.endOf(res.epoch, p.logEndOffset).endOffset);
      }
      if (to < p.logStartOffset) await p.resetTo(Number(res.logStartOffset));
      else await p.truncateTo(to);
      f.needsTruncation = false;
    }
  }

  /** One ReplicaFetch for every partition ready to fetch. */
  private async fetchRound(conn: BrokerConnection): Promise<void> {
    const now = Date.now();
    const round = [...this.followed.values()].filter((f) => !f.needsTruncation && f.pausedUntil <= now);
    if (round.length === 0) {
      await this.idle(this.options.retryMs);
      return;
    }
    const partitions: ReplicaFetchPartition[] = round.map((f) => ({ topic: f.partition.topic, partition: f.partition.index, fetchOffset: f.partition.logEndOffset, leaderEpoch: f.epoch }));
    const res = await conn.request(
      Apis.ReplicaFetch,
      { replicaId: this.options.brokerId, partitions, maxWaitMs: this.options.maxWaitMs, maxBytes: this.options.maxBytes },
      undefined,
      { timeoutMs: this.options.maxWaitMs + 10_000 },
    );
    let at = 0;
    for (let i = 0; i < res.header.partitions.length; i++) {
      const r = res.header.partitions[i]!;
      const f = round[i];
      const data = res.payload.subarray(at, at + r.recordsLength);
      at += r.recordsLength;
      if (f === undefined || this.followed.get(keyOf(f.partition)) !== f || f.partition.role.kind !== 'follower') continue;
      if (r.errorCode !== 0) {
        const code = errorCodeFromWire(r.errorCode);
        if (code === ErrorCode.OffsetOutOfRange && f.partition.logEndOffset < Number(r.logStartOffset)) {
          // Retention removed what this follower still needs: start over at the leader's log start.
          await f.partition.resetTo(Number(r.logStartOffset));
        } else if (code === ErrorCode.OffsetOutOfRange) {
          f.needsTruncation = true;
        } else {
          this.pause(f, new KmqError(code, r.errorMessage));
        }
        continue;
      }
      await f.partition.appendReplicated(data, Number(r.highWatermark));
      f.partition.followLogStart(Number(r.logStartOffset));
    }
  }

  private pause(f: Followed, err: KmqError): void {
    f.pausedUntil = Date.now() + this.options.retryMs;
    this.options.logger.debug({ topic: f.partition.topic, partition: f.partition.index, leader: this.options.leaderId, err: err.message }, 'Replica fetch of partition paused');
  }
}
