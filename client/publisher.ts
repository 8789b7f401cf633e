import { ErrorCode, KmqError } from '../lib/errors.js';
import { Apis } from '../protocol/apis.js';
import { Acks } from '../protocol/gen/kmq/broker/v1/broker.js';
import type { PublishRequest, PublishResponse } from '../protocol/gen/kmq/broker/v1/queues.js';
import { encodeBatch } from '../protocol/record-batch.js';
import type { RecordHeader, RecordInput } from '../protocol/record-batch.js';
import type { Cluster } from './cluster.js';
import { invalidSetting } from './settings.js';

export type { PublishResponse, RoutedTo } from '../protocol/gen/kmq/broker/v1/queues.js';

/** Publish through an exchange: it routes to every bound queue or topic that matches. */
export interface ExchangeTarget {
  exchange: string;
  /** Matched by direct and topic exchanges. Default ''. */
  routingKey?: string;
  /** Matched by headers exchanges (not added to the records: give them per message for that). */
  headers?: Record<string, string>;
  /** Unroutable messages fail the call instead of being dropped. Default false. */
  mandatory?: boolean;
}

/** Publish straight to one queue. */
export interface QueueTarget {
  queue: string;
}

export type PublishTarget = ExchangeTarget | QueueTarget;

/** One message. Strings are sent as UTF-8. */
export interface PublishMessage {
  key?: string | Buffer | null;
  value: string | Buffer | null;
  headers?: Record<string, string | Buffer>;
  /** ms since the epoch; default now. */
  timestamp?: number;
}

export interface PublisherOptions {
  /** leader (default): the broker has appended; all: every in-sync replica has. */
  acks?: 'leader' | 'all';
}

function toBuffer(v: string | Buffer): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

function toRecord(m: PublishMessage): RecordInput {
  const r: RecordInput = { key: m.key == null ? null : toBuffer(m.key), value: m.value === null ? null : toBuffer(m.value) };
  if (m.headers !== undefined) {
    const hs: RecordHeader[] = [];
    for (const k in m.headers) hs.push({ key: k, value: toBuffer(m.headers[k]!) });
    r.headers = hs;
  }
  if (m.timestamp !== undefined) r.timestamp = m.timestamp;
  return r;
}

/** The request header for `target`, checked. */
export function publishRequest(target: PublishTarget, acks: Acks): PublishRequest {
  if ('queue' in target) {
    if (typeof target.queue !== 'string' || target.queue === '') throw invalidSetting('queue', 'must be a non-empty string', target.queue);
    if ('exchange' in target) throw invalidSetting('target', 'give an exchange or a queue, not both', target);
    return { exchange: '', routingKey: '', headers: {}, mandatory: false, queue: target.queue, acks };
  }
  if (typeof target.exchange !== 'string' || target.exchange === '') throw invalidSetting('exchange', 'must be a non-empty string', target.exchange);
  return {
    exchange: target.exchange,
    routingKey: target.routingKey ?? '',
    headers: target.headers ?? {},
    mandatory: target.mandatory ?? false,
    queue: '',
    acks,
  };
}

/**
 * Publishes to exchanges and queues. Each call sends one RecordBatch in one Publish
 * request and resolves with where the broker routed it; retriable failures are retried
 * (a retry after a lost answer may publish the batch twice).
 */
export class Publisher {
  private readonly acks: Acks;

  constructor(private readonly cluster: Cluster, options: PublisherOptions = {}) {
    const acks = options.acks ?? 'leader';
    if (acks !== 'leader' && acks !== 'all') throw invalidSetting('acks', 'must be leader or all', acks);
    this.acks = acks === 'all' ? Acks.ACKS_ALL : Acks.ACKS_LEADER;
  }

  async publish(target: PublishTarget, messages: readonly PublishMessage[]): Promise<PublishResponse> {
    const req = publishRequest(target, this.acks);
    if (messages.length === 0) throw new KmqError(ErrorCode.InvalidRequest, 'Nothing to publish: no messages given', {}, { retriable: false });
    const records = new Array<RecordInput>(messages.length);
    for (let i = 0; i < messages.length; i++) records[i] = toRecord(messages[i]!);
    const batch = encodeBatch(records);
    const res = await this.cluster.call(() => this.cluster.queueConnection(), Apis.Publish, req, [batch]);
    return res.header;
  }
}
