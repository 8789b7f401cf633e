import { ErrorCode, KmqError } from '../../../lib/errors.js';

/** Condition reasons of the broker-backed kinds that do not come from an error code. */
export const BrokerReason = {
  /** The broker could not be reached or did not answer. */
  BrokerUnavailable: 'BrokerUnavailable',
  /** The spec asks for a change the broker has no call for (more partitions, a queue setting). */
  NotAppliedByBroker: 'NotAppliedByBroker',
  /** DeleteIfEmpty on an object that still holds messages. */
  NotEmpty: 'NotEmpty',
  /** A binding names an Exchange that does not exist on the broker (yet). */
  ExchangeNotFound: 'ExchangeNotFound',
  /** The broker object is in place and matches the spec. */
  Ready: 'Ready',
} as const;

const UNAVAILABLE: ReadonlySet<string> = new Set([
  ErrorCode.BrokerNotAvailable,
  ErrorCode.ConnectionClosed,
  ErrorCode.RequestTimedOut,
  ErrorCode.ShuttingDown,
  ErrorCode.NotLeader,
]);

/** True when `err` says the broker could not be reached or did not answer, rather than refusing a request. */
export function isBrokerUnavailable(err: unknown): boolean {
  if (err instanceof KmqError) return UNAVAILABLE.has(err.code);
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|EPIPE)$/.test(code);
}

/** True when `err` is a KmqError with one of `codes`. */
export function hasCode(err: unknown, ...codes: ErrorCode[]): boolean {
  return err instanceof KmqError && codes.includes(err.code);
}

/** The message of an error, for a condition. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
