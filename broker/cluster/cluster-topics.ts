import { ErrorCode, KmqError } from '../../lib/errors.js';
import { encodeJson, topicKey } from './cluster-metadata.js';
import type { ClusterTopic, PartitionState } from './cluster-metadata.js';
import type { CoordinationStore } from './coordination-store.js';
import type { TopicRecord } from './metadata-store.js';
import type { VersionedTopic } from './cluster-view.js';
import { anchorReplicas } from './queue-alignment.js';

/**
 * Spreads `partitions` partitions of `replicationFactor` replicas over
 * `brokerIds`, as Kafka does without racks: partition p's first replica (its
 * preferred leader) is broker (start + p) mod n, so leadership goes round the
 * brokers; the followers come after it at a shift that grows by one every n
 * partitions, so the pairs of brokers sharing partitions vary too. `start` and
 * the initial shift are random, so that many small topics do not all lead on the
 * same broker. No broker appears twice in one partition.
 */
export function assignReplicas(
  partitions: number,
  replicationFactor: number,
  brokerIds: readonly number[],
  random: () => number = Math.random,
): number[][] {
  const brokers = [...new Set(brokerIds)].sort((a, b) => a - b);
  const n = brokers.length;
  if (!(Number.isSafeInteger(partitions) && partitions > 0)) throw new KmqError(ErrorCode.InvalidPartitions, `A topic needs a positive whole number of partitions, got ${partitions}`);
  if (!(Number.isSafeInteger(replicationFactor) && replicationFactor > 0)) {
    throw new KmqError(ErrorCode.InvalidConfig, `The replication factor must be a positive whole number, got ${replicationFactor}`);
  }
  if (replicationFactor > n) throw new KmqError(ErrorCode.InvalidConfig, `replication factor ${replicationFactor} exceeds the ${n} live brokers`, { replicationFactor, liveBrokers: n });
  const start = Math.floor(random() * n);
  let shift = Math.floor(random() * n);
  const assignment: number[][] = [];
  for (let p = 0; p < partitions; p++) {
    if (p > 0 && p % n === 0) shift++;
    const first = (start + p) % n;
    const replicas = [brokers[first]!];
    for (let j = 0; j < replicationFactor - 1; j++) replicas.push(brokers[(first + 1 + ((shift + j) % (n - 1))) % n]!);
    assignment.push(replicas);
  }
  return assignment;
}

/** Options of createClusterTopic. */
export interface CreateClusterTopicOptions {
  /**
   * The queue anchor's state (queue-alignment.ts): a queue topic is placed as
   * the anchor is, every partition on the anchor's replicas led by the anchor's
   * leader. Ignored for other topics; a queue topic without it is placed like
   * any topic (the controller aligns it later).
   */
  anchor?: PartitionState;
  /** Where assignReplicas starts (default Math.random). */
  random?: () => number;
}

/**
 * Creates a topic in the cluster: replicas assigned over the live brokers
 * (assignReplicas), or for a queue topic given `anchor` the anchor's replicas
 * (its leader first, the record's replication factor their count); each
 * partition led by its first replica at leader epoch 0 with every replica in
 * sync (the topic is empty), written to `topics/<name>` only if absent
 * (TopicExists otherwise). Returns the state written and its version.
 */
export async function createClusterTopic(
  store: CoordinationStore,
  record: TopicRecord,
  liveBrokerIds: Iterable<number>,
  options: CreateClusterTopicOptions = {},
): Promise<VersionedTopic> {
  let topic = record;
  let assignment: number[][];
  if (record.queue !== undefined && options.anchor !== undefined) {
    const replicas = anchorReplicas(options.anchor);
    if (replicas.length === 0) throw new KmqError(ErrorCode.InvalidConfig, `The queue anchor has no replicas to place queue "${record.name}" on`, { topic: record.name });
    if (!(Number.isSafeInteger(record.partitions) && record.partitions > 0)) {
      throw new KmqError(ErrorCode.InvalidPartitions, `A topic needs a positive whole number of partitions, got ${record.partitions}`);
    }
    topic = { ...record, replicationFactor: replicas.length };
    assignment = Array.from({ length: record.partitions }, () => [...replicas]);
  } else {
    assignment = assignReplicas(record.partitions, record.replicationFactor, [...liveBrokerIds], options.random);
  }
  const partitions: PartitionState[] = assignment.map((replicas) => ({ replicas, leader: replicas[0]!, leaderEpoch: 0, isr: [...replicas] }));
  const value: ClusterTopic = { topic, partitions };
  const res = await store.put(topicKey(record.name), encodeJson(value), { ifVersion: 'absent' });
  if (!res.ok) throw new KmqError(ErrorCode.TopicExists, `Topic "${record.name}" already exists`, { topic: record.name });
  return { value, version: res.version };
}

/** Deletes a topic from the cluster; UnknownTopic if there is none by that name. */
export async function deleteClusterTopic(store: CoordinationStore, name: string): Promise<void> {
  const res = await store.delete(topicKey(name));
  if (res.version === 0) throw new KmqError(ErrorCode.UnknownTopic, `Unknown topic "${name}"`, { topic: name });
}
