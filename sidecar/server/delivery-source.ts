import type { RecordHeader } from '../../client/index.js';
import type { Delivery, Source } from '../gen/kmq/sidecar/v1/sidecar.js';
import { IDEMPOTENCY_KEY_HEADER } from './headers.js';

/** What the app answered for one delivery. */
export type Settlement = { kind: 'ack' } | { kind: 'retry'; delayMs: number | undefined } | { kind: 'dead-letter'; reason: string };

/**
 * One message handed to the app, waiting for its settlement. `settle` resolves
 * once the source has acted on it (acked, scheduled the retry, dead-lettered).
 */
export interface OutboundDelivery {
  /** The Delivery message without its id (the Consume stream assigns ids). */
  readonly message: Omit<Delivery, 'deliveryId'>;
  settle(s: Settlement): Promise<void>;
}

/**
 * Where a Consume stream's deliveries come from: an ordered consumer group or a
 * shared group. run() calls `send` for each message (never more than the stream's
 * max in flight unsettled at once) until close(); it rejects on a fatal error.
 */
export interface DeliverySource {
  run(send: (d: OutboundDelivery) => void): Promise<void>;
  /** Stops receiving; unsettled deliveries go back to the broker (delivered again later). */
  close(): Promise<void>;
}

/** Record headers as the app sees them: UTF-8 strings, the first of repeated names. */
export function headerMap(headers: readonly RecordHeader[]): { [key: string]: string } {
  const out: { [key: string]: string } = {};
  for (const h of headers) if (!(h.key in out)) out[h.key] = h.value === null ? '' : h.value.toString('utf8');
  return out;
}

/** The Delivery message of a record (without its delivery id). */
export function deliveryMessage(
  source: Source,
  key: Buffer | null,
  value: Buffer | null,
  headers: readonly RecordHeader[],
  timestampMs: number,
  attempt: number,
): Omit<Delivery, 'deliveryId'> {
  const map = headerMap(headers);
  return {
    payload: value ?? Buffer.alloc(0),
    key: key ?? undefined,
    headers: map,
    attempt,
    source,
    timestampMs,
    idempotencyKey: map[IDEMPOTENCY_KEY_HEADER] ?? '',
  };
}
