import type { Consumer, ConsumerBatch } from '../../client/index.js';
import type { Logger } from '../../lib/logger.js';
import { OffsetCommitTracker } from '../delivery/offset-commit-tracker.js';
import type { SubscriptionProbe } from '../metrics.js';

const partitionKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/** How often a group's offsets are committed: after maxCount acks or intervalMs. */
export interface CommitBatching {
  maxCount: number;
  intervalMs: number;
}

/**
 * The offset commits of one consumer group of an ordered subscription: an
 * OffsetCommitTracker per partition records deliveries and acks (in any order); a
 * commit stores the trackers' committable offsets (Consumer.commitOffsets), which
 * never pass an unacknowledged record. One commit runs at a time; a commit asked
 * for meanwhile runs after it. A failed commit only logs: the records come again
 * after a restart (at-least-once).
 */
export class PartitionCommits {
  private readonly trackers = new Map<string, OffsetCommitTracker>();
  private committing: Promise<void> | undefined;
  /** A commit was asked for while one ran: run another once it is done. */
  private commitAgain = false;

  constructor(
    private readonly consumer: Consumer,
    private readonly batching: CommitBatching,
    private readonly probe: SubscriptionProbe,
    private readonly log: Logger,
    private readonly group: string,
  ) {}

  /** The tracker of the batch's partition; a partition read again from its committed offset starts over. */
  tracker(batch: ConsumerBatch): OffsetCommitTracker {
    const key = partitionKey(batch.topic, batch.partition);
    const first = batch.records[0]!.offset;
    let t = this.trackers.get(key);
    // Read again from its committed offset (reassigned, or a batch cut short).
    if (t === undefined || first <= t.lastDelivered) {
      t = new OffsetCommitTracker({ topic: batch.topic, partition: batch.partition, position: first, maxCount: this.batching.maxCount, intervalMs: this.batching.intervalMs });
      this.trackers.set(key, t);
    }
    return t;
  }

  /** True when some tracker's count or interval is due. */
  due(now = Date.now()): boolean {
    for (const t of this.trackers.values()) if (t.shouldCommit(now)) return true;
    return false;
  }

  /** Starts a commit when one is due and none runs. */
  commitIfDue(): void {
    if (this.committing === undefined && this.due()) void this.start();
  }

  /** Starts a commit, or asks the running one to be followed by another; resolves when both are done. */
  start(): Promise<void> {
    if (this.committing !== undefined) {
      this.commitAgain = true;
      return this.committing;
    }
    const p = (async () => {
      do {
        this.commitAgain = false;
        await this.commit();
      } while (this.commitAgain);
    })().finally(() => {
      if (this.committing === p) this.committing = undefined;
    });
    this.committing = p;
    return p;
  }

  /** Commits every owned partition's committable offset that moved. */
  private async commit(): Promise<void> {
    const owned = new Set(this.consumer.assignment().map((tp) => partitionKey(tp.topic, tp.partition)));
    const due: OffsetCommitTracker[] = [];
    const offsets: Array<{ topic: string; partition: number; offset: number }> = [];
    for (const [key, t] of this.trackers) {
      if (!t.hasUncommitted || !owned.has(key)) continue;
      due.push(t);
      offsets.push({ topic: t.topic, partition: t.partition, offset: t.committable() });
    }
    if (due.length === 0) return;
    try {
      await this.consumer.commitOffsets(offsets);
      for (let i = 0; i < due.length; i++) {
        const t = due[i]!;
        t.markCommitted(offsets[i]!.offset);
        this.probe.commitLag(t.topic, t.partition, t.lastDelivered + 1 - t.committed);
      }
    } catch (err) {
      this.log.warn({ group: this.group, err: (err as Error).message }, 'Offset commit failed');
    }
  }
}
