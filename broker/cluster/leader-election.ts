import type { ClusterTopic, PartitionState } from './cluster-metadata.js';

/**
 * The controller's decision for one partition, given which brokers are live.
 * Pure; returns `state` itself when nothing is to change.
 *
 * - The leader is live: dead members leave `isr` (leader and epoch stay). The
 *   leader is always in `isr`, so it never becomes empty.
 * - The leader is dead (or there is none): the new leader is the first broker of
 *   `replicas` that is in `isr` and live; dead members leave `isr`; the epoch
 *   grows. With no live member of `isr` the partition has no leader (`-1`, the
 *   epoch grows once) and `isr` keeps its members, so that one of them leads
 *   when it returns. A leader is never chosen outside `isr` (no unclean election).
 */
export function electPartition(state: PartitionState, live: ReadonlySet<number>): PartitionState {
  const liveIsr = state.isr.filter((b) => live.has(b));
  if (state.leader !== -1 && live.has(state.leader)) {
    if (liveIsr.length === state.isr.length || !liveIsr.includes(state.leader)) return state;
    return { ...state, isr: liveIsr };
  }
  const leader = state.replicas.find((b) => liveIsr.includes(b));
  if (leader === undefined) {
    return state.leader === -1 ? state : { ...state, leader: -1, leaderEpoch: state.leaderEpoch + 1 };
  }
  return { ...state, leader, leaderEpoch: state.leaderEpoch + 1, isr: liveIsr };
}

/** electPartition over every partition of a topic: the topic to write, or undefined when nothing changes. */
export function electTopic(topic: ClusterTopic, live: ReadonlySet<number>): ClusterTopic | undefined {
  let changed = false;
  const partitions = topic.partitions.map((p) => {
    const next = electPartition(p, live);
    if (next !== p) changed = true;
    return next;
  });
  return changed ? { ...topic, partitions } : undefined;
}
