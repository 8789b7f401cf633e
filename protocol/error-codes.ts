import { ErrorCode, KmqError } from '../lib/errors.js';
import type { ErrorContext } from '../lib/errors.js';

/**
 * The one table between KmqError codes and the numbers on the wire. Numbers are
 * part of the protocol: never renumber, only append.
 */
const wireTable: ReadonlyArray<readonly [number, ErrorCode]> = [
  [1, ErrorCode.Unknown],
  [2, ErrorCode.CorruptMessage],
  [3, ErrorCode.MessageTooLarge],
  [4, ErrorCode.UnknownTopic],
  [5, ErrorCode.UnknownPartition],
  [6, ErrorCode.TopicExists],
  [7, ErrorCode.InvalidTopic],
  [8, ErrorCode.InvalidPartitions],
  [9, ErrorCode.InvalidConfig],
  [10, ErrorCode.InvalidRequest],
  [11, ErrorCode.UnsupportedVersion],
  [12, ErrorCode.OffsetOutOfRange],
  [13, ErrorCode.OutOfOrderSequence],
  [14, ErrorCode.InvalidProducerEpoch],
  [15, ErrorCode.UnknownMember],
  [16, ErrorCode.UnknownGroup],
  [17, ErrorCode.GroupNotEmpty],
  [18, ErrorCode.NotPartitionOwner],
  [19, ErrorCode.RequestTimedOut],
  [20, ErrorCode.StorageError],
  [21, ErrorCode.BrokerNotAvailable],
  [22, ErrorCode.ConnectionClosed],
  [23, ErrorCode.NotLeader],
  [24, ErrorCode.ShuttingDown],
  [25, ErrorCode.UnknownExchange],
  [26, ErrorCode.UnknownQueue],
  [27, ErrorCode.UnknownBinding],
  [28, ErrorCode.ExchangeExists],
  [29, ErrorCode.InvalidExchange],
  [30, ErrorCode.InvalidRoutingPattern],
  [31, ErrorCode.InvalidRoutingKey],
  [32, ErrorCode.InvalidDelivery],
  [33, ErrorCode.Unroutable],
  [34, ErrorCode.UnknownSubscription],
  [35, ErrorCode.UnknownDelivery],
  [36, ErrorCode.SubscriptionBusy],
  [37, ErrorCode.NotEnoughReplicas],
  [38, ErrorCode.FencedLeaderEpoch],
];

const toWire = new Map<ErrorCode, number>(wireTable.map(([n, c]) => [c, n]));
const fromWire = new Map<number, ErrorCode>(wireTable);

export const WIRE_NONE = 0;

export function errorCodeToWire(code: ErrorCode): number {
  return toWire.get(code) ?? 1;
}

export function errorCodeFromWire(n: number): ErrorCode {
  return fromWire.get(n) ?? ErrorCode.Unknown;
}

/** Throws the KmqError a response header carries, if any. */
export function throwIfWireError(errorCode: number, message: string, context: ErrorContext = {}): void {
  if (errorCode === WIRE_NONE) return;
  const code = errorCodeFromWire(errorCode);
  throw new KmqError(code, message === '' ? code : message, context);
}
