import type { Consumer, ConsumerBatch, KmqClient, RecordHeader } from '../../client/index.js';
import type { Logger } from '../../lib/logger.js';
import type { CompiledSubscription } from '../config.js';
import { HandlerOutcome } from '../delivery/retry-policy.js';
import type { Source } from '../gen/kmq/sidecar/v1/sidecar.js';
import type { SubscriptionProbe } from '../metrics.js';
import type { DeadLetterTopics, FailureHistory } from './dead-letter-topics.js';
import { deliveryMessage, settlementReason } from './delivery-source.js';
import type { DeliverySource, OutboundDelivery, SettleResult, Settlement } from './delivery-source.js';
import { InFlightSlots } from './in-flight-slots.js';
import { PartitionCommits } from './partition-commits.js';
import { originSource, readRetryState, retryRecordHeaders, withoutRetryHeaders } from './retry-topic.js';
import type { RetryState } from './retry-topic.js';

/** Wait before writing a malformed retry record to the dead-letter topic again after a failed write. */
const MALFORMED_RETRY_MS = 1_000;
/** The longest delay a Node timer keeps; a later due time (a clock far off) waits this long. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * One consumer group an OrderedSource reads: the subscription's group on its
 * topic, or (retry mode topic) the retry group on the retry topic.
 */
interface Lane {
  readonly consumer: Consumer;
  readonly commits: PartitionCommits;
  /** The retry topic's lane: each record carries its retry state in headers. */
  readonly retries: boolean;
  /** Per partition, what its batches share while several are with the app. */
  readonly flows: Map<number, PartitionFlow>;
  /** Resolves the batch being handed out, so the reader can stop at close(). */
  endBatch: (() => void) | undefined;
}

/** One batch being handed out, as the records of other batches waiting on its keys see it. */
interface BatchRun {
  /** Records whose key became free, to hand out before any later record. */
  readonly ready: number[];
  /** Records waiting for an earlier record of their key. */
  waiting: number;
}

/**
 * One partition of a lane. Its batches are handed out one after another, but an
 * earlier one may still be with the app while a later one goes out; per key and
 * for in-place retries they act as one.
 */
interface PartitionFlow {
  /** Per key, the records handed out or waiting, in offset order: only the first is with the app. */
  readonly byKey: Map<string, Array<{ readonly run: BatchRun; readonly i: number }>>;
  /** Records waiting out a retry delay (or for a slot after it): nothing new of the partition goes out meanwhile. */
  holding: number;
  /** The pumps of its batches not done yet: the last held record going out again wakes them. */
  readonly pumps: Set<() => void>;
}

/**
 * An ordered subscription: the consumer group named after the subscription,
 * reading its topic partition by partition. Fetched batches are handed out in
 * offset order, at most maxInFlight records unsettled; the next batch goes out as
 * soon as every record of the one before went to the app, not once they are all
 * done, so records that arrive one fetch at a time are still handled side by side.
 * Per key, one record at a time is with the app: a later record of the same key
 * (of the same batch or a later one) waits until the earlier one is done (acked,
 * dead-lettered, or written to the retry topic). A dead-lettered
 * record is written to the dead-letter topic, with its failure history, before it
 * counts as done.
 *
 * Retries in place (default): a retried record is delivered again after its delay,
 * and the partition holds (nothing new is handed out) meanwhile, so per-key order
 * holds even when a record fails after later ones were fetched. The attempt count
 * lives in memory.
 *
 * Retries through a retry topic (`retry.mode: topic`): a retried record is written
 * to the retry topic (headers: next attempt, not-before time, origin, failure
 * history) and then counts as done, so its partition moves on and per-key order is
 * not kept. A second group (`<name>.retry`) reads the retry topic in this source,
 * sharing its maxInFlight and its stream: each record waits until it is due (its
 * partition holds meanwhile), then goes to the app with the attempt of its header
 * and the original record as source. A retried record failing again is written to
 * the retry topic again or dead-lettered with its whole history. The write is stored
 * before the record is done, so a crash in between retries it twice at worst; should
 * the write fail, the record is retried in place.
 *
 * Commits: per group, a PartitionCommits keeps an OffsetCommitTracker per partition
 * and commits the contiguous done point, never past a record not done, also in the
 * middle of a batch: when a count batch fills (checked on each ack), when its
 * interval passed (checked by a timer and at the end of a batch), and at close,
 * before the group is left.
 */
export class OrderedSource implements DeliverySource {
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private commitTimer: NodeJS.Timeout | undefined;
  private readonly slots: InFlightSlots;
  private readonly main: Lane;
  /** Retry mode topic: the retry topic's lane. */
  private readonly retryLane: Lane | undefined;

  constructor(
    client: KmqClient,
    private readonly sub: CompiledSubscription,
    maxInFlight: number,
    private readonly deadLetters: DeadLetterTopics,
    private readonly probe: SubscriptionProbe,
    private readonly log: Logger,
  ) {
    this.slots = new InFlightSlots(maxInFlight);
    const batching = { maxCount: sub.commitMaxCount, intervalMs: sub.commitIntervalMs };
    const consumer = client.consumer({ groupId: sub.name, topics: [sub.source.name], autoCommit: false, fromBeginning: sub.startFrom === 'earliest' });
    this.main = { consumer, commits: new PartitionCommits(consumer, batching, probe, log, sub.name), retries: false, flows: new Map(), endBatch: undefined };
    const retry = sub.retry;
    if (retry.mode === 'topic') {
      // Every record of the retry topic is to be retried: start at the earliest without a committed offset.
      const rc = client.consumer({ groupId: retry.group, topics: [retry.topic], autoCommit: false, fromBeginning: true });
      this.retryLane = { consumer: rc, commits: new PartitionCommits(rc, batching, probe, log, retry.group), retries: true, flows: new Map(), endBatch: undefined };
    }
  }

  private get lanes(): Lane[] {
    return this.retryLane === undefined ? [this.main] : [this.main, this.retryLane];
  }

  async run(send: (d: OutboundDelivery) => void): Promise<void> {
    this.commitTimer = setInterval(
      () => {
        if (!this.closed) for (const l of this.lanes) l.commits.commitIfDue();
      },
      Math.max(10, Math.min(this.sub.commitIntervalMs, 1_000)),
    );
    this.commitTimer.unref();
    const reading = [this.read(this.main, send)];
    const retry = this.sub.retry;
    if (this.retryLane !== undefined && retry.mode === 'topic') {
      const lane = this.retryLane;
      reading.push(this.deadLetters.ensure(retry.topic).then(() => this.read(lane, send)));
    }
    await Promise.all(reading);
  }

  private async read(lane: Lane, send: (d: OutboundDelivery) => void): Promise<void> {
    if (this.closed) return;
    for await (const batch of lane.consumer.batches()) {
      if (this.closed) return;
      await this.handOut(lane, batch, send);
      if (this.closed) return;
    }
  }

  /**
   * Resolves once every record of the batch went to the app (or is done), so the
   * next batch can go out while the app still holds these; or at close(). When the
   * last record is done, a commit is started if due (not awaited).
   */
  private handOut(lane: Lane, batch: ConsumerBatch, send: (d: OutboundDelivery) => void): Promise<void> {
    const records = batch.records;
    const tracker = lane.commits.tracker(batch);
    // The batch is handed out as a whole: commits stop at its first record not done.
    for (const r of records) tracker.delivered(r.offset);
    let histories: Map<number, FailureHistory> | undefined;
    // The retry lane: each record's retry state, read when it is first handed out.
    const states = lane.retries ? new Map<number, RetryState>() : undefined;
    let flow = lane.flows.get(batch.partition);
    if (flow === undefined) lane.flows.set(batch.partition, (flow = { byKey: new Map(), holding: 0, pumps: new Set() }));
    const { byKey } = flow;
    const run: BatchRun = { ready: [], waiting: 0 };
    const { ready } = run;
    // Records whose wait ended, to deliver again as soon as a slot is free: [index, attempt].
    const resumed: Array<[number, number]> = [];
    let next = 0;
    let remaining = records.length;
    let finished = false;
    let handed = false;
    return new Promise<void>((resolve) => {
      lane.endBatch = resolve;
      const pump = (): void => {
        if (this.closed || finished) return;
        let unheld = false;
        while (this.slots.free) {
          if (resumed.length > 0) {
            const [i, attempt] = resumed.shift()!;
            unheld = --flow.holding === 0;
            this.slots.take();
            dispatch(i, attempt);
            continue;
          }
          if (flow.holding > 0) break;
          let i: number;
          if (ready.length > 0) i = ready.shift()!;
          else if (next < records.length) {
            i = next++;
            const key = records[i]!.key;
            if (key !== null) {
              const k = key.toString('latin1');
              const queue = byKey.get(k);
              if (queue !== undefined) {
                // An earlier record of this key (of this batch or an earlier one) is with the app: this one waits for it.
                queue.push({ run, i });
                run.waiting++;
                continue;
              }
              byKey.set(k, [{ run, i }]);
            }
          } else break;
          this.slots.take();
          first(i);
        }
        if (!handed && (remaining === 0 || (next === records.length && ready.length === 0 && run.waiting === 0))) {
          // Every record went out: the reader may hand out the next batch while the app holds these.
          handed = true;
          if (lane.endBatch === resolve) lane.endBatch = undefined;
          resolve();
        }
        if (remaining === 0) {
          finished = true;
          stopListening();
          this.probe.commitLag(batch.topic, batch.partition, tracker.lastDelivered + 1 - tracker.committed);
          // Started here, in the settlement's turn, so a close() right after it waits for it.
          // The next batch does not wait for it: a commit round trip would hold every message behind it.
          // (A failed commit logs itself; the offsets go out again with the next one.)
          if (lane.commits.due()) lane.commits.start().catch(() => {});
        }
        // The partition is no longer held: later batches of it may go on.
        if (unheld) for (const p of flow.pumps) if (p !== pump) p();
      };
      // A slot freed by either lane may let this batch go on.
      const stopSlots = this.slots.onRelease(pump);
      flow.pumps.add(pump);
      const stopListening = (): void => {
        stopSlots();
        flow.pumps.delete(pump);
      };
      const done = (i: number): void => {
        const key = records[i]!.key;
        if (key !== null) {
          const k = key.toString('latin1');
          const queue = byKey.get(k)!;
          queue.shift();
          const waiter = queue[0];
          if (waiter !== undefined) {
            // Its batch's pump hands it out on the release below.
            waiter.run.waiting--;
            waiter.run.ready.push(waiter.i);
          } else byKey.delete(k);
        }
        tracker.acked(records[i]!.offset);
        histories?.delete(i);
        states?.delete(i);
        remaining--;
        // A count batch filled mid-batch commits now, up to the first record not done.
        if (remaining > 0 && tracker.shouldCommit() && !this.closed) lane.commits.commitIfDue();
        // Wakes the pumps of this batch, of later ones and of the other lane.
        this.slots.release();
      };
      const later = (i: number, attempt: number, delayMs: number): void => {
        // Counted until it is handed out again (in pump), so no new record of the partition overtakes it.
        flow.holding++;
        this.slots.release();
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          if (this.closed) return;
          resumed.push([i, attempt]);
          pump();
        }, delayMs);
        this.timers.add(timer);
      };
      /** The first hand-out of record i (a slot taken). */
      const first = (i: number): void => {
        if (states === undefined) return dispatch(i, 1);
        const r = records[i]!;
        const state = readRetryState(r.headers);
        if (typeof state === 'string') {
          queueMicrotask(() => malformed(i, state));
          return;
        }
        if (state.subscription !== this.sub.name) {
          this.log.warn({ subscription: this.sub.name, of: state.subscription, topic: batch.topic, offset: r.offset }, 'Skipped a record of another subscription in the retry topic');
          queueMicrotask(() => done(i));
          return;
        }
        states.set(i, state);
        const wait = Math.min(MAX_TIMER_MS, state.notBefore - Date.now());
        // Not due yet: the retry partition holds until it is.
        if (wait > 0) later(i, state.attempt, wait);
        else dispatch(i, state.attempt);
      };
      const malformed = (i: number, problem: string): void => {
        if (this.closed) return;
        const r = records[i]!;
        const at = { topic: batch.topic, partition: batch.partition, offset: r.offset };
        this.deadLetter(at, r.key, r.value, r.headers, 1, `malformed retry record: ${problem}`, undefined).then(
          () => done(i),
          (err: unknown) => {
            this.log.warn({ subscription: this.sub.name, topic: batch.topic, offset: r.offset, err: (err as Error).message }, 'Dead-lettering a malformed retry record failed; trying again');
            const timer = setTimeout(() => {
              this.timers.delete(timer);
              malformed(i, problem);
            }, MALFORMED_RETRY_MS);
            this.timers.add(timer);
          },
        );
      };
      /**
       * Every settlement of record i but ack and defer: retry (in place or through the retry
       * topic) or dead-letter. One function for the batch, not a closure per delivery.
       */
      const failed = async (
        i: number,
        attempt: number,
        state: RetryState | undefined,
        source: Source,
        headers: readonly RecordHeader[],
        s: Exclude<Settlement, { kind: 'ack' } | { kind: 'defer' }>,
      ): Promise<SettleResult> => {
        const r = records[i]!;
        let history = histories?.get(i) ?? (state === undefined ? undefined : { ...state.history });
        if (s.kind !== 'dead-letter') {
          const now = Date.now();
          history ??= { firstFailureAt: now, lastFailureAt: now, lastReason: '' };
          history.lastFailureAt = now;
          history.lastReason = settlementReason(s);
        }
        if (history !== undefined) (histories ??= new Map()).set(i, history);
        const decision =
          s.kind === 'dead-letter'
            ? undefined
            : this.sub.retryPolicy.decide(attempt, s.kind === 'retry' ? HandlerOutcome.Retry : s.timeout ? HandlerOutcome.Timeout : HandlerOutcome.Failure, s.kind === 'retry' ? s.delayMs : undefined);
        if (decision?.action === 'retry') {
          if (this.sub.retry.mode === 'in-place') {
            later(i, decision.nextAttempt, decision.delayMs);
            return 'retried';
          }
          const origin = state?.origin ?? { topic: batch.topic, partition: batch.partition, offset: r.offset, timestampMs: r.timestamp };
          const next: RetryState = { subscription: this.sub.name, attempt: decision.nextAttempt, notBefore: Date.now() + decision.delayMs, origin, history: history! };
          try {
            await this.deadLetters.append(this.sub.retry.topic, { key: r.key, value: r.value, headers: retryRecordHeaders(r.headers, next) });
          } catch (err) {
            this.log.warn({ subscription: this.sub.name, source, retryTopic: this.sub.retry.topic, err: (err as Error).message }, 'Writing to the retry topic failed; retrying in place');
            later(i, decision.nextAttempt, decision.delayMs);
            return 'retried';
          }
          done(i);
          return 'retried';
        }
        const reason = s.kind === 'dead-letter' ? s.reason : `max attempts (${this.sub.retryPolicy.maxAttempts}) reached`;
        await this.deadLetter(source, r.key, r.value, headers, attempt, reason, history);
        done(i);
        return 'dead-lettered';
      };
      const dispatch = (i: number, attempt: number): void => {
        const r = records[i]!;
        const state = states?.get(i);
        const source: Source = state === undefined ? { topic: batch.topic, partition: batch.partition, offset: r.offset } : originSource(state);
        // A retried record shows the app its own headers and timestamp; the attempt and origin are fields of the delivery.
        const headers = state === undefined ? r.headers : withoutRetryHeaders(r.headers);
        const message = deliveryMessage(source, r.key, r.value, headers, state === undefined ? r.timestamp : state.origin.timestampMs, attempt);
        let settled = false;
        send({
          message,
          // An ack settles at once, without a promise: the per-message path.
          settle: (s: Settlement): SettleResult | Promise<SettleResult> => {
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
            return failed(i, attempt, state, source, headers, s);
          },
        });
      };
      pump();
    });
  }

  private async deadLetter(
    at: Source,
    key: Buffer | null,
    value: Buffer | null,
    headers: readonly RecordHeader[],
    attempts: number,
    reason: string,
    history: FailureHistory | undefined,
  ): Promise<void> {
    const origin = { subscription: this.sub.name, topic: at.topic ?? '', partition: at.partition, offset: at.offset, attempts, reason, history };
    await this.deadLetters.write(this.sub.deadLetterTopic, { key, value, headers }, origin);
    this.log.info({ subscription: this.sub.name, topic: at.topic, partition: at.partition, offset: at.offset, attempts, reason, deadLetterTopic: this.sub.deadLetterTopic }, 'Dead-lettered');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.commitTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const l of this.lanes) {
      l.endBatch?.();
      l.endBatch = undefined;
    }
    // Every done prefix, a batch cut short included, is committed while the partitions are still owned.
    await Promise.all(this.lanes.map((l) => l.commits.start()));
    await Promise.all(this.lanes.map((l) => l.consumer.close()));
  }
}
