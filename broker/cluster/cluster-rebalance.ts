import { ErrorCode, KmqError } from '../../lib/errors.js';
import { BROKERS_PREFIX, DECOMMISSIONED_PREFIX, TOPICS_PREFIX, decommissionedKey, encodeJson, topicKey } from './cluster-metadata.js';
import type { BrokerRegistration, ClusterTopic, DecommissionRecord } from './cluster-metadata.js';
import type { CoordinationStore } from './coordination-store.js';
import { decodeBrokerRegistration, decodeClusterTopic, decodeDecommissionRecord } from './metadata-codec.js';
import { QUEUE_ANCHOR_TOPIC, followsAnchor } from './queue-alignment.js';
import { planAssignment, withTargets } from './reassignment.js';

/** A partition whose target a rebalance or decommission set (or would set, on a dry run). */
export interface PartitionMove {
  topic: string;
  partition: number;
  replicas: number[];
  targetReplicas: number[];
}

/** The cluster as the store holds it now, for planning. */
export interface ClusterSnapshot {
  live: Map<number, BrokerRegistration>;
  decommissioned: Map<number, DecommissionRecord>;
  topics: Map<string, { value: ClusterTopic; version: number }>;
}

export interface ProposeOptions {
  /** Report the moves without writing them. */
  dryRun?: boolean;
  /** Checked before every write; false stops writing (a controller that lost its term). */
  mayWrite?: () => boolean;
  /** Queue topics follow partition 0 of this topic and get no target of their own (default `__share_state`). */
  queueAnchorTopic?: string;
}

const MAX_ROUNDS = 16;

/** Reads brokers, decommission records and topics; a value that does not decode is skipped (a topic: refused). */
export async function readSnapshot(store: CoordinationStore): Promise<ClusterSnapshot> {
  const [brokers, records, topics] = await Promise.all([store.list(BROKERS_PREFIX), store.list(DECOMMISSIONED_PREFIX), store.list(TOPICS_PREFIX)]);
  const live = new Map<number, BrokerRegistration>();
  for (const b of brokers) {
    const r = tryDecode(() => decodeBrokerRegistration(b.key, b.value));
    if (r !== undefined) live.set(r.id, r);
  }
  const decommissioned = new Map<number, DecommissionRecord>();
  for (const d of records) {
    const r = tryDecode(() => decodeDecommissionRecord(d.key, d.value));
    if (r !== undefined) decommissioned.set(r.brokerId, r);
  }
  const byName = new Map<string, { value: ClusterTopic; version: number }>();
  for (const t of topics) byName.set(t.key.slice(TOPICS_PREFIX.length), { value: decodeClusterTopic(t.key, t.value), version: t.version });
  return { live, decommissioned, topics: byName };
}

/** Live brokers that may hold replicas: not decommissioned in the incarnation they run. */
export function eligibleBrokers(s: Pick<ClusterSnapshot, 'live' | 'decommissioned'>): number[] {
  return [...s.live.values()].filter((b) => s.decommissioned.get(b.id)?.incarnation !== b.incarnation).map((b) => b.id).sort((a, b) => a - b);
}

/**
 * Plans balanced targets over the eligible live brokers (minus `exclude`) and
 * writes them, one compare-and-swap per topic; a conflict re-reads the cluster
 * and plans again (a topic already written plans to no change). Returns every
 * target set. InvalidConfig when a topic's replication factor exceeds the brokers.
 * Queue topics get no target while the queue anchor exists: the controller
 * moves them after the anchor (queue-alignment.ts).
 */
export async function proposeRebalance(store: CoordinationStore, options: ProposeOptions & { exclude?: number } = {}): Promise<PartitionMove[]> {
  const written = new Map<string, PartitionMove>();
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const snap = await readSnapshot(store);
    const brokers = eligibleBrokers(snap).filter((b) => b !== options.exclude);
    const plan = planAssignment(new Map([...snap.topics].map(([n, t]) => [n, t.value])), brokers, options.queueAnchorTopic ?? QUEUE_ANCHOR_TOPIC);
    let conflict = false;
    for (const [name, targets] of plan) {
      const current = snap.topics.get(name)!;
      const next = withTargets(current.value, targets);
      if (next === undefined) continue;
      if (!options.dryRun) {
        if (options.mayWrite !== undefined && !options.mayWrite()) return [...written.values()];
        const res = await store.put(topicKey(name), encodeJson(next), { ifVersion: current.version });
        if (!res.ok) {
          conflict = true;
          continue;
        }
      }
      targets.forEach((t, partition) => {
        if (t !== undefined) written.set(`${name}/${partition}`, { topic: name, partition, replicas: [...current.value.partitions[partition]!.replicas], targetReplicas: [...t] });
      });
    }
    if (!conflict || options.dryRun) return [...written.values()];
  }
  throw new KmqError(ErrorCode.RequestTimedOut, `Writing reassignment targets lost ${MAX_ROUNDS} compare-and-swap rounds in a row`);
}

/**
 * Decommissions a broker: records it (so no replica is placed on it while it
 * runs as this incarnation) and moves every replica off it (proposeRebalance
 * without it). Checks first that the remaining brokers can hold every topic:
 * InvalidConfig otherwise, and nothing is written. Queue topics leave the
 * broker once the queue anchor has (the controller aligns them), so they are
 * neither checked nor planned here while the anchor exists.
 */
export async function decommissionBroker(store: CoordinationStore, brokerId: number, options: ProposeOptions = {}): Promise<PartitionMove[]> {
  const snap = await readSnapshot(store);
  const holds = [...snap.topics.values()].some((t) => t.value.partitions.some((p) => p.replicas.includes(brokerId) || (p.targetReplicas?.includes(brokerId) ?? false)));
  if (!snap.live.has(brokerId) && !holds) {
    throw new KmqError(ErrorCode.InvalidRequest, `Broker ${brokerId} is not registered and holds no replicas`, { broker: String(brokerId) });
  }
  const remaining = eligibleBrokers(snap).filter((b) => b !== brokerId);
  for (const [name, t] of snap.topics) {
    if (followsAnchor(name, t.value, snap.topics, options.queueAnchorTopic ?? QUEUE_ANCHOR_TOPIC)) continue;
    if (t.value.topic.replicationFactor > remaining.length) {
      throw new KmqError(
        ErrorCode.InvalidConfig,
        `Cannot decommission broker ${brokerId}: topic "${name}" has replication factor ${t.value.topic.replicationFactor}, but only ${remaining.length} other live broker(s) would remain (${remaining.join(', ') || 'none'})`,
        { broker: String(brokerId), topic: name },
      );
    }
  }
  if (!options.dryRun) {
    const record: DecommissionRecord = { brokerId, incarnation: snap.live.get(brokerId)?.incarnation ?? '', at: Date.now() };
    await store.put(decommissionedKey(brokerId), encodeJson(record));
  }
  return proposeRebalance(store, { ...options, exclude: brokerId });
}

/** Partitions with a reassignment in progress or waiting. */
export function reassignments(topics: Iterable<[string, ClusterTopic]>): PartitionMove[] {
  const out: PartitionMove[] = [];
  for (const [name, t] of topics) {
    t.partitions.forEach((p, partition) => {
      if (p.targetReplicas !== undefined) out.push({ topic: name, partition, replicas: [...p.replicas], targetReplicas: [...p.targetReplicas] });
    });
  }
  return out.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
}

function tryDecode<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
