import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConsumeResponse, PublishStreamRequest, PublishStreamResponse } from '../gen/kmq/sidecar/v1/sidecar.js';
import type { Delivery, Destination, PublishRequest, PublishResponse, PublishStreamResult } from '../gen/kmq/sidecar/v1/sidecar.js';
import { decodePublishStreamRequest, encodeConsumeResponse, encodePublishStreamResponse } from './wire-codec.js';

// Strings of every kind: ASCII, other BMP characters, astral ones, lone surrogates.
const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 10 }), fc.string({ unit: 'binary', maxLength: 10 }), fc.constantFrom('', 'x-kmq-idempotency-key', '7f3c2d1e-0000-4000-8000-123456789abc', '\ud800', 'a\udfffb', 'é'.repeat(70), 'x'.repeat(200)));
const bytes = fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b));
const u32 = fc.oneof(fc.constant(0), fc.nat(300), fc.nat({ max: 0xffffffff }));
const u53 = fc.oneof(fc.constant(0), fc.nat(100_000), fc.maxSafeNat());
const headers = fc.dictionary(text, text, { maxKeys: 4 }).map((h) => ({ ...h }));
const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });

const destination: fc.Arbitrary<Destination> = fc.record({
  topic: opt(text),
  queue: opt(text),
  exchange: opt(fc.record({ name: text, routingKey: text })),
});

const delivery: fc.Arbitrary<Delivery> = fc.record({
  deliveryId: fc.oneof(fc.nat().map(String), text),
  payload: bytes,
  key: opt(bytes),
  headers,
  attempt: u32,
  source: opt(fc.record({ topic: opt(text), queue: opt(text), partition: u32, offset: u53 })),
  timestampMs: u53,
  idempotencyKey: text,
});

const publishResponse: fc.Arbitrary<PublishResponse> = fc.record({
  idempotencyKey: text,
  placements: fc.array(fc.record({ destination: opt(destination), partition: u32, offset: u53 }), { maxLength: 3 }),
});
const publishError = fc.record({ code: u32, message: text });
const result: fc.Arbitrary<PublishStreamResult> = fc.record({ id: u53, ok: opt(publishResponse), error: opt(publishError) });

const publishRequest: fc.Arbitrary<PublishRequest> = fc.record({
  destination: opt(destination),
  key: opt(bytes),
  payload: bytes,
  headers,
  idempotencyKey: opt(text),
  delayMs: opt(u32),
});

const generated = (b: Uint8Array): Buffer => Buffer.from(b);

describe('wire codec', () => {
  it('encodes ConsumeResponse deliveries byte for byte as the generated encoder', () => {
    const response: fc.Arbitrary<ConsumeResponse> = fc.record({
      started: fc.constant(undefined),
      delivery: opt(delivery),
      deliveries: opt(fc.record({ deliveries: fc.array(delivery, { maxLength: 5 }) })),
    });
    fc.assert(
      fc.property(response, (m) => {
        expect(encodeConsumeResponse(m).equals(generated(ConsumeResponse.encode(m).finish()))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('encodes PublishStreamResponse results byte for byte as the generated encoder', () => {
    const response: fc.Arbitrary<PublishStreamResponse> = fc.record({ id: u53, ok: opt(publishResponse), error: opt(publishError), results: fc.array(result, { maxLength: 5 }) });
    fc.assert(
      fc.property(response, (m) => {
        expect(encodePublishStreamResponse(m).equals(generated(PublishStreamResponse.encode(m).finish()))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('falls back to the generated encoder outside its fast path (started, negative offsets, huge ids)', () => {
    const started: ConsumeResponse = { started: { subscription: 'billing', maxInFlight: 100 }, delivery: undefined, deliveries: undefined };
    expect(encodeConsumeResponse(started).equals(generated(ConsumeResponse.encode(started).finish()))).toBe(true);
    const d: Delivery = { deliveryId: '1', payload: Buffer.from('x'), key: undefined, headers: {}, attempt: 1, source: { topic: 't', queue: undefined, partition: 0, offset: -5 }, timestampMs: -1, idempotencyKey: '' };
    const negative: ConsumeResponse = { started: undefined, delivery: d, deliveries: undefined };
    expect(encodeConsumeResponse(negative).equals(generated(ConsumeResponse.encode(negative).finish()))).toBe(true);
    const big: PublishStreamResponse = { id: 2 ** 60, ok: undefined, error: undefined, results: [] };
    expect(encodePublishStreamResponse(big).equals(generated(PublishStreamResponse.encode(big).finish()))).toBe(true);
  });

  it('decodes PublishStreamRequest as the generated decoder', () => {
    const request: fc.Arbitrary<PublishStreamRequest> = fc.record({
      id: u53,
      message: opt(publishRequest),
      batch: opt(fc.record({ entries: fc.array(fc.record({ id: u53, message: opt(publishRequest) }), { maxLength: 5 }) })),
    });
    fc.assert(
      fc.property(request, (m) => {
        const wire = generated(PublishStreamRequest.encode(m).finish());
        expect(decodePublishStreamRequest(wire)).toEqual(PublishStreamRequest.decode(wire));
      }),
      { numRuns: 500 },
    );
  });

  it('reads any bytes as the generated decoder does: the same message, or an error from both', () => {
    const outcome = (fn: () => unknown): { ok: unknown } | { threw: true } => {
      try {
        return { ok: fn() };
      } catch {
        return { threw: true };
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (raw) => {
        const b = Buffer.from(raw);
        expect(outcome(() => decodePublishStreamRequest(b))).toEqual(outcome(() => PublishStreamRequest.decode(b)));
      }),
      { numRuns: 2000 },
    );
  });

  it('reads payloads as views of the received message, without copying', () => {
    const m: PublishStreamRequest = {
      id: 0,
      message: undefined,
      batch: { entries: [{ id: 7, message: { destination: { topic: 'orders', queue: undefined, exchange: undefined }, key: undefined, payload: Buffer.from('hello'), headers: { a: 'b' }, idempotencyKey: undefined, delayMs: undefined } }] },
    };
    const wire = generated(PublishStreamRequest.encode(m).finish());
    const payload = decodePublishStreamRequest(wire).batch!.entries[0]!.message!.payload;
    expect(payload.toString()).toBe('hello');
    expect(payload.buffer).toBe(wire.buffer);
  });
});
