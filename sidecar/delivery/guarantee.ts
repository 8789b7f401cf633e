import { oneOfSetting } from '../../client/settings.js';

/** The delivery guarantee of a subscription. */
export const DeliveryGuarantee = {
  /** Ack on receipt, before handling: a failed or interrupted handler loses the message. */
  AtMostOnce: 'at-most-once',
  /** Ack after the handler succeeded; redeliver otherwise, so a message may be handled twice. */
  AtLeastOnce: 'at-least-once',
  /** At-least-once plus consumer idempotency: a key recorded as processed is not handled again. */
  EffectivelyOnce: 'effectively-once',
} as const;
export type DeliveryGuarantee = (typeof DeliveryGuarantee)[keyof typeof DeliveryGuarantee];

export const DEFAULT_GUARANTEE: DeliveryGuarantee = DeliveryGuarantee.AtLeastOnce;

const ALL: readonly DeliveryGuarantee[] = Object.values(DeliveryGuarantee);

/** When the source is acknowledged relative to the handler. */
export const AckTiming = {
  BeforeHandler: 'before',
  AfterHandler: 'after',
} as const;
export type AckTiming = (typeof AckTiming)[keyof typeof AckTiming];

/** When to ack the source under `g`: before the handler runs (at-most-once) or after it succeeded. */
export function ackTiming(g: DeliveryGuarantee): AckTiming {
  return g === DeliveryGuarantee.AtMostOnce ? AckTiming.BeforeHandler : AckTiming.AfterHandler;
}

/** Whether a failed handler is retried and finally dead-lettered; under at-most-once the message is already acked and dropped. */
export function retriesFailures(g: DeliveryGuarantee): boolean {
  return g !== DeliveryGuarantee.AtMostOnce;
}

/** Whether deliveries go through the processed-key store (IdempotentHandler). */
export function usesIdempotency(g: DeliveryGuarantee): boolean {
  return g === DeliveryGuarantee.EffectivelyOnce;
}

/** Validates a configured guarantee; undefined gives the default. Throws InvalidConfig naming `setting`. */
export function compileGuarantee(value: unknown, setting = 'subscription.guarantee'): DeliveryGuarantee {
  return oneOfSetting(setting, value, DEFAULT_GUARANTEE, ALL);
}
