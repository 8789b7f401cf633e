import type { Consumer, ConsumerBatch, DecodedRecord, KmqClient } from '../../client/index.js';
import type { Logger } from '../../lib/logger.js';
import type { CompiledSubscription } from '../config.js';
import { OffsetCommitTracker } from '../delivery/offset-commit-tracker.js';
import { HandlerOutcome } from '../delivery/retry-policy.js';
import type { SubscriptionProbe } from '../metrics.js';
import type { DeadLetterTopics, FailureHistory } from './dead-letter-topics.js';
import { deliveryMessage, settlementReason } from './delivery-source.js';
import type { DeliverySource, OutboundDelivery, SettleResult, Settlement } from './delivery-source.js';

const partitionKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/**
 * An ordered subscription: the consumer group named after the subscription,
 * reading its topic partition by partition. One fetched batch at a time is handed
 * out, in offset order, at most maxInFlight records unsettled. Per key, one record
 * at a time is with the app: a later record of the same key waits until the earlier
 * one is done (acked or dead-lettered), so per-key order holds even when a record
 * fails after later ones were fetched. A retried record is delivered again in place
 * after its delay, and the partition holds (nothing new is handed out) meanwhile. A
 * dead-lettered record is written to the dead-letter topic, with its failure
 * history, before it counts as done.
 *
 * Commits: an OffsetCommitTracker per partition records deliveries and acks (in any
 * order); a commit stores the trackers' committable offsets (Consumer.commitOffsets),
 * which never pass an unacknowledged record, also in the middle of a batch. A commit
 * starts when a tracker's count batch fills (checked on each ack), when its interval
 * passed (checked by a timer and at the end of a batch), and at close, before the
 * group is left. One commit runs at a time; a commit asked for meanwhile runs after it.
 */
export class OrderedSource implements DeliverySource {
  private readonly consumer: Consumer;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private endBatch: (() => void) | undefined;
  private committing: Promise<void> | undefined;
  /** A commit was asked for while one ran: run another once it is done. */
  private commitAgain = false;
  private readonly trackers = new Map<string, OffsetCommitTracker>();
  private commitTimer: NodeJS.Timeout | undefined;

  constructor(
    client: KmqClient,
    private readonly sub: CompiledSubscription,
    private readonly maxInFlight: number,
    private readonly deadLetters: DeadLetterTopics,
    private readonly probe: SubscriptionProbe,
    private readonly log: Logger,
  ) {
    this.consumer = client.consumer({ groupId: sub.name, topics: [sub.source.name], autoCommit: false, fromBeginning: sub.startFrom === 'earliest' });
  }

  async run(send: (d: OutboundDelivery) => void): Promise<void> {
    this.commitTimer = setInterval(() => this.commitIfDue(), Math.max(10, Math.min(this.sub.commitIntervalMs, 1_000)));
    this.commitTimer.unref();
    for await (const batch of this.consumer.batches()) {
      if (this.closed) return;
      await this.handOut(batch, send);
      if (this.closed) return;
    }
  }

  private tracker(batch: ConsumerBatch): OffsetCommitTracker {
    const key = partitionKey(batch.topic, batch.partition);
    const first = batch.records[0]!.offset;
    let t = this.trackers.get(key);
    // A partition read again from its committed offset (reassigned, or a batch cut short) starts over.
    if (t === undefined || first <= t.lastDelivered) {
      t = new OffsetCommitTracker({ topic: batch.topic, partition: batch.partition, position: first, maxCount: this.sub.commitMaxCount, intervalMs: this.sub.commitIntervalMs });
      this.trackers.set(key, t);
    }
    return t;
  }

  /** Commits every owned partition's committable offset that moved; a failure only logs. */
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
      // At-least-once: the records come again after a restart; nothing is lost.
      this.log.warn({ subscription: this.sub.name, err: (err as Error).message }, 'Offset commit failed');
    }
  }

  private commitIfDue(): void {
    if (this.closed || this.committing !== undefined) return;
    const now = Date.now();
    for (const t of this.trackers.values()) {
      if (t.shouldCommit(now)) {
        this.startCommit();
        return;
      }
    }
  }

  /** Starts a commit, or asks the running one to be followed by another; resolves when both are done. */
  private startCommit(): Promise<void> {
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

  /** Resolves once every record of the batch is done (and committed when due), or at close(). */
  private handOut(batch: ConsumerBatch, send: (d: OutboundDelivery) => void): Promise<void> {
    const records = batch.records;
    const tracker = this.tracker(batch);
    // The batch is handed out as a whole: commits stop at its first record not done.
    for (const r of records) tracker.delivered(r.offset);
    let histories: Map<number, FailureHistory> | undefined;
    // Per key, the records handed out or waiting, in offset order: only the first is with the app.
    const byKey = new Map<string, number[]>();
    // Records whose key became free, to hand out before any later record.
    const ready: number[] = [];
    let next = 0;
    let inFlight = 0;
    let remaining = records.length;
    let holding = 0;
    return new Promise<void>((resolve) => {
      this.endBatch = resolve;
      const pump = (): void => {
        if (this.closed) return;
        while (holding === 0 && inFlight < this.maxInFlight) {
          let i: number;
          if (ready.length > 0) i = ready.shift()!;
          else if (next < records.length) {
            i = next++;
            const key = records[i]!.key;
            if (key !== null) {
              const k = key.toString('latin1');
              const queue = byKey.get(k);
              if (queue !== undefined) {
                // An earlier record of this key is with the app: this one waits for it.
                queue.push(i);
                continue;
              }
              byKey.set(k, [i]);
            }
          } else break;
          inFlight++;
          dispatch(i, 1);
        }
        if (remaining === 0) {
          this.endBatch = undefined;
          this.probe.commitLag(batch.topic, batch.partition, tracker.lastDelivered + 1 - tracker.committed);
          const now = Date.now();
          let due = false;
          for (const t of this.trackers.values()) due ||= t.shouldCommit(now);
          if (!due) return resolve();
          // Started here, in the settlement's turn, so a close() right after it waits for it.
          this.startCommit().then(resolve, resolve);
        }
      };
      const done = (i: number): void => {
        const key = records[i]!.key;
        if (key !== null) {
          const k = key.toString('latin1');
          const queue = byKey.get(k)!;
          queue.shift();
          if (queue.length > 0) ready.push(queue[0]!);
          else byKey.delete(k);
        }
        tracker.acked(records[i]!.offset);
        histories?.delete(i);
        inFlight--;
        remaining--;
        // A count batch filled mid-batch commits now, up to the first record not done.
        if (remaining > 0 && tracker.shouldCommit()) this.commitIfDue();
        pump();
      };
      const later = (i: number, attempt: number, delayMs: number): void => {
        inFlight--;
        holding++;
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          holding--;
          if (this.closed) return;
          inFlight++;
          dispatch(i, attempt);
          pump();
        }, delayMs);
        this.timers.add(timer);
      };
      const dispatch = (i: number, attempt: number): void => {
        const r = records[i]!;
        const message = deliveryMessage({ topic: batch.topic, partition: batch.partition, offset: r.offset }, r.key, r.value, r.headers, r.timestamp, attempt);
        let settled = false;
        send({
          message,
          settle: async (s: Settlement): Promise<SettleResult> => {
            if (settled || this.closed) return 'deferred';
            settled = true;
            if (s.kind === 'ack') {
              done(i);
              return 'acked';
            }
            if (s.kind === 'defer') {
              later(i, attempt, s.delayMs);
              return 'deferred';
            }
            let history = histories?.get(i);
            if (s.kind !== 'dead-letter') {
              const now = Date.now();
              if (history === undefined) {
                history = { firstFailureAt: now, lastFailureAt: now, lastReason: '' };
                (histories ??= new Map()).set(i, history);
              }
              history.lastFailureAt = now;
              history.lastReason = settlementReason(s);
            }
            const decision =
              s.kind === 'dead-letter'
                ? undefined
                : this.sub.retryPolicy.decide(attempt, s.kind === 'retry' ? HandlerOutcome.Retry : s.timeout ? HandlerOutcome.Timeout : HandlerOutcome.Failure, s.kind === 'retry' ? s.delayMs : undefined);
            if (decision?.action === 'retry') {
              later(i, decision.nextAttempt, decision.delayMs);
              return 'retried';
            }
            const reason = s.kind === 'dead-letter' ? s.reason : `max attempts (${this.sub.retryPolicy.maxAttempts}) reached`;
            await this.deadLetter(batch, r, attempt, reason, history);
            done(i);
            return 'dead-lettered';
          },
        });
      };
      pump();
    });
  }

  private async deadLetter(batch: ConsumerBatch, r: DecodedRecord, attempts: number, reason: string, history: FailureHistory | undefined): Promise<void> {
    const origin = { subscription: this.sub.name, topic: batch.topic, partition: batch.partition, offset: r.offset, attempts, reason, history };
    await this.deadLetters.write(this.sub.deadLetterTopic, r, origin);
    this.log.info({ subscription: this.sub.name, topic: batch.topic, partition: batch.partition, offset: r.offset, attempts, reason, deadLetterTopic: this.sub.deadLetterTopic }, 'Dead-lettered');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.commitTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.endBatch?.();
    this.endBatch = undefined;
    // Every acknowledged prefix, a batch cut short included, is committed while the partitions are still owned.
    await this.startCommit();
    await this.consumer.close();
  }
}
