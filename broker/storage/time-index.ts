import type { FileIo } from './file-io.js';

/**
 * Time index of one segment: `<baseOffset>.timeindex`.
 *
 * File format: a sequence of 12-byte entries, big-endian, no header:
 *   i64 timestamp        the largest batch maxTimestamp seen in the segment so far (ms)
 *   u32 relativeOffset   base offset (minus the segment's) of the batch that carried it
 *
 * Invariants: timestamp and relativeOffset both strictly increase. An entry (T, O)
 * promises that every batch up to the one at O, and every batch after it until the
 * next entry, has maxTimestamp <= T. Entries are added alongside offset-index entries,
 * only when the running maximum has grown, plus one when the segment is rolled, so
 * the last entry carries the segment's largest timestamp.
 *
 * Lookup for a target ts: the last entry with T < ts says that nothing up to O
 * reaches ts, so a scan can start at the batch at O.
 *
 * Kept in memory, written whole on roll and close; derived data, rebuilt from the
 * .log when missing or invalid. Concurrency: owned by one LogSegment.
 */
export class TimeIndex {
  static readonly ENTRY_BYTES = 12;

  private ts: Float64Array;
  private rel: Uint32Array;
  private n = 0;

  constructor(readonly path: string, capacity = 16) {
    this.ts = new Float64Array(capacity);
    this.rel = new Uint32Array(capacity);
  }

  get entries(): number {
    return this.n;
  }

  /** Timestamp of the last entry, or -Infinity when empty. */
  get lastTimestamp(): number {
    return this.n === 0 ? -Infinity : this.ts[this.n - 1]!;
  }

  get lastRelativeOffset(): number {
    return this.n === 0 ? 0 : this.rel[this.n - 1]!;
  }

  append(timestamp: number, relativeOffset: number): void {
    if (this.n === this.ts.length) {
      const ts = new Float64Array(this.n * 2);
      const rel = new Uint32Array(this.n * 2);
      ts.set(this.ts);
      rel.set(this.rel);
      this.ts = ts;
      this.rel = rel;
    }
    this.ts[this.n] = timestamp;
    this.rel[this.n] = relativeOffset;
    this.n++;
  }

  /** Relative offset of the last entry with timestamp < ts, or -1 when there is none. */
  lookupBefore(ts: number): number {
    let lo = 0;
    let hi = this.n - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ts[mid]! < ts) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found < 0 ? -1 : this.rel[found]!;
  }

  clear(): void {
    this.n = 0;
  }

  /**
   * Loads entries from file bytes; returns why they are unusable (index left empty),
   * or undefined. `maxRelativeOffset` bounds the offsets (the segment's last batch).
   */
  load(data: Buffer, maxRelativeOffset: number): string | undefined {
    this.n = 0;
    if (data.length % TimeIndex.ENTRY_BYTES !== 0) return `size ${data.length} is not a multiple of ${TimeIndex.ENTRY_BYTES}`;
    let prevTs = -Infinity;
    let prevRel = -1;
    for (let at = 0; at < data.length; at += TimeIndex.ENTRY_BYTES) {
      const ts = data.readInt32BE(at) * 4294967296 + data.readUInt32BE(at + 4);
      const rel = data.readUInt32BE(at + 8);
      const i = at / TimeIndex.ENTRY_BYTES;
      if (ts <= prevTs || rel <= prevRel) {
        this.n = 0;
        return `entry ${i} is not increasing`;
      }
      if (rel > maxRelativeOffset) {
        this.n = 0;
        return `entry ${i} names relative offset ${rel}, beyond the segment's last ${maxRelativeOffset}`;
      }
      this.append(ts, rel);
      prevTs = ts;
      prevRel = rel;
    }
    return undefined;
  }

  persist(io: FileIo): void {
    const data = Buffer.allocUnsafe(this.n * TimeIndex.ENTRY_BYTES);
    for (let i = 0; i < this.n; i++) {
      const at = i * TimeIndex.ENTRY_BYTES;
      const t = this.ts[i]!;
      const hi = Math.floor(t / 4294967296);
      data.writeInt32BE(hi, at);
      data.writeUInt32BE(t - hi * 4294967296, at + 4);
      data.writeUInt32BE(this.rel[i]!, at + 8);
    }
    io.writeFile(this.path, data);
  }
}
