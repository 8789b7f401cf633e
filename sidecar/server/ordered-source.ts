import type { Consumer, ConsumerBatch, DecodedRecord, KmqClient } from '../../client/index.js';
import type { Logger } from '../../lib/logger.js';
import type { CompiledSubscription } from '../config.js';
import { HandlerOutcome } from '../delivery/retry-policy.js';
import type { DeadLetterTopics } from './dead-letter-topics.js';
import { deliveryMessage } from './delivery-source.js';
import type { DeliverySource, OutboundDelivery, Settlement } from './delivery-source.js';

/**
 * An ordered subscription: the consumer group named after the subscription,
 * reading its topic partition by partition. One fetched batch at a time is handed
 * out, in offset order, at most maxInFlight records unsettled. A retried record is
 * delivered again in place after its delay, and the partition holds (nothing after
 * it is handed out) until it is done, so per-key order survives retries. A
 * dead-lettered record is written to the dead-letter topic before it counts as
 * done. Once every record of the batch is done, the position after it is
 * committed; a batch cut short by close() is not committed and comes again.
 */
export class OrderedSource implements DeliverySource {
  private readonly consumer: Consumer;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private endBatch: (() => void) | undefined;
  private committing: Promise<void> | undefined;

  constructor(
    client: KmqClient,
    private readonly sub: CompiledSubscription,
    private readonly maxInFlight: number,
    private readonly deadLetters: DeadLetterTopics,
    private readonly log: Logger,
  ) {
    this.consumer = client.consumer({ groupId: sub.name, topics: [sub.source.name], autoCommit: false, fromBeginning: sub.startFrom === 'earliest' });
  }

  async run(send: (d: OutboundDelivery) => void): Promise<void> {
    for await (const batch of this.consumer.batches()) {
      if (this.closed) return;
      await this.handOut(batch, send);
      if (this.closed) return;
    }
  }

  private async commit(batch: ConsumerBatch): Promise<void> {
    try {
      await this.consumer.commit();
    } catch (err) {
      // At-least-once: the batch comes again after a restart; nothing is lost.
      this.log.warn({ subscription: this.sub.name, topic: batch.topic, partition: batch.partition, err: (err as Error).message }, 'Offset commit failed');
    }
  }

  /** Resolves once every record of the batch is done and committed, or at close(). */
  private handOut(batch: ConsumerBatch, send: (d: OutboundDelivery) => void): Promise<void> {
    const records = batch.records;
    let next = 0;
    let inFlight = 0;
    let remaining = records.length;
    let holding = 0;
    return new Promise<void>((resolve) => {
      this.endBatch = resolve;
      const pump = (): void => {
        if (this.closed) return;
        while (holding === 0 && inFlight < this.maxInFlight && next < records.length) dispatch(next++, 1);
        if (remaining === 0) {
          this.endBatch = undefined;
          // Started here, in the settlement's turn, so a close() right after it waits for it.
          this.committing = this.commit(batch);
          this.committing.then(resolve, resolve);
        }
      };
      const done = (): void => {
        remaining--;
        pump();
      };
      const dispatch = (i: number, attempt: number): void => {
        const r = records[i]!;
        inFlight++;
        const message = deliveryMessage({ topic: batch.topic, partition: batch.partition, offset: r.offset }, r.key, r.value, r.headers, r.timestamp, attempt);
        send({
          message,
          settle: async (s: Settlement): Promise<void> => {
            if (s.kind === 'ack') {
              inFlight--;
              done();
              return;
            }
            const decision = s.kind === 'dead-letter' ? undefined : this.sub.retryPolicy.decide(attempt, HandlerOutcome.Retry, s.delayMs);
            if (decision?.action === 'retry') {
              inFlight--;
              holding++;
              const timer = setTimeout(() => {
                this.timers.delete(timer);
                holding--;
                if (this.closed) return;
                dispatch(i, decision.nextAttempt);
                pump();
              }, decision.delayMs);
              this.timers.add(timer);
              return;
            }
            const reason = s.kind === 'dead-letter' ? s.reason : `max attempts (${this.sub.retryPolicy.maxAttempts}) reached`;
            await this.deadLetter(batch, r, attempt, reason);
            inFlight--;
            done();
          },
        });
      };
      pump();
    });
  }

  private async deadLetter(batch: ConsumerBatch, r: DecodedRecord, attempts: number, reason: string): Promise<void> {
    const origin = { subscription: this.sub.name, topic: batch.topic, partition: batch.partition, offset: r.offset, attempts, reason };
    await this.deadLetters.write(this.sub.deadLetterTopic, r, origin);
    this.log.info({ subscription: this.sub.name, topic: batch.topic, partition: batch.partition, offset: r.offset, attempts, deadLetterTopic: this.sub.deadLetterTopic }, 'Dead-lettered');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.endBatch?.();
    this.endBatch = undefined;
    await this.committing;
    await this.consumer.close();
  }
}
