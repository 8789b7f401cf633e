import type { Delivery, KmqClient, QueueConsumer } from '../../client/index.js';
import type { Logger } from '../../lib/logger.js';
import type { CompiledSubscription } from '../config.js';
import { HandlerOutcome } from '../delivery/retry-policy.js';
import { deliveryMessage, settlementReason } from './delivery-source.js';
import type { DeliverySource, OutboundDelivery, SettleResult, Settlement } from './delivery-source.js';

/**
 * A shared subscription: a member of the queue's built-in shared group, or of the
 * topic's shared group named after the subscription. The broker's prefetch bounds
 * what is in flight; ack → accept, retry → release after a delay (a later
 * attempt may reach any consumer), dead_letter → reject to the queue's
 * dead-letter queue. A retry past the policy's max attempts rejects instead.
 */
export class SharedSource implements DeliverySource {
  private readonly consumer: QueueConsumer;

  constructor(
    client: KmqClient,
    private readonly sub: CompiledSubscription,
    maxInFlight: number,
    private readonly log: Logger,
  ) {
    const group = sub.source.kind === 'topic' ? sub.name : '';
    this.consumer = client.queueConsumer({ queue: sub.source.name, group, prefetch: maxInFlight, mode: 'push' });
  }

  async run(send: (d: OutboundDelivery) => void): Promise<void> {
    const source = this.sub.source.kind === 'topic' ? { topic: this.sub.source.name } : { queue: this.sub.source.name };
    for await (const d of this.consumer.deliveries()) {
      const message = deliveryMessage({ ...source, partition: d.partition, offset: d.offset }, d.key, d.value, d.headers, d.timestamp, d.deliveryCount);
      send({ message, settle: (s) => this.settle(d, s) });
    }
  }

  private async settle(d: Delivery, s: Settlement): Promise<SettleResult> {
    if (s.kind === 'ack') {
      await d.ack();
      return 'acked';
    }
    if (s.kind === 'dead-letter') {
      await d.reject(s.reason);
      return 'dead-lettered';
    }
    if (s.kind === 'defer') {
      await d.nack(s.delayMs);
      return 'deferred';
    }
    const outcome = s.kind === 'retry' ? HandlerOutcome.Retry : s.timeout ? HandlerOutcome.Timeout : HandlerOutcome.Failure;
    const decision = this.sub.retryPolicy.decide(d.deliveryCount, outcome, s.kind === 'retry' ? s.delayMs : undefined);
    if (decision.action === 'retry') {
      await d.nack(decision.delayMs);
      return 'retried';
    }
    const reason = `max attempts (${this.sub.retryPolicy.maxAttempts}) reached; last failure: ${settlementReason(s)}`;
    this.log.info({ subscription: this.sub.name, partition: d.partition, offset: d.offset, attempts: d.deliveryCount, reason }, 'Max attempts reached; dead-lettering');
    await d.reject(reason);
    return 'dead-lettered';
  }

  close(): Promise<void> {
    return this.consumer.close();
  }
}
