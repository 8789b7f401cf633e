import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../lib/errors.js';
import { AckTiming, DeliveryGuarantee, ackTiming, compileGuarantee, retriesFailures, usesIdempotency } from './guarantee.js';

describe('delivery guarantees', () => {
  it('acks before the handler only under at-most-once', () => {
    expect(ackTiming(DeliveryGuarantee.AtMostOnce)).toBe(AckTiming.BeforeHandler);
    expect(ackTiming(DeliveryGuarantee.AtLeastOnce)).toBe(AckTiming.AfterHandler);
    expect(ackTiming(DeliveryGuarantee.EffectivelyOnce)).toBe(AckTiming.AfterHandler);
  });

  it('retries failures unless at-most-once, and checks idempotency only under effectively-once', () => {
    expect([DeliveryGuarantee.AtMostOnce, DeliveryGuarantee.AtLeastOnce, DeliveryGuarantee.EffectivelyOnce].map((g) => [retriesFailures(g), usesIdempotency(g)])).toEqual([
      [false, false],
      [true, false],
      [true, true],
    ]);
  });

  it('defaults to at-least-once and refuses an unknown value, naming the setting', () => {
    expect(compileGuarantee(undefined)).toBe('at-least-once');
    expect(compileGuarantee('effectively-once')).toBe('effectively-once');
    expect(() => compileGuarantee('exactly-once', 'subscriptions[0].guarantee')).toThrow(
      expect.objectContaining({ code: ErrorCode.InvalidConfig, message: expect.stringContaining('subscriptions[0].guarantee') }),
    );
  });
});
