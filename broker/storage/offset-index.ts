import type { FileIo } from './file-io.js';

/**
 * Sparse offset index of one segment: `<baseOffset>.index`.
 *
 * File format: a sequence of 8-byte entries, big-endian, no header:
 *   u32 relativeOffset   base offset of a batch minus the segment's base offset
 *   u32 position         byte position of that batch in the segment's .log file
 *
 * Invariants: relativeOffset and position both strictly increase; every entry points
 * at the first byte of a batch; position < size of the .log. One entry is added when
 * more than indexIntervalBytes of log have been written since the previous one, so a
 * lookup is followed by a scan of at most about one interval (plus one batch) of
 * headers. Position 0 is implicit and never stored.
 *
 * The entries live in memory (a segment of 128 MiB has at most 32 Ki entries) and
 * are written to the file as a whole when the segment is rolled or closed; the file
 * is derived data, rebuilt from the .log when missing or invalid. The active segment's
 * index is always rebuilt on open, so it is never trusted after a crash.
 *
 * Concurrency: owned by one LogSegment; single-threaded use only.
 */
export class OffsetIndex {
  static readonly ENTRY_BYTES = 8;

  private rel: Uint32Array;
  private pos: Uint32Array;
  private n = 0;

  constructor(readonly path: string, capacity = 64) {
    this.rel = new Uint32Array(capacity);
    this.pos = new Uint32Array(capacity);
  }

  get entries(): number {
    return this.n;
  }

  /** Position of the last entry, or 0 when empty. */
  get lastPosition(): number {
    return this.n === 0 ? 0 : this.pos[this.n - 1]!;
  }

  /** Relative offset of the last entry, or 0 when empty. */
  get lastRelativeOffset(): number {
    return this.n === 0 ? 0 : this.rel[this.n - 1]!;
  }

  append(relativeOffset: number, position: number): void {
    if (this.n === this.rel.length) {
      const rel = new Uint32Array(this.n * 2);
      const pos = new Uint32Array(this.n * 2);
      rel.set(this.rel);
      pos.set(this.pos);
      this.rel = rel;
      this.pos = pos;
    }
    this.rel[this.n] = relativeOffset;
    this.pos[this.n] = position;
    this.n++;
  }

  /** Position of the last indexed batch whose relative base offset is <= relativeOffset; 0 if none. */
  lookup(relativeOffset: number): number {
    let lo = 0;
    let hi = this.n - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.rel[mid]! <= relativeOffset) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found < 0 ? 0 : this.pos[found]!;
  }

  clear(): void {
    this.n = 0;
  }

  /**
   * Loads entries from file bytes. Returns why they are unusable (then the index is
   * left empty), or undefined when they satisfy the invariants for a log of `logBytes`.
   */
  load(data: Buffer, logBytes: number): string | undefined {
    this.n = 0;
    if (data.length % OffsetIndex.ENTRY_BYTES !== 0) return `size ${data.length} is not a multiple of ${OffsetIndex.ENTRY_BYTES}`;
    let prevRel = -1;
    let prevPos = 0;
    for (let at = 0; at < data.length; at += OffsetIndex.ENTRY_BYTES) {
      const rel = data.readUInt32BE(at);
      const pos = data.readUInt32BE(at + 4);
      if (rel <= prevRel || pos <= prevPos) {
        this.n = 0;
        return `entry ${at / OffsetIndex.ENTRY_BYTES} is not increasing`;
      }
      if (pos >= logBytes) {
        this.n = 0;
        return `entry ${at / OffsetIndex.ENTRY_BYTES} points at byte ${pos}, beyond the log's ${logBytes}`;
      }
      this.append(rel, pos);
      prevRel = rel;
      prevPos = pos;
    }
    return undefined;
  }

  /** Writes all entries to the file, replacing it. */
  persist(io: FileIo): void {
    const data = Buffer.allocUnsafe(this.n * OffsetIndex.ENTRY_BYTES);
    for (let i = 0; i < this.n; i++) {
      data.writeUInt32BE(this.rel[i]!, i * OffsetIndex.ENTRY_BYTES);
      data.writeUInt32BE(this.pos[i]!, i * OffsetIndex.ENTRY_BYTES + 4);
    }
    io.writeFile(this.path, data);
  }
}
