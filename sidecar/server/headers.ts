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

/** Names of the retry headers all start with this; they are stripped from what the app sees. */
export const RETRY_HEADER_PREFIX = 'x-kmq-retry-';

/**
 * Records in a retry topic (ordered subscriptions with `retry.mode: topic`): which
 * attempt comes next, when it is due, where the record came from and how its
 * attempts failed. Times are ms since the epoch. The app never sees these: it gets
 * the record's own headers, the attempt in Delivery.attempt and the origin in
 * Delivery.source.
 */
export const RetryHeader = {
  /** The subscription that failed the record; a record of another subscription is skipped. */
  subscription: 'x-kmq-retry-subscription',
  /** The attempt number of the next delivery (2 = the first retry). */
  attempt: 'x-kmq-retry-attempt',
  /** The next delivery is not made before this time. */
  notBefore: 'x-kmq-retry-not-before',
  sourceTopic: 'x-kmq-retry-source-topic',
  sourcePartition: 'x-kmq-retry-source-partition',
  sourceOffset: 'x-kmq-retry-source-offset',
  /** The original record's timestamp, handed to the app as Delivery.timestamp_ms. */
  sourceTimestamp: 'x-kmq-retry-source-timestamp',
  firstFailureAt: 'x-kmq-retry-first-failure-at',
  lastFailureAt: 'x-kmq-retry-last-failure-at',
  lastFailureReason: 'x-kmq-retry-last-failure-reason',
} as const;
