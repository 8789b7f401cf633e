import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../lib/errors.js';
import { Acks } from '../protocol/gen/kmq/broker/v1/broker.js';
import { DestinationKind, ExchangeType } from '../protocol/gen/kmq/broker/v1/queues.js';
import { encodeBatch } from '../protocol/record-batch.js';
import { publishRequest } from './publisher.js';
import { bindingToWire, deadLetterFilterToWire, decodeDeadLetters, destinationFromWire, exchangeTypeName, exchangeTypeToWire } from './queue-admin.js';

function batch(baseOffset: number, values: string[]): Buffer {
  return encodeBatch(values.map((v) => ({ value: Buffer.from(v), headers: [{ key: 'kmq.source', value: Buffer.from('jobs') }] })), { baseOffset });
}

describe('decodeDeadLetters', () => {
  it('pairs positions with their records, skipping the unlisted ones, across partitions with equal offsets', () => {
    // Partition 0 holds offsets 10..14, partition 1 offsets 12..13: offset 12 exists in both.
    const payload = Buffer.concat([batch(10, ['a10', 'a11', 'a12', 'a13', 'a14']), batch(12, ['b12', 'b13'])]);
    const positions = [
      { dlq: 'jobs-dlq', partition: 0, offset: 11 },
      { dlq: 'jobs-dlq', partition: 0, offset: 13 },
      { dlq: 'jobs-dlq', partition: 1, offset: 12 },
    ];
    const letters = decodeDeadLetters(positions, payload);
    expect(letters.map((l) => [l.position.partition, l.position.offset, l.record.value?.toString(), l.record.headers[0]?.key])).toEqual([
      [0, 11, 'a11', 'kmq.source'],
      [0, 13, 'a13', 'kmq.source'],
      [1, 12, 'b12', 'kmq.source'],
    ]);
    expect(decodeDeadLetters([], Buffer.alloc(0))).toEqual([]);
  });

  it('fails when a listed position has no record', () => {
    expect(() => decodeDeadLetters([{ dlq: 'd', partition: 0, offset: 99 }], batch(0, ['x']))).toThrow(expect.objectContaining({ code: ErrorCode.CorruptMessage }));
  });
});

describe('wire mapping', () => {
  it('maps exchange types, destinations and bindings both ways', () => {
    expect(exchangeTypeToWire('headers')).toBe(ExchangeType.EXCHANGE_HEADERS);
    expect(exchangeTypeName(ExchangeType.EXCHANGE_TOPIC)).toBe('topic');
    expect(() => exchangeTypeToWire('match' as 'topic')).toThrow(/type/);
    expect(destinationFromWire({ kind: DestinationKind.DESTINATION_TOPIC, name: 't' })).toEqual({ kind: 'topic', name: 't' });
    expect(destinationFromWire({ kind: DestinationKind.DESTINATION_QUEUE, name: '' })).toBeUndefined();
    expect(bindingToWire({ exchange: 'x', destination: { kind: 'queue', name: 'q' }, headers: { a: '1' }, match: 'any' })).toEqual({
      exchange: 'x',
      destination: { kind: DestinationKind.DESTINATION_QUEUE, name: 'q' },
      routingKey: '',
      headers: { a: '1' },
      matchAny: true,
    });
    expect(() => bindingToWire({ exchange: 'x', destination: { kind: 'queue', name: '' } })).toThrow(/destination.name/);
  });

  it('fills the dead-letter filter with zero for no bound and checks it', () => {
    expect(deadLetterFilterToWire({})).toEqual({ headers: {}, fromTime: 0, toTime: 0, maxCount: 0 });
    expect(deadLetterFilterToWire({ headers: { a: 'b' }, fromTime: 5, toTime: 9, maxCount: 3 })).toEqual({ headers: { a: 'b' }, fromTime: 5, toTime: 9, maxCount: 3 });
    expect(() => deadLetterFilterToWire({ maxCount: -1 })).toThrow(/maxCount/);
    expect(() => deadLetterFilterToWire({ fromTime: 1.5 })).toThrow(/fromTime/);
  });

  it('builds publish headers for an exchange or a queue', () => {
    expect(publishRequest({ exchange: 'x', routingKey: 'a.b', headers: { h: '1' }, mandatory: true }, Acks.ACKS_LEADER)).toEqual({
      exchange: 'x',
      routingKey: 'a.b',
      headers: { h: '1' },
      mandatory: true,
      queue: '',
      acks: Acks.ACKS_LEADER,
    });
    expect(publishRequest({ queue: 'q' }, Acks.ACKS_ALL)).toMatchObject({ exchange: '', queue: 'q', acks: Acks.ACKS_ALL });
    expect(() => publishRequest({ exchange: '' }, Acks.ACKS_LEADER)).toThrow(/exchange/);
    expect(() => publishRequest({ queue: 'q', exchange: 'x' } as { queue: string }, Acks.ACKS_LEADER)).toThrow(/not both/);
  });
});
