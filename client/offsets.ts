import { ErrorCode, KmqError } from '../lib/errors.js';
import { Apis } from '../protocol/apis.js';
import { errorCodeFromWire, throwIfWireError } from '../protocol/error-codes.js';
import type { CommittedOffset } from '../protocol/gen/kmq/broker/v1/broker.js';
import type { Cluster } from './cluster.js';
import type { TopicPartition } from './group-member.js';
import { toTopicPartitions } from './group-member.js';

/** Which offset ListOffsets looks up: the log start, the log end, or the first record at or after a time (ms). */
export type OffsetSpec = 'earliest' | 'latest' | number;

const EARLIEST = -2;
const LATEST = -1;

/**
 * Offsets of `partitions` (all when empty) of `topic` per `spec`, as a map
 * partition → offset; each partition is asked of its leader, and a leader that
 * moved is looked up again.
 */
export async function listOffsets(cluster: Cluster, topic: string, partitions: number[], spec: OffsetSpec): Promise<Map<number, number>> {
  const timestamp = spec === 'earliest' ? EARLIEST : spec === 'latest' ? LATEST : spec;
  return cluster.withRetry('ListOffsets', async () => {
    const route = await cluster.route(topic);
    const wanted = partitions.length > 0 ? partitions : route.leaders.map((_, i) => i);
    const byLeader = new Map<number, number[]>();
    for (const p of wanted) {
      const leader = route.leaders[p];
      if (leader === undefined) throw new KmqError(ErrorCode.UnknownPartition, `Topic ${topic} has no partition ${p} (it has ${route.leaders.length})`, { topic, partition: p });
      byLeader.set(leader, [...(byLeader.get(leader) ?? []), p]);
    }
    const out = new Map<number, number>();
    try {
      await Promise.all(
        [...byLeader].map(async ([leader, ps]) => {
          const conn = await cluster.connectionToBroker(leader);
          const res = await conn.request(Apis.ListOffsets, { topic, partitions: ps, timestamp });
          throwIfWireError(res.header.errorCode, res.header.errorMessage, { topic });
          for (const o of res.header.offsets) {
            if (o.errorCode !== 0) {
              const code = errorCodeFromWire(o.errorCode);
              throw new KmqError(code, `ListOffsets for ${topic}[${o.partition}] failed: ${code}`, { topic, partition: o.partition });
            }
            out.set(o.partition, o.offset);
          }
        }),
      );
    } catch (err) {
      // The leader may have moved: look the route up again before the retry.
      if (err instanceof KmqError && err.retriable) cluster.invalidate(topic);
      throw err;
    }
    return out;
  });
}

/** Committed offsets of `group` (for `partitions`, or all when empty); offset -1 = none. */
export async function fetchCommitted(cluster: Cluster, group: string, partitions: readonly TopicPartition[] = []): Promise<CommittedOffset[]> {
  const res = await cluster.call(() => cluster.coordinatorConnection(), Apis.OffsetFetch, { group, partitions: toTopicPartitions(partitions) });
  throwIfWireError(res.header.errorCode, res.header.errorMessage, { group });
  return res.header.offsets;
}

/** Commits `offsets` (next offset to consume) for `group`; throws on the first failed partition. */
export async function commitOffsets(cluster: Cluster, group: string, memberId: string, offsets: ReadonlyArray<TopicPartition & { offset: number }>): Promise<void> {
  if (offsets.length === 0) return;
  const conn = await cluster.coordinatorConnection();
  const res = await conn
    .request(Apis.OffsetCommit, {
      group,
      memberId,
      offsets: offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset, metadata: '' })),
    })
    .catch((err: unknown) => {
      cluster.coordinatorMoved();
      throw err;
    });
  throwIfWireError(res.header.errorCode, res.header.errorMessage, { group });
  for (const r of res.header.results) {
    if (r.errorCode !== 0) {
      const code = errorCodeFromWire(r.errorCode);
      throw new KmqError(code, `Commit of ${r.topic}[${r.partition}] for group ${group} failed: ${code}`, { group, topic: r.topic, partition: r.partition });
    }
  }
}

export function unknownPartition(topic: string, partition: number): KmqError {
  return new KmqError(ErrorCode.NotPartitionOwner, `This consumer does not consume ${topic}[${partition}]`, { topic, partition }, { retriable: false });
}
