/** One leader epoch and the first offset written in it. */
export interface EpochEntry {
  epoch: number;
  startOffset: number;
}

/** The answer to "where does epoch E end?": the largest known epoch <= E and its end offset. */
export interface EpochEnd {
  /** -1 when no epoch <= E is known. */
  epoch: number;
  /** The offset after the last record of `epoch` (the next epoch's start, or the log end); -1 with epoch -1. */
  endOffset: number;
}

/**
 * Which leader epoch wrote which offsets, as Kafka keeps it (KIP-101): the
 * entries are the first offset of each epoch, in order. A follower that
 * becomes a replica of a new leader asks where its latest epoch ends on the
 * leader and truncates what lies beyond: history the new leader never had.
 * Rebuilt from batch headers when a partition opens, so nothing extra is stored.
 */
export class LeaderEpochCache {
  private entries: EpochEntry[] = [];

  /** Records that `epoch` wrote from `startOffset`; ignores epochs not newer than the latest. */
  assign(epoch: number, startOffset: number): void {
    if (epoch < 0) return;
    const last = this.entries[this.entries.length - 1];
    if (last !== undefined && epoch <= last.epoch) return;
    this.entries.push({ epoch, startOffset });
  }

  /** The newest epoch, -1 when none. */
  get latestEpoch(): number {
    return this.entries[this.entries.length - 1]?.epoch ?? -1;
  }

  /** The first offset of `epoch`, -1 if it is not in the cache. */
  startOffsetOf(epoch: number): number {
    return this.entries.find((e) => e.epoch === epoch)?.startOffset ?? -1;
  }

  /** Where `epoch` ends, given the log end; see EpochEnd. */
  endOf(epoch: number, logEndOffset: number): EpochEnd {
    let found = -1;
    for (let i = 0; i < this.entries.length; i++) if (this.entries[i]!.epoch <= epoch) found = i;
    if (found < 0) return { epoch: -1, endOffset: -1 };
    const next = this.entries[found + 1];
    return { epoch: this.entries[found]!.epoch, endOffset: next === undefined ? logEndOffset : next.startOffset };
  }

  /** Forgets epochs that start at or after `offset` (the log was truncated there). */
  truncateFrom(offset: number): void {
    while (this.entries.length > 0 && this.entries[this.entries.length - 1]!.startOffset >= offset) this.entries.pop();
  }

  /** Forgets every entry (the log was emptied). */
  clear(): void {
    this.entries = [];
  }

  snapshot(): readonly EpochEntry[] {
    return this.entries;
  }
}
