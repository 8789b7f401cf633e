import type { RecordHeader } from '../../protocol/record-batch.js';

/**
 * Headers a dead letter carries, so it can be understood and replayed without its
 * source: where it came from, how often it was tried and why it failed.
 */
export const DeadLetterHeader = {
  source: 'x-kmq-source',
  partition: 'x-kmq-source-partition',
  offset: 'x-kmq-source-offset',
  deliveryCount: 'x-kmq-delivery-count',
  reason: 'x-kmq-reason',
  firstFailure: 'x-kmq-first-failure',
  lastFailure: 'x-kmq-last-failure',
  replayedFrom: 'x-kmq-replayed-from',
} as const;

const PREFIX = 'x-kmq-';

export interface DeadLetterInfo {
  source: string;
  partition: number;
  offset: number;
  deliveryCount: number;
  reason: string;
  firstFailureAt: number;
  lastFailureAt: number;
}

const iso = (ms: number): string => new Date(ms > 0 ? ms : Date.now()).toISOString();

/** The original headers (earlier dead-letter headers replaced) plus this failure's history. */
export function deadLetterHeaders(original: readonly RecordHeader[], info: DeadLetterInfo): RecordHeader[] {
  const kept = original.filter((h) => !h.key.startsWith(PREFIX) || h.key === DeadLetterHeader.replayedFrom);
  const add = (key: string, value: string): void => {
    kept.push({ key, value: Buffer.from(value) });
  };
  add(DeadLetterHeader.source, info.source);
  add(DeadLetterHeader.partition, String(info.partition));
  add(DeadLetterHeader.offset, String(info.offset));
  add(DeadLetterHeader.deliveryCount, String(info.deliveryCount));
  add(DeadLetterHeader.reason, info.reason);
  add(DeadLetterHeader.firstFailure, iso(info.firstFailureAt));
  add(DeadLetterHeader.lastFailure, iso(info.lastFailureAt));
  return kept;
}

/** Headers of a dead letter put back on its source: history dropped, origin noted. */
export function replayHeaders(deadLetter: readonly RecordHeader[], from: string): RecordHeader[] {
  const kept = deadLetter.filter((h) => !h.key.startsWith(PREFIX));
  kept.push({ key: DeadLetterHeader.replayedFrom, value: Buffer.from(from) });
  return kept;
}

export function headerValue(headers: readonly RecordHeader[], key: string): string | undefined {
  for (let i = headers.length - 1; i >= 0; i--) if (headers[i]!.key === key) return headers[i]!.value?.toString('utf8');
  return undefined;
}
