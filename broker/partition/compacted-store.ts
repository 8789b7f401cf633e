import { encodeBatch, splitBatches, decodeBatch } from '../../protocol/record-batch.js';
import type { Partition } from './partition.js';

/** How long a journal write waits for the in-sync replicas (clusters only). */
const COMMIT_TIMEOUT_MS = 30_000;

/**
 * A durable key/value journal on one partition of an internal compacted topic
 * (e.g. `__consumer_offsets`): each put is one record; the latest record per key
 * wins, a null value deletes the key. Compaction of the topic keeps it small.
 */
export class CompactedStore {
  constructor(private readonly partition: Partition, private readonly maxMessageBytes: number) {}

  async append(key: Buffer, value: Buffer | null): Promise<void> {
    const r = await this.partition.append(encodeBatch([{ key, value }]), this.maxMessageBytes);
    await this.partition.waitForCommit(r.lastOffset, COMMIT_TIMEOUT_MS);
  }

  /** Appends every entry in one batch: all or nothing. In a cluster, resolves once the in-sync replicas have it. */
  async appendMany(entries: Array<{ key: Buffer; value: Buffer | null }>): Promise<void> {
    if (entries.length === 0) return;
    const r = await this.partition.append(encodeBatch(entries), Number.MAX_SAFE_INTEGER);
    await this.partition.waitForCommit(r.lastOffset, COMMIT_TIMEOUT_MS);
  }

  /** Every record from the log start, in order. */
  *load(): Iterable<{ key: Buffer; value: Buffer | null }> {
    let offset = this.partition.logStartOffset;
    const end = this.partition.logEndOffset;
    while (offset < end) {
      // Up to the log end: a new leader's high watermark may still trail what it holds.
      const chunk = this.partition.readForReplica(offset, 1024 * 1024);
      if (chunk.length === 0) break;
      for (const batch of splitBatches(chunk, true)) {
        const { header, records } = decodeBatch(batch);
        const from = offset;
        for (const r of records) {
          if (r.offset < from) continue;
          if (r.key !== null) yield { key: Buffer.from(r.key), value: r.value === null ? null : Buffer.from(r.value) };
        }
        // Compaction leaves offset gaps: continue after the batch, whatever it still holds.
        offset = Math.max(offset, header.baseOffset + header.lastOffsetDelta + 1);
      }
    }
  }
}
