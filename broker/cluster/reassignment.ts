import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { ClusterTopic, PartitionState } from './cluster-metadata.js';
import { electPartition } from './leader-election.js';
import { QUEUE_ANCHOR_TOPIC, alignWithAnchor, followsAnchor, isQueueTopic } from './queue-alignment.js';

/**
 * Partition reassignment (scale out and in), as pure decisions.
 *
 * A reassignment is a partition's `targetReplicas`. The controller carries it
 * out in two steps, each one compare-and-swap of the topic:
 * 1. start: `replicas` becomes `replicas ∪ target`. The new brokers follow the
 *    leader outside `isr`; the leader adds each to `isr` once it has caught up.
 * 2. complete, once every target broker is live and in `isr` and the leader is
 *    live: `replicas` becomes the target, `isr` keeps only target brokers, the
 *    target's first broker (in `isr`) leads — the epoch grows if that is a new
 *    leader — and `targetReplicas` goes.
 * A leader is never chosen outside `isr`, and `isr` never loses its leader.
 * The throttle limits how many partitions are between the two steps at once
 * (copying data); a target that only removes brokers (all inside `replicas`)
 * copies nothing and counts as started from the outset.
 *
 * planAssignment computes balanced targets: each topic's replicas spread evenly
 * over the brokers given (per-broker counts differ by at most one), leadership
 * spread the same way as far as the replica sets allow, with the fewest moves
 * from where the partitions are (or are already going). Queue topics follow
 * the queue anchor (queue-alignment.ts) and are not planned while it exists.
 */

/** A reassignment that started: every target broker is a replica already. */
export function isReassigning(state: PartitionState): boolean {
  const target = state.targetReplicas;
  return target !== undefined && target.every((b) => state.replicas.includes(b));
}

/** A reassignment waiting for its turn (the throttle). */
export function isReassignmentPending(state: PartitionState): boolean {
  return state.targetReplicas !== undefined && !isReassigning(state);
}

/**
 * The controller's reassignment step for one partition (after electPartition):
 * starts the reassignment when `mayStart`, completes it when every target
 * broker is in sync. Returns `state` itself when nothing is to change.
 */
export function reassignPartition(state: PartitionState, live: ReadonlySet<number>, mayStart: boolean): PartitionState {
  const target = state.targetReplicas;
  if (target === undefined) return state;
  if (!isReassigning(state)) {
    if (!mayStart) return state;
    return { ...state, replicas: [...state.replicas, ...target.filter((b) => !state.replicas.includes(b))] };
  }
  if (state.leader < 0 || !live.has(state.leader)) return state;
  if (!target.every((b) => state.isr.includes(b) && live.has(b))) return state;
  const leader = target[0]!;
  return {
    replicas: [...target],
    leader,
    leaderEpoch: leader === state.leader ? state.leaderEpoch : state.leaderEpoch + 1,
    isr: state.isr.filter((b) => target.includes(b)),
  };
}

/** What decideTopic did to a topic. */
export interface TopicDecision {
  /** The topic to write; undefined when nothing changes. */
  next: ClusterTopic | undefined;
  /** Partitions of the topic reassigning after the decision (the throttle's count). */
  reassigning: number;
}

/**
 * The controller's whole decision for a topic: leaders (electPartition), for a
 * queue topic given the queue `anchor` its alignment (alignWithAnchor), then
 * reassignment steps, starting pending reassignments (in partition order) only
 * while fewer than `maxReassigning` of the topic's partitions are reassigning.
 */
export function decideTopic(topic: ClusterTopic, live: ReadonlySet<number>, maxReassigning: number, anchor?: PartitionState): TopicDecision {
  let changed = false;
  let reassigning = topic.partitions.filter(isReassigning).length;
  const queue = anchor !== undefined && isQueueTopic(topic);
  const partitions = topic.partitions.map((p) => {
    const elected = electPartition(p, live);
    const wasRunning = isReassigning(elected);
    // Aligned before the reassignment step, so that a target it sets may start (or, removing brokers only, complete) in this decision.
    const aligned = queue ? alignWithAnchor(elected, anchor, live) : elected;
    const next = reassignPartition(aligned, live, reassigning < maxReassigning);
    if (!wasRunning && isReassigning(next)) reassigning++;
    if (wasRunning && !isReassigning(next)) reassigning--;
    if (next !== p) changed = true;
    return next;
  });
  return { next: changed ? { ...topic, partitions } : undefined, reassigning };
}

/** New targets per partition of a topic; undefined: that partition keeps what it has. */
export type TopicTargets = Array<number[] | undefined>;

/**
 * Balanced targets for every topic over `brokers` (the brokers that may hold
 * replicas), but for queue topics following the anchor `anchorTopic`
 * (followsAnchor): those get no target and their replicas count for no load. A partition's starting point is its target when it has one, else
 * its replicas with its current leader first. Replicas on brokers outside
 * `brokers` move; then, per topic, a replica moves from the most to the least
 * loaded broker until their counts differ by at most one (ties go by the load
 * over all topics, then broker id), and leadership (the target's first broker)
 * moves the same way between brokers sharing a partition. Topics whose
 * replication factor exceeds the brokers given fail (InvalidConfig).
 * Deterministic; planning the result again changes nothing.
 */
export function planAssignment(topics: ReadonlyMap<string, ClusterTopic>, brokers: readonly number[], anchorTopic: string = QUEUE_ANCHOR_TOPIC): Map<string, TopicTargets> {
  const eligible = [...new Set(brokers)].sort((a, b) => a - b);
  const all = [...topics.keys()].sort();
  const names = all.filter((name) => !followsAnchor(name, topics.get(name)!, topics, anchorTopic));
  for (const name of names) {
    const rf = replicationFactorOf(topics.get(name)!);
    if (rf > eligible.length) {
      throw new KmqError(
        ErrorCode.InvalidConfig,
        `Topic "${name}" has replication factor ${rf}, but only ${eligible.length} broker(s) may hold replicas (${eligible.join(', ') || 'none'})`,
        { topic: name, replicationFactor: rf, brokers: eligible.length },
      );
    }
  }
  const eligibleSet = new Set(eligible);
  const starts = new Map<string, number[][]>();
  const globalLoad = new Map<number, number>(eligible.map((b) => [b, 0]));
  const globalLeads = new Map<number, number>(eligible.map((b) => [b, 0]));
  for (const name of names) {
    const start = topics.get(name)!.partitions.map((p) => startingPoint(p).filter((b, i, all) => eligibleSet.has(b) && all.indexOf(b) === i));
    starts.set(name, start);
    for (const replicas of start) {
      replicas.forEach((b) => globalLoad.set(b, globalLoad.get(b)! + 1));
      if (replicas[0] !== undefined) globalLeads.set(replicas[0], globalLeads.get(replicas[0])! + 1);
    }
  }
  const out = new Map<string, TopicTargets>();
  for (const name of all) if (!names.includes(name)) out.set(name, topics.get(name)!.partitions.map(() => undefined));
  for (const name of names) {
    const topic = topics.get(name)!;
    const start = starts.get(name)!;
    for (const r of start) if (r[0] !== undefined) globalLeads.set(r[0], globalLeads.get(r[0])! - 1);
    const planned = planTopic(start, replicationFactorOf(topic), eligible, globalLoad, globalLeads);
    for (const r of planned) globalLeads.set(r[0]!, globalLeads.get(r[0]!)! + 1);
    out.set(
      name,
      topic.partitions.map((p, i) => {
        const plan = planned[i]!;
        if (p.targetReplicas !== undefined) return sameList(plan, p.targetReplicas) ? undefined : plan;
        return sameList(plan, startingPoint(p)) ? undefined : plan;
      }),
    );
  }
  return out;
}

/** The topic with `targets` written as its partitions' targetReplicas; undefined when no target is given. */
export function withTargets(topic: ClusterTopic, targets: TopicTargets): ClusterTopic | undefined {
  if (targets.every((t) => t === undefined)) return undefined;
  return { ...topic, partitions: topic.partitions.map((p, i) => (targets[i] === undefined ? p : { ...p, targetReplicas: [...targets[i]!] })) };
}

function replicationFactorOf(topic: ClusterTopic): number {
  const rf = topic.topic.replicationFactor;
  return Number.isSafeInteger(rf) && rf > 0 ? rf : Math.max(1, ...topic.partitions.map((p) => (p.targetReplicas ?? p.replicas).length));
}

/** Where a partition is going: its target, or its replicas led by its current leader. */
function startingPoint(p: PartitionState): number[] {
  if (p.targetReplicas !== undefined) return [...p.targetReplicas];
  if (p.leader >= 0 && p.replicas.includes(p.leader)) return [p.leader, ...p.replicas.filter((b) => b !== p.leader)];
  return [...p.replicas];
}

/** One topic's plan; keeps `globalLoad` current, reads `globalLeads` (the other topics') for ties. */
function planTopic(start: number[][], rf: number, brokers: readonly number[], globalLoad: Map<number, number>, globalLeads: ReadonlyMap<number, number>): number[][] {
  const parts = start.map((r) => [...r]);
  const load = new Map<number, number>(brokers.map((b) => [b, 0]));
  for (const r of parts) for (const b of r) load.set(b, load.get(b)! + 1);
  const bump = (m: Map<number, number>, b: number, d: number): void => void m.set(b, m.get(b)! + d);
  // Least loaded first: this topic's count, then all topics', then id.
  const byLoad = (a: number, b: number): number => load.get(a)! - load.get(b)! || globalLoad.get(a)! - globalLoad.get(b)! || a - b;

  for (const r of parts) {
    while (r.length > rf) {
      const b = r.pop()!;
      bump(load, b, -1);
      bump(globalLoad, b, -1);
    }
    while (r.length < rf) {
      const b = brokers.filter((x) => !r.includes(x)).sort(byLoad)[0]!;
      r.push(b);
      bump(load, b, 1);
      bump(globalLoad, b, 1);
    }
  }

  for (;;) {
    const sorted = [...brokers].sort(byLoad);
    const low = sorted[0]!;
    const high = sorted[sorted.length - 1]!;
    if (load.get(high)! - load.get(low)! <= 1) break;
    // A partition on the busiest broker but not on the idlest; a follower's place first, so leadership stays.
    const candidates = parts.filter((r) => r.includes(high) && !r.includes(low));
    const r = candidates.find((c) => c[0] !== high) ?? candidates[0]!;
    r[r.indexOf(high)] = low;
    bump(load, high, -1);
    bump(globalLoad, high, -1);
    bump(load, low, 1);
    bump(globalLoad, low, 1);
  }

  const leads = new Map<number, number>(brokers.map((b) => [b, 0]));
  for (const r of parts) bump(leads, r[0]!, 1);
  const byLeads = (a: number, b: number): number => leads.get(a)! - leads.get(b)! || globalLeads.get(a)! - globalLeads.get(b)! || a - b;
  for (let moved = true; moved; ) {
    moved = false;
    const sorted = [...brokers].sort(byLeads);
    search: for (const low of sorted) {
      for (const high of [...sorted].reverse()) {
        if (leads.get(high)! - leads.get(low)! <= 1) break;
        const r = parts.find((c) => c[0] === high && c.includes(low));
        if (r === undefined) continue;
        r.splice(r.indexOf(low), 1);
        r.unshift(low);
        bump(leads, high, -1);
        bump(leads, low, 1);
        moved = true;
        break search;
      }
    }
  }
  return parts;
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
