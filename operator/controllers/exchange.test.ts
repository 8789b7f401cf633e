import { describe, expect, it } from 'vitest';
import type { ExchangeInfo } from '../../client/queue-admin.js';
import { DestinationKind, ExchangeType } from '../../protocol/gen/kmq/broker/v1/queues.js';
import { alternateDestination, exchangeDrift, exchangeFigures } from './exchange.js';

function info(type: ExchangeType, alternate?: string): ExchangeInfo {
  return {
    name: 'shop.notifications',
    type,
    alternate: alternate === undefined ? undefined : { kind: DestinationKind.DESTINATION_QUEUE, name: alternate },
    bindings: [{ exchange: 'shop.notifications', destination: { kind: DestinationKind.DESTINATION_QUEUE, name: 'shop.emails' }, routingKey: 'email.#', headers: {}, matchAny: false }],
    routed: 7,
    unroutable: 2,
  };
}

describe('Exchange', () => {
  it('the alternate is namespaced', () => {
    expect(alternateDestination('shop', { kind: 'Queue', name: 'unrouted' })).toEqual({ kind: 'queue', name: 'shop.unrouted' });
    expect(alternateDestination('shop', { kind: 'Topic', name: 'lost' })).toEqual({ kind: 'topic', name: 'shop.lost' });
    expect(alternateDestination('shop', undefined)).toBeUndefined();
  });

  it('drift: another type or alternate on the broker is reported', () => {
    const alt = alternateDestination('shop', { kind: 'Queue', name: 'unrouted' });
    expect(exchangeDrift('topic', alt, info(ExchangeType.EXCHANGE_TOPIC, 'shop.unrouted'))).toEqual([]);
    expect(exchangeDrift('topic', undefined, info(ExchangeType.EXCHANGE_TOPIC, 'shop.unrouted'))).toEqual([
      'spec.alternate is none but the exchange has queue:shop.unrouted: the broker cannot change an exchange\'s alternate',
    ]);
    expect(exchangeDrift('direct', alt, info(ExchangeType.EXCHANGE_TOPIC, 'shop.unrouted'))).toEqual(['spec.type is direct but the exchange is topic']);
  });

  it('figures', () => {
    expect(exchangeFigures('shop.notifications', info(ExchangeType.EXCHANGE_TOPIC))).toEqual({ brokerName: 'shop.notifications', bindings: 1, routed: 7, unroutable: 2 });
  });
});
