import { ErrorCode, KmqError } from '../../lib/errors.js';
import { encodeJson, topicKey } from './cluster-metadata.js';
import type { PartitionState } from './cluster-metadata.js';
import type { CoordinationStore } from './coordination-store.js';
import { decodeClusterTopic } from './metadata-codec.js';

/** Who claims to lead a partition: the leader's broker id and the epoch it was elected at. */
export interface PartitionLeadership {
  leader: number;
  leaderEpoch: number;
  /** The topic's id when the leader knows it: a topic deleted and created again under the same name is another topic. */
  topicId?: string;
}

/**
 * The outcome of updateIsr. `fenced`: the stored state no longer names this
 * leader at this epoch (a new leader was elected); `unknown-topic`: the topic
 * or partition does not exist (any more).
 */
export type UpdateIsrResult = { ok: true; state: PartitionState; version: number } | { ok: false; reason: 'fenced' | 'unknown-topic' };

/** Compare-and-swap attempts before giving up (conflicts come from writes to other partitions of the topic). */
const MAX_ATTEMPTS = 32;

/**
 * A partition leader's change of its in-sync set (shrink on lag, expand on
 * catch-up), written only while the stored state still names it leader at its
 * epoch: a compare-and-swap on the topic key, retried when another partition of
 * the same topic was written in between. The new set must contain the leader
 * and only brokers of `replicas`, without repeats; otherwise nothing is written
 * and it throws InvalidRequest. Store failures propagate (retriable ones as such).
 */
export async function updateIsr(
  store: CoordinationStore,
  topic: string,
  partition: number,
  leadership: PartitionLeadership,
  newIsr: readonly number[],
): Promise<UpdateIsrResult> {
  const context = { topic, partition, broker: String(leadership.leader) };
  if (newIsr.length === 0) throw new KmqError(ErrorCode.InvalidRequest, `The in-sync set of ${topic}/${partition} cannot be empty`, context);
  if (new Set(newIsr).size !== newIsr.length) throw new KmqError(ErrorCode.InvalidRequest, `The in-sync set [${newIsr.join(', ')}] of ${topic}/${partition} repeats a broker`, context);
  if (!newIsr.includes(leadership.leader)) {
    throw new KmqError(ErrorCode.InvalidRequest, `The in-sync set [${newIsr.join(', ')}] of ${topic}/${partition} must contain its leader ${leadership.leader}`, context);
  }
  const key = topicKey(topic);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const stored = await store.get(key);
    if (stored === undefined) return { ok: false, reason: 'unknown-topic' };
    const value = decodeClusterTopic(key, stored.value);
    const state = value.partitions[partition];
    if (state === undefined || (leadership.topicId !== undefined && value.topic.id !== leadership.topicId)) return { ok: false, reason: 'unknown-topic' };
    if (state.leader !== leadership.leader || state.leaderEpoch !== leadership.leaderEpoch) return { ok: false, reason: 'fenced' };
    const outside = newIsr.filter((b) => !state.replicas.includes(b));
    if (outside.length > 0) {
      throw new KmqError(ErrorCode.InvalidRequest, `Brokers ${outside.join(', ')} are not replicas of ${topic}/${partition} (replicas ${state.replicas.join(', ')})`, context);
    }
    if (equalLists(state.isr, newIsr)) return { ok: true, state, version: stored.version };
    const next: PartitionState = { ...state, isr: [...newIsr] };
    const partitions = value.partitions.map((p, i) => (i === partition ? next : p));
    const res = await store.put(key, encodeJson({ ...value, partitions }), { ifVersion: stored.version });
    if (res.ok) return { ok: true, state: next, version: res.version };
  }
  throw new KmqError(ErrorCode.RequestTimedOut, `Updating the in-sync set of ${topic}/${partition} lost ${MAX_ATTEMPTS} compare-and-swap races in a row`, context);
}

function equalLists(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
