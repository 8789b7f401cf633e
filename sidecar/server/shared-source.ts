import type { Delivery, KmqClient, QueueConsumer } from '../../client/index.js';
import type { Logger } from '../../lib/logger.js';
import type { CompiledSubscription } from '../config.js';
import { HandlerOutcome } from '../delivery/retry-policy.js';
import { deliveryMessage } from './delivery-source.js';
import type { DeliverySource, OutboundDelivery, Settlement } from './delivery-source.js';

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

  private async settle(d: Delivery, s: Settlement): Promise<void> {
    if (s.kind === 'ack') return d.ack();
    if (s.kind === 'dead-letter') return d.reject(s.reason);
    const decision = this.sub.retryPolicy.decide(d.deliveryCount, HandlerOutcome.Retry, s.delayMs);
    if (decision.action === 'retry') return d.nack(decision.delayMs);
    this.log.info({ subscription: this.sub.name, partition: d.partition, offset: d.offset, attempts: d.deliveryCount }, 'Max attempts reached; dead-lettering');
    return d.reject(`max attempts (${this.sub.retryPolicy.maxAttempts}) reached`);
  }

  close(): Promise<void> {
    return this.consumer.close();
  }
}
