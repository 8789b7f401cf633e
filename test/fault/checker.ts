import { expect } from 'vitest';
import type { KmqClient } from '../../client/index.js';

/** A record the producer saw acknowledged. */
export interface AckedRecord {
  seq: number;
  partition: number;
  offset: number;
}

/** A record read back from a partition's log. */
export interface ReadRecord {
  partition: number;
  offset: number;
  value: string;
}

/** What the checker found, Jepsen style: every count but `acked`, `read` and `failedSends` must be 0. */
export interface CheckResult {
  acked: number;
  read: number;
  /** Sends that failed for good: neither acknowledged nor required to be present. */
  failedSends: number;
  /** Acknowledged but not in the log. */
  lost: number[];
  /** Acknowledged at one offset, found at another. */
  moved: number[];
  /** In the log more than once. */
  duplicated: number[];
  /** In the log but never sent. */
  unexpected: string[];
  /** Partitions where a later-sent record precedes an earlier one. */
  outOfOrder: number[];
}

/** Asserts the checker found nothing wrong: one assertion, so a failure shows every count at once. */
export function expectConsistent(r: CheckResult): void {
  expect({ lost: r.lost, moved: r.moved, duplicated: r.duplicated, unexpected: r.unexpected, outOfOrder: r.outOfOrder }).toEqual({ lost: [], moved: [], duplicated: [], unexpected: [], outOfOrder: [] });
}

/** Values are `v-<seq>`; the sequence number orders sends. */
export function valueOf(seq: number): string {
  return `v-${seq}`;
}

export function check(acked: readonly AckedRecord[], sent: number, failedSends: number, log: readonly ReadRecord[]): CheckResult {
  const where = new Map<number, ReadRecord[]>();
  const unexpected: string[] = [];
  for (const r of log) {
    const m = /^v-(\d+)$/.exec(r.value);
    const seq = m === null ? -1 : Number(m[1]);
    if (seq < 0 || seq >= sent) {
      unexpected.push(r.value);
      continue;
    }
    where.set(seq, [...(where.get(seq) ?? []), r]);
  }
  const lost: number[] = [];
  const moved: number[] = [];
  for (const a of acked) {
    const found = where.get(a.seq);
    if (found === undefined) lost.push(a.seq);
    else if (!found.some((r) => r.partition === a.partition && r.offset === a.offset)) moved.push(a.seq);
  }
  const duplicated = [...where].filter(([, rs]) => rs.length > 1).map(([seq]) => seq);
  const outOfOrder = new Set<number>();
  const lastSeq = new Map<number, number>();
  for (const r of [...log].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
    const m = /^v-(\d+)$/.exec(r.value);
    if (m === null) continue;
    const seq = Number(m[1]);
    if ((lastSeq.get(r.partition) ?? -1) > seq) outOfOrder.add(r.partition);
    lastSeq.set(r.partition, seq);
  }
  return { acked: acked.length, read: log.length, failedSends, lost, moved, duplicated, unexpected, outOfOrder: [...outOfOrder] };
}

/** Every record of every partition of `topic`, read from the log start to the high watermark through the leaders. */
export async function readAll(client: KmqClient, topic: string): Promise<ReadRecord[]> {
  const admin = client.admin();
  const ends = await admin.listOffsets(topic, 'latest');
  const out: ReadRecord[] = [];
  const wanted = [...ends].filter(([, end]) => end > 0);
  if (wanted.length === 0) return out;
  const consumer = client.consumer({ assignment: wanted.map(([partition]) => ({ topic, partition, offset: 0 })), autoCommit: false, maxWaitMs: 200 });
  const remaining = new Map(wanted);
  try {
    for await (const b of consumer.batches()) {
      const end = remaining.get(b.partition);
      for (const r of b.records) {
        if (end !== undefined && r.offset < end) out.push({ partition: b.partition, offset: r.offset, value: r.value?.toString() ?? '' });
      }
      const last = b.records[b.records.length - 1];
      if (end !== undefined && last !== undefined && last.offset + 1 >= end) remaining.delete(b.partition);
      if (remaining.size === 0) break;
    }
  } finally {
    await consumer.close();
  }
  return out;
}
