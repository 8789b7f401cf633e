/**
 * Test double of ShareStateJournal: an array in log order. `gate` holds appends until
 * opened, `failNext` makes the next append fail, `compact()` keeps the last record per
 * key as a compacted topic would (tombstones dropped). For tests only.
 */
import type { JournalEntry, ShareStateJournal } from './share-state-journal.js';

export class MemoryJournal implements ShareStateJournal {
  readonly records: JournalEntry[] = [];
  appends = 0;
  failNext = false;
  private gated: Array<() => void> | undefined;

  async append(entries: JournalEntry[]): Promise<void> {
    if (this.gated !== undefined) await new Promise<void>((resolve) => this.gated!.push(resolve));
    await Promise.resolve();
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    this.appends++;
    for (const e of entries) this.records.push({ key: Buffer.from(e.key), value: e.value === null ? null : Buffer.from(e.value) });
  }

  load(): Iterable<JournalEntry> {
    return this.records;
  }

  /** Holds appends until open() is called. */
  gate(): void {
    this.gated ??= [];
  }

  open(): void {
    const waiting = this.gated ?? [];
    this.gated = undefined;
    for (const w of waiting) w();
  }

  /** A journal holding only the last live record per key, in log order. */
  compact(): MemoryJournal {
    const last = new Map<string, JournalEntry>();
    for (const r of this.records) {
      const k = r.key.toString('hex');
      last.delete(k);
      last.set(k, r);
    }
    const out = new MemoryJournal();
    for (const r of last.values()) if (r.value !== null) out.records.push(r);
    return out;
  }

  /** A copy of what is durable now, as a restarted broker would find it. */
  copy(): MemoryJournal {
    const out = new MemoryJournal();
    out.records.push(...this.records);
    return out;
  }
}
