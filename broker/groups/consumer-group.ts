/**
 * Membership and cooperative reconciliation of one ordered consumer group.
 *
 * Per member the group keeps four partition sets:
 * - target     where the assignor wants the member to end up;
 * - assignment what the last response told the member it may consume;
 * - owned      what the member's last heartbeat reported consuming;
 * - held       partitions handed to the member and not yet released: a partition
 *              enters with the response that assigns it and leaves with the first
 *              heartbeat that no longer reports it while it is not assigned.
 *
 * Invariant: a partition is in at most one member's `held ∪ owned`. A target
 * partition is handed over (added to `assignment` and `held`) only when no other
 * member holds or reports it, so a partition never has two consumers, provided a
 * member reports what it consumes and only starts partitions its latest response
 * assigned.
 *
 * Not thread-safe by design: the coordinator calls it from the event loop only.
 */
import type { TopicPartitions } from '../../protocol/gen/kmq/broker/v1/broker.js';
import { assignPartitions } from './sticky-assignor.js';
import type { TopicView } from './topic-view.js';

/** topic → partitions */
export type PartitionSets = Map<string, Set<number>>;

/** One member of an ordered group. */
export interface GroupMemberState {
  readonly id: string;
  clientId: string;
  host: string;
  /** Subscribed topics, sorted, without duplicates. */
  topics: string[];
  sessionTimeoutMs: number;
  /** The member is expired at or after this time (ms). */
  deadline: number;
  target: Map<string, number[]>;
  assignment: Map<string, number[]>;
  owned: PartitionSets;
  held: PartitionSets;
}

export type GroupState = 'Empty' | 'Stable' | 'Reconciling';

export interface JoinInput {
  memberId: string;
  clientId: string;
  host: string;
  topics: string[];
  sessionTimeoutMs: number;
}

export class ConsumerGroup {
  /** Bumped on every membership or partition-count change. */
  generation = 0;
  readonly members = new Map<string, GroupMemberState>();
  /** Partition counts the current target was computed with. */
  private partitionCounts = new Map<string, number>();
  /** topic → partition → the member holding it (exclusive by the invariant). */
  private readonly holders = new Map<string, Map<number, string>>();
  /** topic → partition → how many members report consuming it. */
  private readonly reports = new Map<string, Map<number, number>>();

  constructor(
    readonly name: string,
    private readonly topicView: TopicView,
  ) {}

  /** Adds a new member or updates a known one; the caller checks that a non-new id is known. */
  join(input: JoinInput, now: number): GroupMemberState {
    let m = this.members.get(input.memberId);
    if (m === undefined) {
      m = {
        id: input.memberId,
        clientId: input.clientId,
        host: input.host,
        topics: input.topics,
        sessionTimeoutMs: input.sessionTimeoutMs,
        deadline: now + input.sessionTimeoutMs,
        target: new Map(),
        assignment: new Map(),
        owned: new Map(),
        held: new Map(),
      };
      this.members.set(m.id, m);
    } else {
      m.clientId = input.clientId;
      m.host = input.host;
      m.topics = input.topics;
      m.sessionTimeoutMs = input.sessionTimeoutMs;
      m.deadline = now + input.sessionTimeoutMs;
    }
    this.rebalance();
    // A join carries no report of what the member consumes, so nothing is released.
    this.handOver(m);
    return m;
  }

  /** Renews the session, records what the member consumes and hands over what has become free. */
  heartbeat(m: GroupMemberState, owned: readonly TopicPartitions[], now: number): void {
    m.deadline = now + m.sessionTimeoutMs;
    if (this.partitionCountsChanged()) this.rebalance();
    const reported: PartitionSets = new Map();
    for (const tp of owned) {
      let set = reported.get(tp.topic);
      if (set === undefined) reported.set(tp.topic, (set = new Set()));
      for (const p of tp.partitions) set.add(p);
    }
    this.countReports(m.owned, -1);
    this.countReports(reported, 1);
    m.owned = reported;
    for (const [topic, set] of m.held) {
      const still = reported.get(topic);
      for (const p of set) if (still === undefined || !still.has(p)) this.release(m, topic, p);
    }
    this.handOver(m);
  }

  /** Removes a member (leave or expiry); its partitions are free at once. */
  remove(memberId: string): boolean {
    const m = this.members.get(memberId);
    if (m === undefined) return false;
    this.forget(m);
    this.rebalance();
    return true;
  }

  /** Removes every member whose session has run out; returns their ids. */
  expire(now: number): string[] {
    const expired: string[] = [];
    for (const m of this.members.values()) if (now >= m.deadline) expired.push(m.id);
    if (expired.length === 0) return expired;
    for (const id of expired) {
      const m = this.members.get(id);
      if (m !== undefined) this.forget(m);
    }
    this.rebalance();
    return expired;
  }

  nextDeadline(): number {
    let min = Infinity;
    for (const m of this.members.values()) if (m.deadline < min) min = m.deadline;
    return min;
  }

  /** True when the member may commit offsets for the partition (it holds it). */
  holds(memberId: string, topic: string, partition: number): boolean {
    return this.holders.get(topic)?.get(partition) === memberId;
  }

  /** Union of the members' subscriptions, sorted. */
  subscribedTopics(): string[] {
    const topics = new Set<string>();
    for (const m of this.members.values()) for (const t of m.topics) topics.add(t);
    return [...topics].sort();
  }

  /** Stable when every member holds exactly its target; Reconciling while partitions are moving. */
  state(): GroupState {
    if (this.members.size === 0) return 'Empty';
    for (const m of this.members.values()) {
      let targetSize = 0;
      for (const [topic, parts] of m.target) {
        targetSize += parts.length;
        const held = m.held.get(topic);
        for (const p of parts) if (held === undefined || !held.has(p)) return 'Reconciling';
      }
      let heldSize = 0;
      for (const set of m.held.values()) heldSize += set.size;
      if (heldSize !== targetSize) return 'Reconciling';
    }
    return 'Stable';
  }

  /** Recomputes every member's target and bumps the generation. */
  private rebalance(): void {
    this.generation = (this.generation + 1) >>> 0;
    const counts = new Map<string, number>();
    for (const t of this.subscribedTopics()) counts.set(t, this.topicView.partitionCount(t) ?? 0);
    this.partitionCounts = counts;

    // Current owner: the previous target, else whoever holds the partition now.
    const owners = new Map<string, Array<string | undefined>>();
    for (const [topic, count] of counts) owners.set(topic, new Array<string | undefined>(count).fill(undefined));
    for (const m of this.members.values()) {
      for (const [topic, parts] of m.target) {
        const arr = owners.get(topic);
        if (arr !== undefined) for (const p of parts) if (p < arr.length) arr[p] = m.id;
      }
    }
    for (const m of this.members.values()) {
      for (const [topic, set] of m.held) {
        const arr = owners.get(topic);
        if (arr !== undefined) for (const p of set) if (p < arr.length && arr[p] === undefined) arr[p] = m.id;
      }
    }

    const target = assignPartitions({ members: [...this.members.values()], partitionCounts: counts, currentOwners: owners });
    for (const m of this.members.values()) m.target = target.get(m.id) ?? new Map();
  }

  private partitionCountsChanged(): boolean {
    for (const [topic, count] of this.partitionCounts) {
      if ((this.topicView.partitionCount(topic) ?? 0) !== count) return true;
    }
    return false;
  }

  /** Sets the member's assignment to the part of its target nobody else holds or reports. */
  private handOver(m: GroupMemberState): void {
    const assignment = new Map<string, number[]>();
    for (const [topic, parts] of m.target) {
      const free = parts.filter((p) => !this.claimedByOther(m, topic, p));
      if (free.length === 0) continue;
      assignment.set(topic, free);
      let holders = this.holders.get(topic);
      if (holders === undefined) this.holders.set(topic, (holders = new Map()));
      for (const p of free) {
        addTo(m.held, topic, p);
        holders.set(p, m.id);
      }
    }
    m.assignment = assignment;
  }

  private claimedByOther(m: GroupMemberState, topic: string, partition: number): boolean {
    const holder = this.holders.get(topic)?.get(partition);
    if (holder !== undefined && holder !== m.id) return true;
    const reporters = this.reports.get(topic)?.get(partition) ?? 0;
    return reporters > (m.owned.get(topic)?.has(partition) === true ? 1 : 0);
  }

  private release(m: GroupMemberState, topic: string, partition: number): void {
    m.held.get(topic)?.delete(partition);
    const holders = this.holders.get(topic);
    if (holders?.get(partition) === m.id) holders.delete(partition);
  }

  /** Drops a member and everything it held or reported. */
  private forget(m: GroupMemberState): void {
    for (const [topic, set] of m.held) for (const p of set) this.release(m, topic, p);
    this.countReports(m.owned, -1);
    this.members.delete(m.id);
  }

  private countReports(owned: PartitionSets, delta: 1 | -1): void {
    for (const [topic, set] of owned) {
      let counts = this.reports.get(topic);
      if (counts === undefined) this.reports.set(topic, (counts = new Map()));
      for (const p of set) {
        const n = (counts.get(p) ?? 0) + delta;
        if (n <= 0) counts.delete(p);
        else counts.set(p, n);
      }
      if (counts.size === 0) this.reports.delete(topic);
    }
  }
}

function addTo(sets: PartitionSets, topic: string, partition: number): void {
  let set = sets.get(topic);
  if (set === undefined) sets.set(topic, (set = new Set()));
  set.add(partition);
}

/** Sorted wire form of a topic → partitions map. */
export function toTopicPartitions(map: ReadonlyMap<string, Iterable<number>>): TopicPartitions[] {
  const out: TopicPartitions[] = [];
  for (const topic of [...map.keys()].sort()) {
    const partitions = [...(map.get(topic) ?? [])].sort((a, b) => a - b);
    if (partitions.length > 0) out.push({ topic, partitions });
  }
  return out;
}
