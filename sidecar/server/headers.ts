/**
 * Record headers the sidecar writes. Names starting with `x-kmq-` are reserved:
 * an app cannot set them through a publish's headers.
 */
export const RESERVED_HEADER_PREFIX = 'x-kmq-';

/** The producer's idempotency key: the app's, or a UUID the sidecar generated. */
export const IDEMPOTENCY_KEY_HEADER = 'x-kmq-idempotency-key';

/** Dead letters of ordered subscriptions: where the message came from and why it was dead-lettered. */
export const DeadLetterHeader = {
  subscription: 'x-kmq-dlq-subscription',
  sourceTopic: 'x-kmq-dlq-source-topic',
  sourcePartition: 'x-kmq-dlq-source-partition',
  sourceOffset: 'x-kmq-dlq-source-offset',
  attempts: 'x-kmq-dlq-attempts',
  reason: 'x-kmq-dlq-reason',
  deadLetteredAt: 'x-kmq-dlq-dead-lettered-at',
  /** When the first attempt failed (ISO 8601); absent when dead-lettered at the first attempt by request. */
  firstFailureAt: 'x-kmq-dlq-first-failure-at',
  /** When the last attempt failed (ISO 8601). */
  lastFailureAt: 'x-kmq-dlq-last-failure-at',
  /** Why the last attempt failed (handler timeout, the app's retry, unreachable app...). */
  lastFailureReason: 'x-kmq-dlq-last-failure-reason',
} as const;
