import { ErrorCode, KmqError } from '../lib/errors.js';
import { Off, readInt64 } from '../protocol/batch-header.js';
import { DestinationKind, ExchangeType } from '../protocol/gen/kmq/broker/v1/queues.js';
import type { Binding, DeadLetterFilter, DeadLetterPosition, Destination } from '../protocol/gen/kmq/broker/v1/queues.js';
import { forEachRecord, splitBatches } from '../protocol/record-batch.js';
import type { DecodedRecord } from '../protocol/record-batch.js';
import { invalidSetting } from './settings.js';

export type { DeadLetterPosition, ExchangeInfo, QueueConfig, QueueDepth, QueueInfo } from '../protocol/gen/kmq/broker/v1/queues.js';

/** Exchange types by name, as users write them. */
export type ExchangeTypeName = 'direct' | 'topic' | 'fanout' | 'headers';
export type DestinationKindName = 'queue' | 'topic';

/** Where an exchange routes to: a queue or a topic. */
export interface DestinationRef {
  kind: DestinationKindName;
  name: string;
}

export interface CreateQueueOptions {
  /** Succeed when the queue exists already. Default false. */
  ifNotExists?: boolean;
}

export interface DeleteQueueOptions {
  /** Succeed when the queue does not exist. Default false. */
  ifExists?: boolean;
  /** Refuse when messages are ready or in flight. Default false. */
  ifEmpty?: boolean;
}

export interface CreateExchangeOptions {
  /** Where unroutable messages go instead of being dropped. */
  alternate?: DestinationRef;
  ifNotExists?: boolean;
}

/** A binding of an exchange to a destination. */
export interface BindingSpec {
  exchange: string;
  destination: DestinationRef;
  /** Exact key (direct) or pattern (topic: `*` one word, `#` zero or more). Default ''. */
  routingKey?: string;
  /** Headers exchanges: the headers to match. */
  headers?: Record<string, string>;
  /** Headers exchanges: every header must match (all, the default) or one (any). */
  match?: 'all' | 'any';
}

/** Which dead letters to show, replay or count. */
export interface DeadLetterQuery {
  /** Every header must have this value. */
  headers?: Record<string, string>;
  /** Dead-lettered at or after, ms since the epoch. */
  fromTime?: number;
  /** Dead-lettered before, ms since the epoch. */
  toTime?: number;
  /** At most this many; default all. */
  maxCount?: number;
}

export interface DlqReplayOptions {
  /** Messages per second; default as fast as possible. */
  ratePerSecond?: number;
  /** Count what would be replayed without replaying. */
  dryRun?: boolean;
  /** Deadline of the whole replay, ms; default the request timeout, one hour when rate-limited. */
  timeoutMs?: number;
}

/** One dead letter: where it sits in the dead-letter queue, and the record with its headers. */
export interface DeadLetter {
  position: DeadLetterPosition;
  record: DecodedRecord;
}

const EXCHANGE_TYPES: Record<ExchangeTypeName, ExchangeType> = {
  direct: ExchangeType.EXCHANGE_DIRECT,
  topic: ExchangeType.EXCHANGE_TOPIC,
  fanout: ExchangeType.EXCHANGE_FANOUT,
  headers: ExchangeType.EXCHANGE_HEADERS,
};

export function exchangeTypeToWire(type: ExchangeTypeName): ExchangeType {
  const t = EXCHANGE_TYPES[type];
  if (t === undefined) throw invalidSetting('type', 'must be direct, topic, fanout or headers', type);
  return t;
}

export function exchangeTypeName(type: ExchangeType): ExchangeTypeName | 'unknown' {
  for (const [name, wire] of Object.entries(EXCHANGE_TYPES)) if (wire === type) return name as ExchangeTypeName;
  return 'unknown';
}

export function destinationToWire(d: DestinationRef): Destination {
  if (d.kind !== 'queue' && d.kind !== 'topic') throw invalidSetting('destination.kind', 'must be queue or topic', d.kind);
  if (typeof d.name !== 'string' || d.name === '') throw invalidSetting('destination.name', 'must be a non-empty string', d.name);
  return { kind: d.kind === 'queue' ? DestinationKind.DESTINATION_QUEUE : DestinationKind.DESTINATION_TOPIC, name: d.name };
}

export function destinationFromWire(d: Destination | undefined): DestinationRef | undefined {
  if (d === undefined || d.name === '') return undefined;
  return { kind: d.kind === DestinationKind.DESTINATION_TOPIC ? 'topic' : 'queue', name: d.name };
}

/** `queue:NAME` or `topic:NAME` as users write it; a bare name is a queue. */
export function formatDestination(d: DestinationRef): string {
  return `${d.kind}:${d.name}`;
}

export function bindingToWire(b: BindingSpec): Binding {
  if (typeof b.exchange !== 'string' || b.exchange === '') throw invalidSetting('exchange', 'must be a non-empty string', b.exchange);
  const match = b.match ?? 'all';
  if (match !== 'all' && match !== 'any') throw invalidSetting('match', 'must be all or any', match);
  return {
    exchange: b.exchange,
    destination: destinationToWire(b.destination),
    routingKey: b.routingKey ?? '',
    headers: b.headers ?? {},
    matchAny: match === 'any',
  };
}

export function deadLetterFilterToWire(q: DeadLetterQuery): DeadLetterFilter {
  const time = (setting: string, v: number | undefined): number => {
    if (v === undefined) return 0;
    if (!Number.isSafeInteger(v) || v < 0) throw invalidSetting(setting, 'must be ms since the epoch', v);
    return v;
  };
  const max = q.maxCount ?? 0;
  if (!Number.isInteger(max) || max < 0 || max > 0xffffffff) throw invalidSetting('maxCount', 'must be an integer >= 0', max);
  return { headers: q.headers ?? {}, fromTime: time('fromTime', q.fromTime), toTime: time('toTime', q.toTime), maxCount: max };
}

/**
 * Pairs the positions of a DlqPeek answer with their records. The payload holds, in
 * the order of the positions, the batches that contain them; a batch may hold several
 * consecutive positions of one partition, and records that are not listed are skipped.
 * A batch whose offsets do not cover the next position is skipped as well.
 */
export function decodeDeadLetters(positions: readonly DeadLetterPosition[], payload: Buffer): DeadLetter[] {
  const out: DeadLetter[] = [];
  let i = 0;
  for (const batch of splitBatches(payload, false)) {
    if (i >= positions.length) break;
    const base = readInt64(batch, Off.baseOffset);
    const last = base + batch.readInt32BE(Off.lastOffsetDelta);
    const first = positions[i]!;
    if (first.offset < base || first.offset > last) continue;
    forEachRecord(batch, first.offset, (r) => {
      const p = positions[i];
      if (p === undefined || p.offset !== r.offset || p.dlq !== first.dlq || p.partition !== first.partition) return;
      out.push({ position: p, record: r });
      i++;
    });
  }
  if (i < positions.length) {
    throw new KmqError(ErrorCode.CorruptMessage, `Dead-letter answer lists ${positions.length} positions but holds records for ${i}`, {
      positions: positions.length,
      found: i,
    });
  }
  return out;
}
