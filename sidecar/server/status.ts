import { Metadata, status } from '@grpc/grpc-js';
import type { ServerErrorResponse } from '@grpc/grpc-js';
import { ErrorCode, toKmqError } from '../../lib/errors.js';
import type { KmqError } from '../../lib/errors.js';

/**
 * The one table from KmqError codes to gRPC status codes. Exhaustive: a new
 * ErrorCode does not compile until it has a row here.
 */
export const grpcStatusOf: Readonly<Record<ErrorCode, status>> = {
  [ErrorCode.Unknown]: status.UNKNOWN,
  [ErrorCode.CorruptMessage]: status.INVALID_ARGUMENT,
  [ErrorCode.MessageTooLarge]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.UnknownTopic]: status.NOT_FOUND,
  [ErrorCode.UnknownPartition]: status.NOT_FOUND,
  [ErrorCode.TopicExists]: status.ALREADY_EXISTS,
  [ErrorCode.InvalidTopic]: status.INVALID_ARGUMENT,
  [ErrorCode.InvalidPartitions]: status.INVALID_ARGUMENT,
  [ErrorCode.InvalidConfig]: status.INVALID_ARGUMENT,
  [ErrorCode.InvalidRequest]: status.INVALID_ARGUMENT,
  [ErrorCode.UnsupportedVersion]: status.UNIMPLEMENTED,
  [ErrorCode.OffsetOutOfRange]: status.OUT_OF_RANGE,
  [ErrorCode.OutOfOrderSequence]: status.ABORTED,
  [ErrorCode.InvalidProducerEpoch]: status.ABORTED,
  [ErrorCode.UnknownMember]: status.ABORTED,
  [ErrorCode.UnknownGroup]: status.NOT_FOUND,
  [ErrorCode.GroupNotEmpty]: status.FAILED_PRECONDITION,
  [ErrorCode.NotPartitionOwner]: status.ABORTED,
  [ErrorCode.RequestTimedOut]: status.DEADLINE_EXCEEDED,
  [ErrorCode.StorageError]: status.UNAVAILABLE,
  [ErrorCode.BrokerNotAvailable]: status.UNAVAILABLE,
  [ErrorCode.ConnectionClosed]: status.UNAVAILABLE,
  [ErrorCode.NotLeader]: status.UNAVAILABLE,
  [ErrorCode.NotEnoughReplicas]: status.UNAVAILABLE,
  [ErrorCode.FencedLeaderEpoch]: status.UNAVAILABLE,
  [ErrorCode.ShuttingDown]: status.UNAVAILABLE,
  [ErrorCode.UnknownExchange]: status.NOT_FOUND,
  [ErrorCode.UnknownQueue]: status.NOT_FOUND,
  [ErrorCode.UnknownBinding]: status.NOT_FOUND,
  [ErrorCode.ExchangeExists]: status.ALREADY_EXISTS,
  [ErrorCode.InvalidExchange]: status.INVALID_ARGUMENT,
  [ErrorCode.InvalidRoutingPattern]: status.INVALID_ARGUMENT,
  [ErrorCode.InvalidRoutingKey]: status.INVALID_ARGUMENT,
  [ErrorCode.InvalidDelivery]: status.FAILED_PRECONDITION,
  [ErrorCode.Unroutable]: status.FAILED_PRECONDITION,
  [ErrorCode.UnknownSubscription]: status.NOT_FOUND,
  [ErrorCode.UnknownDelivery]: status.NOT_FOUND,
  [ErrorCode.SubscriptionBusy]: status.FAILED_PRECONDITION,
};

/** Trailer naming the KmqError code behind a status, for apps that want more than the gRPC code. */
export const ERROR_CODE_TRAILER = 'x-kmq-error-code';

/** The gRPC status of anything thrown: KmqErrors by the table, anything else UNKNOWN. */
export function grpcStatusFor(err: KmqError): status {
  return grpcStatusOf[err.code] ?? status.UNKNOWN;
}

/**
 * A status error for a call's callback or a stream's 'error' event: the table's
 * code, the error's message, and the KmqError code (plus `trailers`) as trailers.
 */
export function toServiceError(raw: unknown, trailers: Record<string, string> = {}): ServerErrorResponse {
  const err = toKmqError(raw);
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_TRAILER, err.code);
  for (const k in trailers) metadata.set(k, trailers[k]!);
  return Object.assign(new Error(err.message), { code: grpcStatusFor(err), details: err.message, metadata });
}
