import type { RecordHeader } from '../../client/index.js';
import type { Source } from '../gen/kmq/sidecar/v1/sidecar.js';
import type { FailureHistory } from './dead-letter-topics.js';
import { RETRY_HEADER_PREFIX, RetryHeader } from './headers.js';

/**
 * A record waiting in a retry topic: the attempt due next, not before when, where
 * it came from (the original record, also after several trips through the retry
 * topic) and how its attempts failed so far.
 */
export interface RetryState {
  subscription: string;
  /** The attempt number of the next delivery (>= 2). */
  attempt: number;
  /** ms since the epoch. */
  notBefore: number;
  origin: { topic: string; partition: number; offset: number; timestampMs: number };
  history: FailureHistory;
}

/** The headers of a retry-topic record: the record's own (retry headers of an earlier trip dropped) and the retry state. */
export function retryRecordHeaders(own: readonly RecordHeader[], s: RetryState): RecordHeader[] {
  const text = (v: string | number): Buffer => Buffer.from(String(v));
  return [
    ...withoutRetryHeaders(own),
    { key: RetryHeader.subscription, value: text(s.subscription) },
    { key: RetryHeader.attempt, value: text(s.attempt) },
    { key: RetryHeader.notBefore, value: text(s.notBefore) },
    { key: RetryHeader.sourceTopic, value: text(s.origin.topic) },
    { key: RetryHeader.sourcePartition, value: text(s.origin.partition) },
    { key: RetryHeader.sourceOffset, value: text(s.origin.offset) },
    { key: RetryHeader.sourceTimestamp, value: text(s.origin.timestampMs) },
    { key: RetryHeader.firstFailureAt, value: text(s.history.firstFailureAt) },
    { key: RetryHeader.lastFailureAt, value: text(s.history.lastFailureAt) },
    { key: RetryHeader.lastFailureReason, value: text(s.history.lastReason) },
  ];
}

/** The record's own headers: every x-kmq-retry-* header removed (the app sees these). */
export function withoutRetryHeaders(headers: readonly RecordHeader[]): RecordHeader[] {
  return headers.filter((h) => !h.key.startsWith(RETRY_HEADER_PREFIX));
}

/** The retry state of a retry-topic record, or a text saying what is wrong with it. */
export function readRetryState(headers: readonly RecordHeader[]): RetryState | string {
  const get = (k: string): string | undefined => {
    const h = headers.find((x) => x.key === k);
    return h === undefined ? undefined : (h.value?.toString('utf8') ?? '');
  };
  const int = (k: string, min: number): number | string => {
    const v = get(k);
    if (v === undefined) return `header ${k} is missing`;
    const n = Number(v);
    return Number.isSafeInteger(n) && n >= min ? n : `header ${k} is not an integer >= ${min} (${JSON.stringify(v)})`;
  };
  const subscription = get(RetryHeader.subscription);
  const topic = get(RetryHeader.sourceTopic);
  if (subscription === undefined) return `header ${RetryHeader.subscription} is missing`;
  if (topic === undefined || topic === '') return `header ${RetryHeader.sourceTopic} is missing`;
  const attempt = int(RetryHeader.attempt, 1);
  const notBefore = int(RetryHeader.notBefore, 0);
  const partition = int(RetryHeader.sourcePartition, 0);
  const offset = int(RetryHeader.sourceOffset, 0);
  const timestampMs = int(RetryHeader.sourceTimestamp, 0);
  const firstFailureAt = int(RetryHeader.firstFailureAt, 0);
  const lastFailureAt = int(RetryHeader.lastFailureAt, 0);
  for (const v of [attempt, notBefore, partition, offset, timestampMs, firstFailureAt, lastFailureAt]) if (typeof v === 'string') return v;
  return {
    subscription,
    attempt: attempt as number,
    notBefore: notBefore as number,
    origin: { topic, partition: partition as number, offset: offset as number, timestampMs: timestampMs as number },
    history: { firstFailureAt: firstFailureAt as number, lastFailureAt: lastFailureAt as number, lastReason: get(RetryHeader.lastFailureReason) ?? '' },
  };
}

/** The Delivery.source of a retried record: the original record's position. */
export function originSource(s: RetryState): Source {
  return { topic: s.origin.topic, partition: s.origin.partition, offset: s.origin.offset };
}
