/**
 * The in-memory table of committed offsets, kept in step with the GroupStateStore.
 *
 * Invariant: the table shows, per key, the value of the last write that was issued
 * for that key and became durable. Writes are issued to the store in call order; a
 * write applies to the table once durable, unless a later write for the same key
 * was issued meanwhile (that one applies when it lands), so a slow early write
 * never overwrites a newer value.
 *
 * Event-loop only; concurrent async writes are ordered as described above.
 */
import { ErrorCode, toKmqError } from '../../lib/errors.js';
import type { GroupStateStore } from './group-state-store.js';
import { encodeOffsetKey, encodeOffsetValue } from './offset-record.js';
import type { OffsetRecordKey, OffsetRecordValue } from './offset-record.js';

/** One committed offset of a group's partition, as listed. */
export interface CommittedPartition {
  topic: string;
  partition: number;
  value: OffsetRecordValue;
}

export class CommittedOffsets {
  /** group → topic → partition → value */
  private readonly table = new Map<string, Map<string, Map<number, OffsetRecordValue>>>();
  /** Encoded key (latin1) → sequence number of the latest write issued for it, while in flight. */
  private readonly inFlight = new Map<string, number>();
  private seq = 0;

  get(group: string, topic: string, partition: number): OffsetRecordValue | undefined {
    return this.table.get(group)?.get(topic)?.get(partition);
  }

  has(group: string): boolean {
    return this.table.has(group);
  }

  groups(): IterableIterator<string> {
    return this.table.keys();
  }

  /** Every committed offset of a group, sorted by topic then partition. */
  list(group: string): CommittedPartition[] {
    const out: CommittedPartition[] = [];
    const topics = this.table.get(group);
    if (topics === undefined) return out;
    for (const topic of [...topics.keys()].sort()) {
      const parts = topics.get(topic);
      if (parts === undefined) continue;
      for (const partition of [...parts.keys()].sort((a, b) => a - b)) {
        const value = parts.get(partition);
        if (value !== undefined) out.push({ topic, partition, value });
      }
    }
    return out;
  }

  /** Applies a record read back from the store at start-up; value null = tombstone. */
  applyLoaded(key: OffsetRecordKey, value: OffsetRecordValue | null): void {
    this.apply(key, value);
  }

  /** Persists a commit (or a tombstone when value is null), then applies it. Throws StorageError. */
  async write(store: GroupStateStore, key: OffsetRecordKey, value: OffsetRecordValue | null): Promise<void> {
    const keyBytes = encodeOffsetKey(key);
    const valueBytes = value === null ? null : encodeOffsetValue(value);
    const id = keyBytes.toString('latin1');
    const seq = ++this.seq;
    this.inFlight.set(id, seq);
    try {
      await store.append(keyBytes, valueBytes);
    } catch (err) {
      if (this.inFlight.get(id) === seq) this.inFlight.delete(id);
      throw toKmqError(err, ErrorCode.StorageError, { group: key.group, topic: key.topic, partition: key.partition });
    }
    if (this.inFlight.get(id) !== seq) return;
    this.inFlight.delete(id);
    this.apply(key, value);
  }

  private apply(key: OffsetRecordKey, value: OffsetRecordValue | null): void {
    let topics = this.table.get(key.group);
    if (value === null) {
      const parts = topics?.get(key.topic);
      if (topics === undefined || parts === undefined) return;
      parts.delete(key.partition);
      if (parts.size === 0) topics.delete(key.topic);
      if (topics.size === 0) this.table.delete(key.group);
      return;
    }
    if (topics === undefined) this.table.set(key.group, (topics = new Map()));
    let parts = topics.get(key.topic);
    if (parts === undefined) topics.set(key.topic, (parts = new Map()));
    parts.set(key.partition, value);
  }
}
