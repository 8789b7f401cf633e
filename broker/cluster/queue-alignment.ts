import { SHARE_STATE_TOPIC } from '../topics/internal-topics.js';
import type { ClusterTopic, PartitionState } from './cluster-metadata.js';

/**
 * Queue placement in a cluster, as pure decisions. Every queue service runs on
 * one broker, the queue host: the leader of the anchor, partition 0 of the
 * share-state topic. The host reads and appends queue partitions locally, so
 * every partition of every queue topic follows the anchor: the same replica
 * set, led by the anchor's leader whenever that leader is in the partition's
 * `isr`.
 *
 * Queue topics follow the anchor only while the anchor topic exists; rebalance
 * and decommission plan the anchor (queue topics move with it), never the
 * queue topics themselves. Without an anchor topic they are planned like any
 * other topic, so that nothing waits for an anchor that is not there.
 */

/** The topic whose partition 0 anchors every queue topic. */
export const QUEUE_ANCHOR_TOPIC = SHARE_STATE_TOPIC;

/** A queue topic: its record carries queue settings. */
export function isQueueTopic(topic: ClusterTopic): boolean {
  return topic.topic.queue !== undefined;
}

/** The anchor partition's state among `topics`; undefined when the anchor topic is not there. */
export function queueAnchor(topics: ReadonlyMap<string, ClusterTopic>, anchorTopic: string = QUEUE_ANCHOR_TOPIC): PartitionState | undefined {
  return topics.get(anchorTopic)?.partitions[0];
}

/** True when the topic named `name` follows the anchor instead of being planned: a queue topic while the anchor topic exists. */
export function followsAnchor(name: string, topic: ClusterTopic, topics: ReadonlyMap<string, unknown>, anchorTopic: string = QUEUE_ANCHOR_TOPIC): boolean {
  return name !== anchorTopic && isQueueTopic(topic) && topics.has(anchorTopic);
}

/**
 * The anchor's replicas with its leader first (when it has one among them):
 * the replica list a queue partition should have.
 */
export function anchorReplicas(anchor: PartitionState): number[] {
  if (anchor.leader >= 0 && anchor.replicas.includes(anchor.leader)) return [anchor.leader, ...anchor.replicas.filter((b) => b !== anchor.leader)];
  return [...anchor.replicas];
}

/**
 * The controller's alignment step for one partition of a queue topic (after
 * electPartition). Acts only while the anchor has a live leader, the anchor is
 * not reassigning and the partition has no target:
 * - a replica set other than the anchor's becomes a reassignment to the
 *   anchor's replicas, the anchor's leader first (which leads once it
 *   completes), once every anchor replica is live: a reassignment waiting for a
 *   dead broker would hold a place of the throttle for nothing;
 * - otherwise the anchor's leader leads, at the next epoch, once it is in the
 *   partition's `isr` (never a leader outside `isr`; until then nothing changes).
 * Returns `state` itself when nothing is to change.
 */
export function alignWithAnchor(state: PartitionState, anchor: PartitionState | undefined, live: ReadonlySet<number>): PartitionState {
  if (anchor === undefined || anchor.targetReplicas !== undefined || state.targetReplicas !== undefined) return state;
  if (anchor.leader < 0 || !live.has(anchor.leader) || !anchor.replicas.includes(anchor.leader)) return state;
  if (!sameSet(state.replicas, anchor.replicas)) return anchor.replicas.every((b) => live.has(b)) ? { ...state, targetReplicas: anchorReplicas(anchor) } : state;
  if (state.leader === anchor.leader || !state.isr.includes(anchor.leader)) return state;
  return { ...state, leader: anchor.leader, leaderEpoch: state.leaderEpoch + 1 };
}

function sameSet(a: readonly number[], b: readonly number[]): boolean {
  const s = new Set(a);
  return s.size === new Set(b).size && b.every((x) => s.has(x));
}
