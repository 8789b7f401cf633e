import { encodeBatch, splitBatches, decodeBatch } from '../../protocol/record-batch.js';
import type { Partition } from './partition.js';

/**
 * A durable key/value journal on one partition of an internal compacted topic
 * (e.g. `__consumer_offsets`): each put is one record; the latest record per key
 * wins, a null value deletes the key. Compaction of the topic keeps it small.
 */
export class CompactedStore {
  constructor(private readonly partition: Partition, private readonly maxMessageBytes: number) {}

  async append(key: Buffer, value: Buffer | null): Promise<void> {
    await this.partition.append(encodeBatch([{ key, value }]), this.maxMessageBytes);
  }

  /** Appends every entry in one batch: all or nothing. */
  async appendMany(entries: Array<{ key: Buffer; value: Buffer | null }>): Promise<void> {
    if (entries.length === 0) return;
    await this.partition.append(encodeBatch(entries), Number.MAX_SAFE_INTEGER);
  }

  /** Every record from the log start, in order. */
  *load(): Iterable<{ key: Buffer; value: Buffer | null }> {
    let offset = this.partition.logStartOffset;
    const end = this.partition.logEndOffset;
    while (offset < end) {
      const chunk = this.partition.read(offset, 1024 * 1024);
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
