/**
 * Every shared group of a broker: one SharePartition per (group, topic, partition), one
 * member registry, one group-commit writer over the ShareStateJournal. Transport-free
 * and timer-free: the broker calls `tick()` on its own timer to expire locks and member
 * sessions. `start()` replays the journal and must finish before anything else.
 * Event-loop only. See README.md.
 */
import { ErrorCode, KmqError } from '../../../lib/errors.js';
import { silentLogger } from '../../../lib/logger.js';
import type { Logger } from '../../../lib/logger.js';
import { compileSharedGroupOptions } from './share-options.js';
import type { CompiledSharedGroupOptions, SharedGroupOptions } from './share-options.js';
import { ShareMembers } from './share-members.js';
import { SharePartition } from './share-partition.js';
import type { ShareDepth, SharePartitionStats } from './share-partition.js';
import type { ShareStateJournal } from './share-state-journal.js';
import { ShareKeyType, decodeBlockValue, decodeShareKey, decodeStartValue, newBlockState, shareKeyVersion, SHARE_KEY_VERSION } from './share-state-record.js';
import type { BlockState } from './share-state-record.js';
import { ShareStateWriter } from './share-state-writer.js';
import type { ShareStateWriterStats } from './share-state-writer.js';

export interface SharedGroupCoordinatorDeps {
  journal: ShareStateJournal;
  /** ms since the epoch; default Date.now. */
  clock?: () => number;
  logger?: Logger;
  options?: SharedGroupOptions;
}

/** One share-partition in describe(). */
export interface SharePartitionDescription extends ShareDepth {
  topic: string;
  partition: number;
  startOffset: number;
  endOffset: number;
  stats: SharePartitionStats;
}

export interface SharedGroupDescription {
  group: string;
  /** Members that have acquired from this group and are not gone. */
  members: number;
  partitions: SharePartitionDescription[];
  /** Sums over the partitions. */
  stats: SharePartitionStats;
}

/** What one tick did. */
export interface TickResult {
  expiredLocks: number;
  goneMembers: number;
}

export class SharedGroupCoordinator {
  private readonly clock: () => number;
  private readonly log: Logger;
  private readonly options: CompiledSharedGroupOptions;
  private readonly writer: ShareStateWriter;
  private readonly members = new ShareMembers();
  /** group → "topic/partition" → state. */
  private readonly groups = new Map<string, Map<string, SharePartition>>();
  private readonly maxDeliveriesByGroup = new Map<string, number>();
  private started = false;

  constructor(private readonly deps: SharedGroupCoordinatorDeps) {
    this.clock = deps.clock ?? Date.now;
    this.log = deps.logger ?? silentLogger();
    this.options = compileSharedGroupOptions(deps.options);
    this.writer = new ShareStateWriter(deps.journal, this.log);
  }

  /** Replays the journal: the last record per key wins; unknown key versions are skipped. */
  async start(): Promise<void> {
    if (this.started) return;
    const live = new Map<string, { key: Buffer; value: Buffer }>();
    let skipped = 0;
    let records = 0;
    for (const { key, value } of this.deps.journal.load()) {
      records++;
      if (shareKeyVersion(key) !== SHARE_KEY_VERSION) {
        skipped++;
        continue;
      }
      const k = key.toString('latin1');
      if (value === null) live.delete(k);
      else live.set(k, { key, value });
    }
    const loaded = new Map<string, { group: string; topic: string; partition: number; start: number; blocks: Array<{ baseOffset: number; block: BlockState }> }>();
    for (const { key, value } of live.values()) {
      const k = decodeShareKey(key);
      const id = `${k.group}\u0000${k.topic}\u0000${k.partition}`;
      let p = loaded.get(id);
      if (p === undefined) {
        p = { group: k.group, topic: k.topic, partition: k.partition, start: 0, blocks: [] };
        loaded.set(id, p);
      }
      if (k.type === ShareKeyType.Start) {
        p.start = decodeStartValue(value);
      } else {
        const block = newBlockState();
        decodeBlockValue(value, block);
        p.blocks.push({ baseOffset: k.baseOffset, block });
      }
    }
    for (const p of loaded.values()) this.create(p.group, p.topic, p.partition, 0).restore(p.start, p.blocks);
    this.started = true;
    this.log.info({ records, liveKeys: live.size, sharePartitions: loaded.size, skipped }, 'Shared-group state loaded');
  }

  /** The state of `group` on `topic`/`partition`, created (at `startOffset`, default 0) when new. */
  partition(group: string, topic: string, partition: number, startOffset?: number): SharePartition {
    if (!this.started) throw new KmqError(ErrorCode.BrokerNotAvailable, 'Shared groups are still loading', { group, topic, partition });
    return this.groups.get(group)?.get(`${topic}/${partition}`) ?? this.create(group, topic, partition, startOffset ?? 0);
  }

  /** The share-partitions of `group`, if any. */
  partitionsOf(group: string): SharePartition[] {
    const g = this.groups.get(group);
    return g === undefined ? [] : [...g.values()];
  }

  /** Sets the delivery limit of a group (0 = unlimited), for its partitions now and later. */
  setMaxDeliveries(group: string, maxDeliveries: number): void {
    if (!Number.isSafeInteger(maxDeliveries) || maxDeliveries < 0) {
      throw new KmqError(ErrorCode.InvalidConfig, `maxDeliveries must be a non-negative integer, got ${maxDeliveries}`, { group });
    }
    this.maxDeliveriesByGroup.set(group, maxDeliveries);
    for (const p of this.partitionsOf(group)) p.maxDeliveries = maxDeliveries;
  }

  /** Notes that the member is alive (heartbeat); acquire, ack, release, reject and renew do it too. */
  heartbeat(memberId: string, now: number = this.clock()): void {
    this.members.seen(memberId, now);
  }

  /** Records the member holds over every share-partition: prefetch = limit - heldBy. */
  heldBy(memberId: string): number {
    return this.members.get(memberId)?.held ?? 0;
  }

  /** The member left or its connection closed: its records are available again at once. */
  memberGone(memberId: string, now: number = this.clock()): number {
    const m = this.members.get(memberId);
    if (m === undefined) return 0;
    let n = 0;
    for (const p of m.partitions) n += p.releaseMember(m.index, now);
    this.members.remove(m);
    return n;
  }

  /** Expires locks and member sessions due at `now`. Cheap when nothing is due. */
  tick(now: number = this.clock()): TickResult {
    let goneMembers = 0;
    let expiredLocks = 0;
    for (const m of this.members.values()) {
      if (now - m.lastSeenAt < this.options.sessionTimeoutMs) continue;
      this.memberGone(m.id, now);
      goneMembers++;
    }
    for (const g of this.groups.values()) for (const p of g.values()) expiredLocks += p.expireLocks(now);
    return { expiredLocks, goneMembers };
  }

  /**
   * Depth, members and counters of a group. `logEndOffset` gives each partition's log
   * end; without it, the last one seen by acquire is used.
   */
  describe(group: string, logEndOffset?: (topic: string, partition: number) => number, now: number = this.clock()): SharedGroupDescription {
    const partitions: SharePartitionDescription[] = [];
    const stats: SharePartitionStats = { delivered: 0, redelivered: 0, acked: 0, released: 0, lockExpired: 0, rejected: 0, deadLettered: 0 };
    const parts = this.partitionsOf(group);
    for (const p of parts) {
      const end = logEndOffset?.(p.topic, p.partition) ?? p.lastLogEndOffset;
      partitions.push({ topic: p.topic, partition: p.partition, startOffset: p.startOffset, endOffset: p.endOffset, ...p.depth(end, now), stats: { ...p.stats } });
      for (const k of Object.keys(stats) as Array<keyof SharePartitionStats>) stats[k] += p.stats[k];
    }
    let members = 0;
    for (const m of this.members.values()) {
      for (const p of m.partitions) {
        if (p.group === group) {
          members++;
          break;
        }
      }
    }
    partitions.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
    return { group, members, partitions, stats };
  }

  /** Counters of the journal writer. */
  get journalStats(): Readonly<ShareStateWriterStats> {
    return this.writer.stats;
  }

  /** Resolves once every change so far is durable. */
  flush(): Promise<void> {
    return this.writer.durable();
  }

  /** Waits for pending journal writes; the coordinator must not be used afterwards. */
  async close(): Promise<void> {
    await this.writer.idle();
  }

  private create(group: string, topic: string, partition: number, startOffset: number): SharePartition {
    let g = this.groups.get(group);
    if (g === undefined) {
      g = new Map();
      this.groups.set(group, g);
    }
    const options = { ...this.options, maxDeliveries: this.maxDeliveriesByGroup.get(group) ?? this.options.maxDeliveries };
    const p = new SharePartition({ group, topic, partition, writer: this.writer, options, members: this.members, clock: this.clock, startOffset });
    g.set(`${topic}/${partition}`, p);
    return p;
  }
}
