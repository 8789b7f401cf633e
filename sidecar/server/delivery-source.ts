import type { RecordHeader } from '../../client/index.js';
import type { Delivery, Source } from '../gen/kmq/sidecar/v1/sidecar.js';
import { IDEMPOTENCY_KEY_HEADER } from './headers.js';

/**
 * How one delivery ended. ack: done. retry: the app asked for another attempt
 * (after its delay, else the policy's backoff). failure: the handler failed, timed
 * out or could not be reached (the policy's backoff). dead-letter: now, no more
 * attempts. defer: deliver again after delayMs without using an attempt (another
 * handler holds the idempotency key).
 */
export type Settlement =
  | { kind: 'ack' }
  | { kind: 'retry'; delayMs: number | undefined; reason?: string }
  | { kind: 'failure'; timeout: boolean; reason: string }
  | { kind: 'dead-letter'; reason: string }
  | { kind: 'defer'; delayMs: number };

/** What the source did with a settlement. */
export type SettleResult = 'acked' | 'retried' | 'dead-lettered' | 'deferred';

/**
 * One message handed to the app, waiting for its settlement. `settle` resolves
 * once the source has acted on it (acked, scheduled the retry, dead-lettered).
 * A delivery never settled is returned to the broker by close().
 */
export interface OutboundDelivery {
  /** The Delivery message without its id (the Consume stream assigns ids). */
  readonly message: Omit<Delivery, 'deliveryId'>;
  /** A result at once where the source acts without I/O (an ordered ack), else a promise. */
  settle(s: Settlement): SettleResult | Promise<SettleResult>;
}

/** A short text for a settlement other than ack, for dead-letter history and logs. */
export function settlementReason(s: Settlement): string {
  switch (s.kind) {
    case 'ack':
      return 'acked';
    case 'retry':
      return s.reason ?? 'the app asked for a retry';
    case 'failure':
      return s.reason;
    case 'dead-letter':
      return s.reason;
    case 'defer':
      return 'deferred';
  }
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
