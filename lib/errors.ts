/**
 * The root of every error kmq raises. `code` is stable (scripts and the wire
 * protocol depend on it); `retriable` says whether the same request may succeed
 * later; context fields name what the error is about.
 */
export const ErrorCode = {
  Unknown: 'UNKNOWN',
  CorruptMessage: 'CORRUPT_MESSAGE',
  MessageTooLarge: 'MESSAGE_TOO_LARGE',
  UnknownTopic: 'UNKNOWN_TOPIC',
  UnknownPartition: 'UNKNOWN_PARTITION',
  TopicExists: 'TOPIC_EXISTS',
  InvalidTopic: 'INVALID_TOPIC',
  InvalidPartitions: 'INVALID_PARTITIONS',
  InvalidConfig: 'INVALID_CONFIG',
  InvalidRequest: 'INVALID_REQUEST',
  UnsupportedVersion: 'UNSUPPORTED_VERSION',
  OffsetOutOfRange: 'OFFSET_OUT_OF_RANGE',
  OutOfOrderSequence: 'OUT_OF_ORDER_SEQUENCE',
  InvalidProducerEpoch: 'INVALID_PRODUCER_EPOCH',
  UnknownMember: 'UNKNOWN_MEMBER',
  UnknownGroup: 'UNKNOWN_GROUP',
  GroupNotEmpty: 'GROUP_NOT_EMPTY',
  NotPartitionOwner: 'NOT_PARTITION_OWNER',
  RequestTimedOut: 'REQUEST_TIMED_OUT',
  StorageError: 'STORAGE_ERROR',
  BrokerNotAvailable: 'BROKER_NOT_AVAILABLE',
  ConnectionClosed: 'CONNECTION_CLOSED',
  NotLeader: 'NOT_LEADER',
  ShuttingDown: 'SHUTTING_DOWN',
  UnknownExchange: 'UNKNOWN_EXCHANGE',
  UnknownQueue: 'UNKNOWN_QUEUE',
  UnknownBinding: 'UNKNOWN_BINDING',
  ExchangeExists: 'EXCHANGE_EXISTS',
  InvalidExchange: 'INVALID_EXCHANGE',
  InvalidRoutingPattern: 'INVALID_ROUTING_PATTERN',
  InvalidRoutingKey: 'INVALID_ROUTING_KEY',
  InvalidDelivery: 'INVALID_DELIVERY',
  Unroutable: 'UNROUTABLE',
  UnknownSubscription: 'UNKNOWN_SUBSCRIPTION',
  UnknownDelivery: 'UNKNOWN_DELIVERY',
  SubscriptionBusy: 'SUBSCRIPTION_BUSY',
  NotEnoughReplicas: 'NOT_ENOUGH_REPLICAS',
  FencedLeaderEpoch: 'FENCED_LEADER_EPOCH',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const retriableCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.RequestTimedOut,
  ErrorCode.BrokerNotAvailable,
  ErrorCode.ConnectionClosed,
  ErrorCode.NotLeader,
  ErrorCode.NotEnoughReplicas,
  ErrorCode.FencedLeaderEpoch,
  ErrorCode.ShuttingDown,
  ErrorCode.StorageError,
]);

export interface ErrorContext {
  topic?: string;
  partition?: number;
  group?: string;
  broker?: string;
  offset?: number;
  [key: string]: unknown;
}

export class KmqError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown; retriable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KmqError';
    this.code = code;
    this.retriable = options?.retriable ?? retriableCodes.has(code);
    this.context = context;
  }
}

export function isRetriable(err: unknown): boolean {
  return err instanceof KmqError && err.retriable;
}

/** Wraps anything thrown into a KmqError, keeping KmqErrors as they are. */
export function toKmqError(err: unknown, fallback: ErrorCode = ErrorCode.Unknown, context: ErrorContext = {}): KmqError {
  if (err instanceof KmqError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new KmqError(fallback, message, context, { cause: err });
}
