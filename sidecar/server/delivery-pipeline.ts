import type { Logger } from '../../lib/logger.js';
import type { CompiledSubscription } from '../config.js';
import { DeliveryGuarantee } from '../delivery/guarantee.js';
import { IdempotentHandler } from '../delivery/idempotency.js';
import type { ProcessedKeyStore } from '../delivery/idempotency.js';
import type { Delivery } from '../gen/kmq/sidecar/v1/sidecar.js';
import type { SubscriptionProbe } from '../metrics.js';
import type { OutboundDelivery, SettleResult, Settlement } from './delivery-source.js';

/**
 * Hands one message to the app (a Consume stream or an OnMessage call) and calls
 * `answer` once with the app's answer: ack, retry, dead-letter, or failure (the
 * handler timed out, or the app could not be reached); with undefined when the
 * message can no longer be settled (its stream ended): it stays unsettled and goes
 * back to the broker. A callback, not a promise: this runs once per message.
 */
export type AppTransport = (message: Omit<Delivery, 'deliveryId'>, answer: (s: Settlement | undefined) => void) => void;

const ACK: Settlement = Object.freeze({ kind: 'ack' });

/**
 * The delivery rules of one subscription between its source and the app: when to
 * ack under its guarantee (at-most-once acks before the app sees the message),
 * the processed-key check of effectively-once (a key processed before is acked
 * without reaching the app), metrics, and draining at shutdown (no new deliveries;
 * wait for the ones the app holds).
 */
export class DeliveryPipeline {
  private readonly idempotent: IdempotentHandler | undefined;
  private handling = 0;
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  private warnedNoKey = false;
  /** At-most-once: messages acked and waiting for room with the app (the source's in-flight bound ends at the ack). */
  private readonly slotWaiters: Array<() => void> = [];
  private slotsUsed = 0;

  constructor(
    readonly sub: CompiledSubscription,
    private readonly probe: SubscriptionProbe,
    store: ProcessedKeyStore,
    instance: string,
    private readonly log: Logger,
  ) {
    this.idempotent =
      sub.guarantee === DeliveryGuarantee.EffectivelyOnce
        ? new IdempotentHandler(store, { instance: `${instance}/${sub.name}`, handlerTimeoutMs: sub.retryPolicy.handlerTimeoutMs, processedTtlMs: sub.processedKeyTtlMs })
        : undefined;
  }

  /** Deliveries the app holds now. */
  get inFlight(): number {
    return this.handling;
  }

  /** Takes `d` through the guarantee's steps to the app and settles it at the source. Errors are logged. */
  handle(d: OutboundDelivery, app: AppTransport): void {
    // Draining: left unsettled, the source returns it to the broker at close.
    if (this.draining) return;
    this.handling++;
    if (this.sub.guarantee === DeliveryGuarantee.AtLeastOnce) return this.handleAtLeastOnce(d, app);
    this.run(d, app).then(
      () => this.finished(),
      (err: unknown) => {
        this.settleFailed(d, err);
        this.finished();
      },
    );
  }

  /** The common case without a promise chain of its own: call the app, settle with its answer. */
  private handleAtLeastOnce(d: OutboundDelivery, app: AppTransport): void {
    this.probe.delivered();
    const started = performance.now();
    app(d.message, (answer) => {
      if (answer === undefined) return this.finished();
      this.probe.handled((performance.now() - started) / 1000);
      let r: SettleResult | Promise<SettleResult>;
      try {
        r = d.settle(answer);
      } catch (err) {
        r = Promise.reject(err);
      }
      if (typeof r === 'string') {
        this.count(r);
        return this.finished();
      }
      r.then(
        (x) => {
          this.count(x);
          this.finished();
        },
        (err: unknown) => {
          this.settleFailed(d, err);
          this.finished();
        },
      );
    });
  }

  private settleFailed(d: OutboundDelivery, err: unknown): void {
    this.log.warn({ subscription: this.sub.name, source: d.message.source, err: (err as Error).message }, 'Settlement failed');
  }

  private finished(): void {
    if (--this.handling === 0 && this.idleWaiters.length > 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  /**
   * Takes no new deliveries, then resolves true once the app holds none, or false
   * after graceMs with some still held (they go back to the broker at close).
   */
  drain(graceMs: number): Promise<boolean> {
    this.draining = true;
    if (this.handling === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), graceMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private async run(d: OutboundDelivery, app: AppTransport): Promise<void> {
    if (this.sub.guarantee === DeliveryGuarantee.AtMostOnce) {
      await this.settle(d, ACK);
      // The ack freed the source's slot: the subscription's maxInFlight is kept here instead.
      if (this.slotsUsed >= this.sub.maxInFlight) await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
      else this.slotsUsed++;
      try {
        if (!this.draining) await this.call(d, app);
      } finally {
        const next = this.slotWaiters.shift();
        if (next !== undefined) next();
        else this.slotsUsed--;
      }
      return;
    }
    const idem = this.idempotent;
    if (idem !== undefined) {
      const key = d.message.headers[this.sub.idempotencyKeyHeader];
      if (key !== undefined && key !== '') {
        let answer: Settlement | undefined;
        const out = await idem.handle(
          key,
          async () => (answer = await this.call(d, app)),
          (a) => a?.kind === 'ack',
        );
        switch (out.kind) {
          case 'duplicate':
            this.probe.duplicateSkipped();
            return this.settle(d, ACK);
          case 'busy':
          case 'store-error':
            return this.settle(d, { kind: 'defer', delayMs: out.delayMs });
          case 'handled':
            if (out.completeError !== undefined) this.log.warn({ subscription: this.sub.name, key, err: String(out.completeError) }, 'Recording a processed key failed');
            return this.settle(d, ACK);
          case 'failed':
            if (answer === undefined) return; // the stream ended: left unsettled
            return this.settle(d, answer.kind === 'ack' ? { kind: 'failure', timeout: false, reason: String(out.error) } : answer);
        }
      }
      if (!this.warnedNoKey) {
        this.warnedNoKey = true;
        this.log.warn({ subscription: this.sub.name, header: this.sub.idempotencyKeyHeader }, 'An effectively-once delivery has no idempotency key header; handled at-least-once');
      }
    }
    const answer = await this.call(d, app);
    if (answer !== undefined) await this.settle(d, answer);
  }

  private call(d: OutboundDelivery, app: AppTransport): Promise<Settlement | undefined> {
    this.probe.delivered();
    const started = performance.now();
    return new Promise((resolve) =>
      app(d.message, (answer) => {
        if (answer !== undefined) this.probe.handled((performance.now() - started) / 1000);
        resolve(answer);
      }),
    );
  }

  private async settle(d: OutboundDelivery, s: Settlement): Promise<void> {
    this.count(await d.settle(s));
  }

  private count(r: SettleResult): void {
    if (r === 'acked') this.probe.acked();
    else if (r === 'retried') this.probe.retried();
    else if (r === 'dead-lettered') this.probe.deadLettered();
  }
}
