import { backoffDelay } from '../lib/backoff.js';
import { ErrorCode, toKmqError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { Apis } from '../protocol/apis.js';
import { throwIfWireError } from '../protocol/error-codes.js';
import type { TopicPartitions } from '../protocol/gen/kmq/broker/v1/broker.js';
import type { Cluster } from './cluster.js';
import type { CompiledRetrySettings } from './options.js';

/** One partition of one topic. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

/** What the member asks of its consumer when the broker changes its assignment. */
export interface MembershipHooks {
  /** Start consuming these partitions. */
  assigned(partitions: TopicPartition[]): Promise<void>;
  /** Stop consuming these, commit their positions; resolve once they are no longer consumed. */
  revoked(partitions: TopicPartition[]): Promise<void>;
  /** Membership was lost (UnknownMember): drop everything without committing. */
  lost(): void;
  /** The partitions consumed now, reported with every heartbeat. */
  owned(): TopicPartition[];
}

export interface GroupMemberOptions {
  groupId: string;
  topics: string[];
  sessionTimeoutMs: number;
  clientId: string;
}

export function toTopicPartitions(list: readonly TopicPartition[]): TopicPartitions[] {
  const byTopic = new Map<string, number[]>();
  for (const tp of list) {
    let ps = byTopic.get(tp.topic);
    if (ps === undefined) byTopic.set(tp.topic, (ps = []));
    ps.push(tp.partition);
  }
  return [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
}

function flatten(list: readonly TopicPartitions[]): TopicPartition[] {
  const out: TopicPartition[] = [];
  for (const t of list) for (const partition of t.partitions) out.push({ topic: t.topic, partition });
  return out;
}

const keyOf = (tp: TopicPartition): string => `${tp.topic}\u0000${tp.partition}`;

/**
 * Membership of one ordered consumer group: join, heartbeats that report what
 * is consumed, and reconciliation with the assignment every response carries.
 * The broker hands a partition to a new owner only once the old owner stops
 * reporting it, so revocation finishes (position committed, fetching stopped)
 * before the next heartbeat. Heartbeats run one after another, never overlapping.
 */
export class GroupMember {
  memberId = '';
  generation = 0;
  private heartbeatIntervalMs = 3_000;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failures = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly options: GroupMemberOptions,
    private readonly hooks: MembershipHooks,
    private readonly backoff: CompiledRetrySettings,
    private readonly log: Logger,
  ) {}

  /** Joins the group and starts heartbeating; resolves after the first assignment is applied. */
  async start(): Promise<void> {
    await this.join();
    this.schedule(this.heartbeatIntervalMs);
  }

  /** Stops heartbeats and leaves the group; the broker reassigns at once instead of after the session timeout. */
  async leave(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.memberId === '') return;
    try {
      const res = await (await this.cluster.coordinatorConnection()).request(Apis.LeaveGroup, { group: this.options.groupId, memberId: this.memberId });
      throwIfWireError(res.header.errorCode, res.header.errorMessage, { group: this.options.groupId });
    } catch (err) {
      this.log.warn({ group: this.options.groupId, err: (err as Error).message }, 'Leaving the group failed; the session will expire');
    }
    this.memberId = '';
  }

  private async join(): Promise<void> {
    const { groupId, topics, sessionTimeoutMs, clientId } = this.options;
    const res = await this.cluster.call(() => this.cluster.coordinatorConnection(), Apis.JoinGroup, {
      group: groupId,
      memberId: this.memberId,
      topics,
      sessionTimeoutMs,
      clientId,
    });
    throwIfWireError(res.header.errorCode, res.header.errorMessage, { group: groupId });
    this.memberId = res.header.memberId;
    this.generation = res.header.generation;
    if (res.header.heartbeatIntervalMs > 0) this.heartbeatIntervalMs = res.header.heartbeatIntervalMs;
    this.log.info({ group: groupId, memberId: this.memberId, generation: this.generation }, 'Joined group');
    await this.reconcile(res.header.assignment);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.beat(), ms);
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    try {
      if (this.memberId === '') {
        await this.join();
      } else {
        const conn = await this.cluster.coordinatorConnection();
        const res = await conn.request(Apis.Heartbeat, { group: this.options.groupId, memberId: this.memberId, owned: toTopicPartitions(this.hooks.owned()) });
        throwIfWireError(res.header.errorCode, res.header.errorMessage, { group: this.options.groupId });
        this.generation = res.header.generation;
        if (res.header.heartbeatIntervalMs > 0) this.heartbeatIntervalMs = res.header.heartbeatIntervalMs;
        if (this.stopped) return;
        await this.reconcile(res.header.assignment);
      }
      this.failures = 0;
      this.schedule(this.heartbeatIntervalMs);
    } catch (raw) {
      const err = toKmqError(raw, ErrorCode.Unknown, { group: this.options.groupId });
      if (err.code === ErrorCode.UnknownMember) {
        this.log.warn({ group: this.options.groupId, memberId: this.memberId }, 'Group membership lost; rejoining');
        this.hooks.lost();
        this.memberId = '';
        this.schedule(0);
        return;
      }
      this.failures++;
      this.cluster.coordinatorMoved();
      this.log.warn({ group: this.options.groupId, err: err.message, failures: this.failures }, 'Heartbeat failed');
      this.schedule(Math.min(this.heartbeatIntervalMs, backoffDelay(this.failures - 1, this.backoff)));
    }
  }

  private async reconcile(assignment: readonly TopicPartitions[]): Promise<void> {
    const target = flatten(assignment);
    const targetKeys = new Set(target.map(keyOf));
    const owned = this.hooks.owned();
    const ownedKeys = new Set(owned.map(keyOf));
    const removed = owned.filter((tp) => !targetKeys.has(keyOf(tp)));
    const added = target.filter((tp) => !ownedKeys.has(keyOf(tp)));
    if (removed.length > 0) {
      this.log.info({ group: this.options.groupId, partitions: removed }, 'Partitions revoked');
      await this.hooks.revoked(removed);
    }
    if (added.length > 0) {
      this.log.info({ group: this.options.groupId, partitions: added }, 'Partitions assigned');
      await this.hooks.assigned(added);
    }
  }
}
