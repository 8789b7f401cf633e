import { describe, expect, it } from 'vitest';
import { DestinationKind } from '../../protocol/gen/kmq/broker/v1/queues.js';
import { CliError } from '../output.js';
import { deadLetterQueryFrom } from './dlq.js';
import { bindingFrom } from './exchange.js';
import { PublishTally, publishTargetFrom } from './publish.js';
import { queueConfigFrom, settleActionOf } from './queue.js';
import { collect, parseDestination, parseHeaderFlags, parseTime } from './routing-args.js';

describe('--header', () => {
  it('splits at the first = and keeps empty values', () => {
    expect(parseHeaderFlags('--header', ['a=1', 'b=x=y', 'c='])).toEqual({ a: '1', b: 'x=y', c: '' });
    expect(parseHeaderFlags('--header', undefined)).toEqual({});
    expect(collect('b=2', collect('a=1', []))).toEqual(['a=1', 'b=2']);
  });

  it('refuses a missing key, a missing = and a repeated key', () => {
    expect(() => parseHeaderFlags('--header', ['=1'])).toThrow(CliError);
    expect(() => parseHeaderFlags('--header', ['novalue'])).toThrow(/key=value/);
    expect(() => parseHeaderFlags('--header', ['a=1', 'a=2'])).toThrow(/twice/);
  });
});

describe('--alternate', () => {
  it('takes queue:NAME, topic:NAME or a bare queue name', () => {
    expect(parseDestination('--alternate', 'queue:left')).toEqual({ kind: 'queue', name: 'left' });
    expect(parseDestination('--alternate', 'topic:audit')).toEqual({ kind: 'topic', name: 'audit' });
    expect(parseDestination('--alternate', 'plain')).toEqual({ kind: 'queue', name: 'plain' });
  });

  it('refuses other kinds and empty names', () => {
    for (const bad of ['exchange:x', 'queue:', '', ':x']) expect(() => parseDestination('--alternate', bad)).toThrow(CliError);
  });
});

describe('--from / --to', () => {
  it('reads ISO times and epoch ms', () => {
    expect(parseTime('--from', '2026-01-31T12:00:00Z')).toBe(Date.UTC(2026, 0, 31, 12));
    expect(parseTime('--from', '1700000000000')).toBe(1_700_000_000_000);
    expect(parseTime('--from', undefined)).toBeUndefined();
    expect(() => parseTime('--from', 'yesterday')).toThrow(/ISO/);
  });

  it('builds the dead-letter filter', () => {
    expect(deadLetterQueryFrom({ header: ['reason=timeout'], max: '5', from: '1000', to: '2000' })).toEqual({ maxCount: 5, headers: { reason: 'timeout' }, fromTime: 1000, toTime: 2000 });
    expect(deadLetterQueryFrom({ header: [] })).toEqual({});
    expect(() => deadLetterQueryFrom({ header: [], from: '2000', to: '1000' })).toThrow(/after/);
    expect(() => deadLetterQueryFrom({ header: [], max: '0' })).toThrow(/--max/);
  });
});

describe('kmq queue', () => {
  it('maps create flags to the queue config, only those given', () => {
    expect(queueConfigFrom({})).toEqual({});
    expect(
      queueConfigFrom({ partitions: '3', maxDeliveries: '2', deadLetterQueue: 'jobs-dlq', lockTimeoutMs: '5000', perKeyOrdering: true, retentionMs: '-1' }),
    ).toEqual({ partitions: 3, maxDeliveries: 2, deadLetterQueue: 'jobs-dlq', lockTimeoutMs: 5000, perKeyOrdering: true, retentionMs: -1 });
    expect(() => queueConfigFrom({ partitions: '0' })).toThrow(/--partitions/);
    expect(() => queueConfigFrom({ lockTimeoutMs: 'soon' })).toThrow(/--lock-timeout-ms/);
  });

  it('settles with --ack by default and with exactly one action', () => {
    expect(settleActionOf({})).toBe('ack');
    expect(settleActionOf({ nack: true })).toBe('nack');
    expect(settleActionOf({ reject: true })).toBe('reject');
    expect(() => settleActionOf({ ack: true, reject: true })).toThrow(/--ack and --reject/);
  });
});

describe('kmq bind', () => {
  it('binds a queue by default, a topic with --to-topic, with headers and match', () => {
    expect(bindingFrom('ex', 'q1', { header: [], match: 'all', routingKey: 'a.*' })).toEqual({
      exchange: 'ex',
      destination: { kind: 'queue', name: 'q1' },
      routingKey: 'a.*',
      headers: {},
      match: 'all',
    });
    expect(bindingFrom('ex', 't1', { header: ['x=1', 'y=2'], match: 'any', toTopic: true })).toMatchObject({
      destination: { kind: 'topic', name: 't1' },
      routingKey: '',
      headers: { x: '1', y: '2' },
      match: 'any',
    });
    expect(() => bindingFrom('ex', 'q', { header: [], match: 'some' })).toThrow(/--match/);
  });
});

describe('kmq publish', () => {
  it('targets an exchange or a queue, never both', () => {
    expect(publishTargetFrom({ exchange: 'ex', routingKey: 'k', header: ['a=1'], mandatory: true })).toEqual({ exchange: 'ex', routingKey: 'k', headers: { a: '1' }, mandatory: true });
    expect(publishTargetFrom({ queue: 'q', header: [] })).toEqual({ queue: 'q' });
    expect(() => publishTargetFrom({ header: [] })).toThrow(/--exchange or --queue/);
    expect(() => publishTargetFrom({ exchange: 'e', queue: 'q', header: [] })).toThrow(/--exchange or --queue/);
    expect(() => publishTargetFrom({ queue: 'q', routingKey: 'k', header: [] })).toThrow(/go with --exchange/);
    expect(() => publishTargetFrom({ queue: 'q', mandatory: true, header: [] })).toThrow(/go with --exchange/);
    expect(publishTargetFrom({ queue: 'q', header: ['a=1'] })).toEqual({ queue: 'q' });
  });

  it('tallies messages per destination and dropped ones', () => {
    const t = new PublishTally();
    const q = { kind: DestinationKind.DESTINATION_QUEUE, name: 'a' };
    t.add({ routed: [{ destination: q, partition: 0, baseOffset: 0, duplicates: 0 }, { destination: { kind: DestinationKind.DESTINATION_TOPIC, name: 'b' }, partition: 1, baseOffset: 5, duplicates: 0 }], dropped: false, duplicates: 0 }, 10);
    t.add({ routed: [{ destination: q, partition: 1, baseOffset: 3, duplicates: 0 }], dropped: false, duplicates: 0 }, 4);
    t.add({ routed: [], dropped: true, duplicates: 0 }, 2);
    expect(t.summary()).toBe('Published 16 messages: routed to queue:a 14, topic:b 10; dropped 2');
  });
});
