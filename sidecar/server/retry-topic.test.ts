import { describe, expect, it } from 'vitest';
import type { RecordHeader } from '../../client/index.js';
import { RetryHeader } from './headers.js';
import { originSource, readRetryState, retryRecordHeaders, withoutRetryHeaders } from './retry-topic.js';
import type { RetryState } from './retry-topic.js';

const h = (key: string, value: string): RecordHeader => ({ key, value: Buffer.from(value) });

const state: RetryState = {
  subscription: 'billing',
  attempt: 3,
  notBefore: 1_700_000_000_400,
  origin: { topic: 'orders', partition: 4, offset: 1234, timestampMs: 1_699_999_999_000 },
  history: { firstFailureAt: 1_700_000_000_000, lastFailureAt: 1_700_000_000_200, lastReason: 'handler timeout (30000 ms)' },
};

describe('retry-topic records', () => {
  it('round-trips the retry state through headers, keeping the record’s own headers first', () => {
    const own = [h('order-id', '7'), h('x-kmq-idempotency-key', 'k1')];
    const headers = retryRecordHeaders(own, state);
    expect(headers.slice(0, 2)).toEqual(own);
    expect(readRetryState(headers)).toEqual(state);
    expect(withoutRetryHeaders(headers)).toEqual(own);
    expect(originSource(state)).toEqual({ topic: 'orders', partition: 4, offset: 1234 });
  });

  it('replaces the retry headers of an earlier trip instead of stacking them', () => {
    const once = retryRecordHeaders([h('a', '1')], state);
    const twice = retryRecordHeaders(once, { ...state, attempt: 4, notBefore: state.notBefore + 800 });
    expect(twice.filter((x) => x.key === RetryHeader.attempt)).toHaveLength(1);
    expect(readRetryState(twice)).toMatchObject({ attempt: 4, notBefore: state.notBefore + 800, origin: state.origin });
    expect(withoutRetryHeaders(twice)).toEqual([h('a', '1')]);
  });

  it('says what is wrong with a malformed retry record', () => {
    const good = retryRecordHeaders([], state);
    const without = (key: string): RecordHeader[] => good.filter((x) => x.key !== key);
    const replaced = (key: string, value: string): RecordHeader[] => good.map((x) => (x.key === key ? h(key, value) : x));
    expect(readRetryState([])).toBe('header x-kmq-retry-subscription is missing');
    expect(readRetryState(without(RetryHeader.sourceTopic))).toBe('header x-kmq-retry-source-topic is missing');
    expect(readRetryState(without(RetryHeader.attempt))).toBe('header x-kmq-retry-attempt is missing');
    expect(readRetryState(replaced(RetryHeader.attempt, '0'))).toBe('header x-kmq-retry-attempt is not an integer >= 1 ("0")');
    expect(readRetryState(replaced(RetryHeader.notBefore, 'soon'))).toBe('header x-kmq-retry-not-before is not an integer >= 0 ("soon")');
    expect(readRetryState(replaced(RetryHeader.sourceOffset, '-1'))).toBe('header x-kmq-retry-source-offset is not an integer >= 0 ("-1")');
    // The last failure's reason may be empty.
    expect(readRetryState(without(RetryHeader.lastFailureReason))).toMatchObject({ history: { lastReason: '' } });
  });
});
