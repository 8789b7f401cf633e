import { enumOf, nameRef, object, stringMap } from './schema.js';
import type { JsonSchema } from './schema.js';

/**
 * A binding of an Exchange (same namespace, same BrokerCluster) to the Queue or
 * Topic that declares it: messages published to the exchange that match are
 * routed here. Bindings live in the destination's spec, so deleting a Queue or
 * Topic takes its bindings with it.
 */
export interface Binding {
  /** The Exchange's name. */
  exchange: string;
  /** direct: the exact key; topic: a pattern (`*` one word, `#` zero or more). Default '' (fanout ignores it). */
  routingKey?: string;
  /** headers exchanges: the headers to match. */
  headers?: Record<string, string>;
  /** headers exchanges: every header must match (all, the default) or one (any). */
  match?: 'all' | 'any';
}

export const MAX_BINDINGS = 64;

export const bindingSchema: JsonSchema = object<Binding>(
  'A binding of an Exchange to this object.',
  {
    exchange: nameRef('The Exchange (same namespace) to bind to.'),
    routingKey: { type: 'string', description: 'direct: the exact key; topic: a pattern of dot-separated words where * is one word and # zero or more. Default \'\'.', maxLength: 255 },
    headers: stringMap('headers exchanges: the headers a message must carry (name: value).', 32, 1024),
    match: enumOf('headers exchanges: all (default) or any of the headers must match.', ['all', 'any']),
  },
  {
    required: ['exchange'],
    'x-kubernetes-validations': [
      { rule: '!(has(self.routingKey) && has(self.headers))', message: 'give routingKey (direct and topic exchanges) or headers (headers exchanges), not both' },
      { rule: '!has(self.match) || has(self.headers)', message: 'match applies only to bindings with headers' },
    ],
  },
);

export function bindingsSchema(of: string): JsonSchema {
  return {
    type: 'array',
    description: `Exchanges that route to this ${of}.`,
    maxItems: MAX_BINDINGS,
    items: bindingSchema,
    'x-kubernetes-list-type': 'atomic',
  };
}
