/**
 * The public contracts of exchange routing (AMQP 0-9-1 semantics, as RabbitMQ
 * implements them). See README.md in this folder for the behaviour of each type.
 */

/** `direct`: exact key; `topic`: dot-separated words with `*` and `#`; `fanout`: every binding; `headers`: message headers. */
export type ExchangeType = 'direct' | 'topic' | 'fanout' | 'headers';

export const EXCHANGE_TYPES: readonly ExchangeType[] = ['direct', 'topic', 'fanout', 'headers'];

/** Where a routed message goes: a queue or a topic, by name. */
export interface Destination {
  kind: 'queue' | 'topic';
  name: string;
}

/** An exchange as declared. Immutable once created. */
export interface ExchangeSpec {
  /** 1-200 characters of [a-zA-Z0-9._-]; the empty name is reserved for the default exchange. */
  name: string;
  type: ExchangeType;
  /** Receives the message when no binding matches (RabbitMQ's alternate exchange, pointed at a queue or topic). */
  alternate?: Destination;
  /** Informational for the broker: an internal exchange takes no publishes from clients. */
  internal?: boolean;
}

/**
 * A binding from an exchange to a destination. Its identity is all of its fields:
 * the same binding declared twice is one binding.
 */
export interface BindingSpec {
  exchange: string;
  destination: Destination;
  /** The exact key (direct), the pattern (topic), ignored for matching by fanout and headers. At most 255 bytes. */
  routingKey: string;
  /** Headers exchanges only: the headers to compare with the message's. */
  headers?: Record<string, string>;
  /** Headers exchanges only: `all` (default) needs every header equal, `any` needs one. */
  match?: 'all' | 'any';
}

/**
 * The outcome of routing one message. `destinations` is deduplicated, sorted by
 * kind then name, and may be shared between calls: never mutate it.
 */
export interface RouteResult {
  readonly destinations: readonly Destination[];
  /** No binding matched and no (existing) alternate took the message. */
  readonly unroutable: boolean;
  /** No binding matched and the exchange's alternate destination was used. */
  readonly usedAlternate: boolean;
}

/**
 * Durable storage of exchanges and bindings. The registry calls it one operation
 * at a time (mutations are serialised) and updates its memory only after the call
 * resolves, so a rejected call leaves the registry as it was. `deleteExchange` is
 * called only after every binding of that exchange has been deleted.
 */
export interface RoutingStore {
  load(): Promise<{ exchanges: ExchangeSpec[]; bindings: BindingSpec[] }>;
  putExchange(e: ExchangeSpec): Promise<void>;
  deleteExchange(name: string): Promise<void>;
  putBinding(b: BindingSpec): Promise<void>;
  deleteBinding(b: BindingSpec): Promise<void>;
}

/** Longest routing key and binding key, in UTF-8 bytes (AMQP short string). */
export const MAX_ROUTING_KEY_BYTES = 255;
