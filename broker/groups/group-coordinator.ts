/**
 * The coordinator of ordered consumer groups: membership, broker-side sticky
 * assignment with cooperative handover, and committed offsets. Transport-free: the
 * server maps protocol messages to these methods one to one. Time comes from the
 * injected clock; sessions expire in `tick()`, which the broker calls on a timer
 * and every request calls first. See README.md for the protocol.
 *
 * Membership lives in memory only (members rejoin after a restart); committed
 * offsets are persisted through the GroupStateStore and reloaded by `start()`.
 * Event-loop only: synchronous methods run to completion; the async ones order
 * their writes as CommittedOffsets describes.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
import { errorCodeToWire } from '../../protocol/error-codes.js';
import { ResetStrategy } from '../../protocol/gen/kmq/broker/v1/broker.js';
import type {
  CommittedOffset,
  DeleteGroupRequest,
  DeleteGroupResponse,
  DescribeGroupRequest,
  DescribeGroupResponse,
  GroupMember,
  GroupSummary,
  HeartbeatRequest,
  HeartbeatResponse,
  JoinGroupRequest,
  JoinGroupResponse,
  LeaveGroupRequest,
  LeaveGroupResponse,
  ListGroupsResponse,
  OffsetCommitRequest,
  OffsetCommitResponse,
  OffsetCommitResult,
  OffsetFetchRequest,
  OffsetFetchResponse,
  ResetOffsetsRequest,
  ResetOffsetsResponse,
} from '../../protocol/gen/kmq/broker/v1/broker.js';
import { CommittedOffsets } from './committed-offsets.js';
import { ConsumerGroup, toTopicPartitions } from './consumer-group.js';
import type { GroupMemberState } from './consumer-group.js';
import { compileGroupCoordinatorOptions } from './coordinator-options.js';
import type { CompiledGroupCoordinatorOptions, GroupCoordinatorOptions } from './coordinator-options.js';
import type { GroupStateStore } from './group-state-store.js';
import { OFFSET_KEY_VERSION, decodeOffsetKey, decodeOffsetValue, offsetKeyVersion } from './offset-record.js';
import type { OffsetRecordValue } from './offset-record.js';
import type { TopicView } from './topic-view.js';

export interface GroupCoordinatorDeps {
  topics: TopicView;
  store: GroupStateStore;
  /** ms since the epoch; default Date.now. */
  clock?: () => number;
  logger?: Logger;
  /** New member ids; default crypto.randomUUID. */
  randomId?: () => string;
  options?: GroupCoordinatorOptions;
}

/** Lag of one partition of one group, for metrics. */
export interface PartitionLag {
  group: string;
  topic: string;
  partition: number;
  lag: number;
}

export class GroupCoordinator {
  private readonly topics: TopicView;
  private readonly store: GroupStateStore;
  private readonly clock: () => number;
  private readonly log: Logger;
  private readonly randomId: () => string;
  private readonly options: CompiledGroupCoordinatorOptions;
  private readonly groups = new Map<string, ConsumerGroup>();
  private readonly offsets = new CommittedOffsets();
  /** A lower bound of every member's deadline, so most ticks cost one comparison. */
  private nextExpiry = Infinity;
  private loaded = false;

  constructor(deps: GroupCoordinatorDeps) {
    this.topics = deps.topics;
    this.store = deps.store;
    this.clock = deps.clock ?? Date.now;
    this.log = (deps.logger ?? silentLogger()).child({ component: 'group-coordinator' });
    this.randomId = deps.randomId ?? randomUUID;
    this.options = compileGroupCoordinatorOptions(deps.options);
  }

  /** Loads committed offsets from the store; requests fail with BrokerNotAvailable until it resolves. */
  async start(): Promise<void> {
    let records = 0;
    let skipped = 0;
    for await (const { key, value } of this.store.load()) {
      records++;
      if (offsetKeyVersion(key) !== OFFSET_KEY_VERSION) {
        // Another record type or a newer broker's record: not ours to interpret.
        skipped++;
        continue;
      }
      this.offsets.applyLoaded(decodeOffsetKey(key), value === null ? null : decodeOffsetValue(value));
    }
    this.loaded = true;
    this.log.info({ records, skipped }, 'Loaded committed offsets');
  }

  /** Expires sessions that ran out by `now`. */
  tick(now: number = this.clock()): void {
    if (now < this.nextExpiry) return;
    let next = Infinity;
    for (const group of [...this.groups.values()]) {
      const expired = group.expire(now);
      for (const memberId of expired) this.log.info({ group: group.name, memberId, generation: group.generation }, 'Member session expired');
      this.dropIfGone(group);
      next = Math.min(next, group.nextDeadline());
    }
    this.nextExpiry = next;
  }

  join(req: JoinGroupRequest, host = ''): JoinGroupResponse {
    const now = this.begin();
    this.checkGroupId(req.group);
    const sessionTimeoutMs = this.sessionTimeout(req);
    const topics = [...new Set(req.topics)].sort();
    if (topics.length > this.options.maxTopicsPerMember) {
      throw new KmqError(ErrorCode.InvalidRequest, `A member may subscribe to at most ${this.options.maxTopicsPerMember} topics`, { group: req.group });
    }
    if (topics.includes('')) throw new KmqError(ErrorCode.InvalidRequest, 'Topic name must not be empty', { group: req.group });

    let group = this.groups.get(req.group);
    let memberId = req.memberId;
    if (memberId === '') {
      if (group !== undefined && group.members.size >= this.options.maxMembersPerGroup) {
        throw new KmqError(ErrorCode.InvalidRequest, `Group has reached its maximum of ${this.options.maxMembersPerGroup} members`, { group: req.group });
      }
      memberId = this.randomId();
      if (group?.members.has(memberId) === true) throw new KmqError(ErrorCode.Unknown, 'Generated member id collides', { group: req.group });
    } else if (group?.members.has(memberId) !== true) {
      throw this.unknownMember(req.group, memberId);
    }
    if (group === undefined) {
      group = new ConsumerGroup(req.group, this.topics);
      this.groups.set(req.group, group);
    }
    const member = group.join({ memberId, clientId: req.clientId, host, topics, sessionTimeoutMs }, now);
    this.nextExpiry = Math.min(this.nextExpiry, member.deadline);
    this.log.info({ group: group.name, memberId, clientId: req.clientId, generation: group.generation, rejoin: req.memberId !== '' }, 'Member joined');
    return {
      errorCode: 0,
      errorMessage: '',
      memberId,
      generation: group.generation,
      assignment: toTopicPartitions(member.assignment),
      heartbeatIntervalMs: this.heartbeatInterval(member),
    };
  }

  heartbeat(req: HeartbeatRequest): HeartbeatResponse {
    const now = this.begin();
    const { group, member } = this.member(req.group, req.memberId);
    group.heartbeat(member, req.owned, now);
    return {
      errorCode: 0,
      errorMessage: '',
      generation: group.generation,
      assignment: toTopicPartitions(member.assignment),
      heartbeatIntervalMs: this.heartbeatInterval(member),
    };
  }

  leave(req: LeaveGroupRequest): LeaveGroupResponse {
    this.begin();
    const { group } = this.member(req.group, req.memberId);
    group.remove(req.memberId);
    this.log.info({ group: group.name, memberId: req.memberId, generation: group.generation }, 'Member left');
    this.dropIfGone(group);
    return { errorCode: 0, errorMessage: '' };
  }

  async commitOffsets(req: OffsetCommitRequest): Promise<OffsetCommitResponse> {
    const now = this.begin();
    this.checkGroupId(req.group);
    const group = this.groups.get(req.group);
    if (req.memberId !== '') this.member(req.group, req.memberId);
    const results: OffsetCommitResult[] = [];
    const writes: Array<Promise<void>> = [];
    for (const o of req.offsets) {
      let code: ErrorCode | undefined = this.partitionError(o.topic, o.partition);
      if (code === undefined && (!Number.isSafeInteger(o.offset) || o.offset < 0)) code = ErrorCode.InvalidRequest;
      if (code === undefined && Buffer.byteLength(o.metadata, 'utf8') > this.options.maxMetadataBytes) code = ErrorCode.InvalidRequest;
      if (code === undefined) {
        const owner =
          req.memberId === ''
            ? group === undefined || group.members.size === 0
            : group?.holds(req.memberId, o.topic, o.partition) === true;
        if (!owner) code = ErrorCode.NotPartitionOwner;
      }
      results.push({ topic: o.topic, partition: o.partition, errorCode: code === undefined ? 0 : errorCodeToWire(code) });
      if (code === undefined) {
        const key = { group: req.group, topic: o.topic, partition: o.partition };
        writes.push(this.offsets.write(this.store, key, { offset: o.offset, metadata: o.metadata, commitTimestamp: now }));
      }
    }
    await Promise.all(writes);
    return { errorCode: 0, errorMessage: '', results };
  }

  fetchOffsets(req: OffsetFetchRequest): OffsetFetchResponse {
    this.begin();
    const offsets: CommittedOffset[] = [];
    if (req.partitions.length === 0) {
      for (const c of this.offsets.list(req.group)) offsets.push(this.committedOffset(c.topic, c.partition, c.value));
    } else {
      for (const tp of req.partitions) {
        const parts = tp.partitions.length > 0 ? tp.partitions : range(this.topics.partitionCount(tp.topic) ?? 0);
        for (const p of parts) offsets.push(this.committedOffset(tp.topic, p, this.offsets.get(req.group, tp.topic, p)));
      }
    }
    return { errorCode: 0, errorMessage: '', offsets };
  }

  listGroups(): ListGroupsResponse {
    this.begin();
    const groups: GroupSummary[] = this.groupNames().map((name) => {
      const g = this.groups.get(name);
      return { group: name, state: g?.state() ?? 'Empty', members: g?.members.size ?? 0 };
    });
    return { groups };
  }

  /** An unknown group is described as Dead with nothing in it. */
  describeGroup(req: DescribeGroupRequest): DescribeGroupResponse {
    this.begin();
    const g = this.groups.get(req.group);
    if (g === undefined && !this.offsets.has(req.group)) {
      return { errorCode: 0, errorMessage: '', group: req.group, state: 'Dead', generation: 0, topics: [], members: [], offsets: [] };
    }
    const members: GroupMember[] = [];
    if (g !== undefined) {
      for (const id of [...g.members.keys()].sort()) {
        const m = g.members.get(id) as GroupMemberState;
        members.push({ memberId: m.id, clientId: m.clientId, host: m.host, assignment: toTopicPartitions(m.assignment), owned: toTopicPartitions(m.owned) });
      }
    }
    return {
      errorCode: 0,
      errorMessage: '',
      group: req.group,
      state: g?.state() ?? 'Empty',
      generation: g?.generation ?? 0,
      topics: g?.subscribedTopics() ?? [],
      members,
      offsets: this.groupOffsets(req.group),
    };
  }

  /** Only while the group has no members; offsets are clamped into [logStart, logEnd]. */
  async resetOffsets(req: ResetOffsetsRequest): Promise<ResetOffsetsResponse> {
    const now = this.begin();
    this.checkGroupId(req.group);
    this.checkNoMembers(req.group);
    const count = this.topics.partitionCount(req.topic);
    if (count === undefined) throw new KmqError(ErrorCode.UnknownTopic, `Unknown topic ${req.topic}`, { group: req.group, topic: req.topic });
    const partitions = req.partitions.length > 0 ? [...new Set(req.partitions)].sort((a, b) => a - b) : range(count);
    for (const p of partitions) {
      if (!Number.isInteger(p) || p < 0 || p >= count) {
        throw new KmqError(ErrorCode.UnknownPartition, `Topic ${req.topic} has no partition ${p}`, { group: req.group, topic: req.topic, partition: p });
      }
    }
    if (!Number.isSafeInteger(req.value)) throw new KmqError(ErrorCode.InvalidRequest, 'Reset value must be an integer', { group: req.group });

    const offsets: CommittedOffset[] = [];
    const writes: Array<Promise<void>> = [];
    for (const p of partitions) {
      const offset = this.resetTarget(req, p);
      const value: OffsetRecordValue = { offset, metadata: '', commitTimestamp: now };
      offsets.push(this.committedOffset(req.topic, p, value));
      if (!req.dryRun) writes.push(this.offsets.write(this.store, { group: req.group, topic: req.topic, partition: p }, value));
    }
    await Promise.all(writes);
    if (!req.dryRun) this.log.info({ group: req.group, topic: req.topic, strategy: ResetStrategy[req.strategy], partitions: partitions.length }, 'Offsets reset');
    return { errorCode: 0, errorMessage: '', offsets };
  }

  /** Only while the group has no members; writes a tombstone for every committed offset. */
  async deleteGroup(req: DeleteGroupRequest): Promise<DeleteGroupResponse> {
    this.begin();
    if (!this.groups.has(req.group) && !this.offsets.has(req.group)) {
      throw new KmqError(ErrorCode.UnknownGroup, `Unknown group ${req.group}`, { group: req.group });
    }
    this.checkNoMembers(req.group);
    const list = this.offsets.list(req.group);
    await Promise.all(list.map((c) => this.offsets.write(this.store, { group: req.group, topic: c.topic, partition: c.partition }, null)));
    const g = this.groups.get(req.group);
    if (g !== undefined) this.dropIfGone(g);
    this.log.info({ group: req.group, offsets: list.length }, 'Group deleted');
    return { errorCode: 0, errorMessage: '' };
  }

  /** Lag per (group, topic, partition) of every group, skipping partitions of unknown topics. */
  lagSnapshot(): PartitionLag[] {
    this.tick();
    const out: PartitionLag[] = [];
    for (const group of this.groupNames()) {
      for (const o of this.groupOffsets(group)) if (o.lag >= 0) out.push({ group, topic: o.topic, partition: o.partition, lag: o.lag });
    }
    return out;
  }

  private begin(): number {
    if (!this.loaded) throw new KmqError(ErrorCode.BrokerNotAvailable, 'Group coordinator is still loading committed offsets');
    const now = this.clock();
    this.tick(now);
    return now;
  }

  private member(groupId: string, memberId: string): { group: ConsumerGroup; member: GroupMemberState } {
    const group = this.groups.get(groupId);
    const member = group?.members.get(memberId);
    if (group === undefined || member === undefined) throw this.unknownMember(groupId, memberId);
    return { group, member };
  }

  private unknownMember(group: string, memberId: string): KmqError {
    return new KmqError(ErrorCode.UnknownMember, `Unknown member ${memberId} of group ${group}: rejoin with an empty member id`, { group, memberId });
  }

  private checkGroupId(group: string): void {
    if (group === '' || Buffer.byteLength(group, 'utf8') > this.options.maxGroupIdBytes) {
      throw new KmqError(ErrorCode.InvalidRequest, `Group id must be 1 to ${this.options.maxGroupIdBytes} bytes`, { group });
    }
  }

  private checkNoMembers(group: string): void {
    const members = this.groups.get(group)?.members.size ?? 0;
    if (members > 0) throw new KmqError(ErrorCode.GroupNotEmpty, `Group ${group} still has ${members} members`, { group });
  }

  private sessionTimeout(req: JoinGroupRequest): number {
    const t = req.sessionTimeoutMs === 0 ? this.options.defaultSessionTimeoutMs : req.sessionTimeoutMs;
    if (t < this.options.minSessionTimeoutMs || t > this.options.maxSessionTimeoutMs) {
      throw new KmqError(
        ErrorCode.InvalidRequest,
        `sessionTimeoutMs ${t} lies outside [${this.options.minSessionTimeoutMs}, ${this.options.maxSessionTimeoutMs}]`,
        { group: req.group },
      );
    }
    return t;
  }

  private heartbeatInterval(m: GroupMemberState): number {
    return Math.max(this.options.minHeartbeatIntervalMs, Math.floor(m.sessionTimeoutMs / 3));
  }

  private partitionError(topic: string, partition: number): ErrorCode | undefined {
    const count = this.topics.partitionCount(topic);
    if (count === undefined) return ErrorCode.UnknownTopic;
    if (!Number.isInteger(partition) || partition < 0 || partition >= count) return ErrorCode.UnknownPartition;
    return undefined;
  }

  private resetTarget(req: ResetOffsetsRequest, p: number): number {
    const start = this.topics.logStartOffset(req.topic, p);
    const end = this.topics.logEndOffset(req.topic, p);
    switch (req.strategy) {
      case ResetStrategy.RESET_EARLIEST:
        return start;
      case ResetStrategy.RESET_LATEST:
        return end;
      case ResetStrategy.RESET_OFFSET:
        return clamp(req.value, start, end);
      case ResetStrategy.RESET_TIMESTAMP:
        return clamp(this.topics.offsetForTimestamp(req.topic, p, req.value), start, end);
      default:
        throw new KmqError(ErrorCode.InvalidRequest, `Unknown reset strategy ${String(req.strategy)}`, { group: req.group, topic: req.topic });
    }
  }

  /**
   * A committed offset with its log end and lag. Lag counts the records still to
   * consume: logEnd - committed, or logEnd - logStart when nothing is committed,
   * kept within [0, logEnd - logStart] (records below logStart no longer exist).
   * logEndOffset and lag are -1 for a partition that does not exist.
   */
  private committedOffset(topic: string, partition: number, value: OffsetRecordValue | undefined): CommittedOffset {
    const offset = value?.offset ?? -1;
    const metadata = value?.metadata ?? '';
    if (this.partitionError(topic, partition) !== undefined) return { topic, partition, offset, metadata, logEndOffset: -1, lag: -1 };
    const start = this.topics.logStartOffset(topic, partition);
    const end = this.topics.logEndOffset(topic, partition);
    const lag = offset < 0 ? end - start : clamp(end - offset, 0, end - start);
    return { topic, partition, offset, metadata, logEndOffset: end, lag: Math.max(0, lag) };
  }

  /** Committed partitions plus every partition of a subscribed topic, sorted. */
  private groupOffsets(group: string): CommittedOffset[] {
    const seen = new Map<string, Set<number>>();
    const out: CommittedOffset[] = [];
    for (const c of this.offsets.list(group)) {
      let set = seen.get(c.topic);
      if (set === undefined) seen.set(c.topic, (set = new Set()));
      set.add(c.partition);
      out.push(this.committedOffset(c.topic, c.partition, c.value));
    }
    for (const topic of this.groups.get(group)?.subscribedTopics() ?? []) {
      const count = this.topics.partitionCount(topic) ?? 0;
      const set = seen.get(topic);
      for (let p = 0; p < count; p++) if (set?.has(p) !== true) out.push(this.committedOffset(topic, p, undefined));
    }
    return out.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
  }

  private groupNames(): string[] {
    const names = new Set<string>(this.groups.keys());
    for (const g of this.offsets.groups()) names.add(g);
    return [...names].sort();
  }

  /** Forgets a group's membership state once it has no members. */
  private dropIfGone(group: ConsumerGroup): void {
    if (group.members.size === 0 && this.groups.get(group.name) === group) this.groups.delete(group.name);
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
