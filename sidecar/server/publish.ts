import { ErrorCode, KmqError, destinationFromWire } from '../../client/index.js';
import type { KmqClient, Producer, ProducerRecord, Publisher, PublishTarget, RecordHeader } from '../../client/index.js';
import type { CompiledSidecarOptions } from '../config.js';
import type { Destination, Placement, PublishRequest, PublishResponse } from '../gen/kmq/sidecar/v1/sidecar.js';
import { IDEMPOTENCY_KEY_HEADER, RESERVED_HEADER_PREFIX } from './headers.js';
import { newIdempotencyKey } from './idempotency-keys.js';

const MAX_IDEMPOTENCY_KEY = 256;
const MAX_NAME = 249;

function invalid(message: string, context: Record<string, unknown> = {}): KmqError {
  return new KmqError(ErrorCode.InvalidRequest, message, context, { retriable: false });
}

function checkName(field: string, name: string): void {
  if (name === '') throw invalid(`${field} must not be empty`);
  if (name.length > MAX_NAME) throw invalid(`${field} is ${name.length} characters; at most ${MAX_NAME}`);
}

/** The one destination of a request, checked: exactly one of topic, queue, exchange. */
function destinationOf(d: Destination | undefined, at: string): { topic: string } | PublishTarget {
  if (d === undefined) throw invalid(`${at}destination is required: set topic, queue or exchange`);
  const set = (d.topic !== undefined ? 1 : 0) + (d.queue !== undefined ? 1 : 0) + (d.exchange !== undefined ? 1 : 0);
  if (set === 0) throw invalid(`${at}destination is empty: set topic, queue or exchange`);
  if (d.topic !== undefined) {
    checkName(`${at}destination.topic`, d.topic);
    return { topic: d.topic };
  }
  if (d.queue !== undefined) {
    checkName(`${at}destination.queue`, d.queue);
    return { queue: d.queue };
  }
  const ex = d.exchange!;
  checkName(`${at}destination.exchange.name`, ex.name);
  return { exchange: ex.name, routingKey: ex.routingKey };
}

/**
 * Publishes app messages through the broker client: topics through one shared
 * Producer (batched, idempotent), queues and exchanges through a Publisher. Every
 * message carries an idempotency key as the record header x-kmq-idempotency-key,
 * set once before the client sees the record, so the client's retries after a
 * broker timeout resend it with the same key. (The broker does not yet drop
 * repeated keys: that dedupe window is a later step; producer sequence numbers
 * already dedupe the client's own topic retries.)
 */
export class PublishRouter {
  private readonly producer: Producer;
  private readonly publisher: Publisher;

  constructor(client: KmqClient, private readonly options: CompiledSidecarOptions) {
    // Linger 0: a lone Publish goes out at once; under load records batch while requests are in flight.
    this.producer = client.producer({ lingerMs: 0, maxRequestBytes: Math.max(1024 * 1024, options.maxPayloadBytes + 64 * 1024) });
    this.publisher = client.publisher();
  }

  /**
   * Checks the request (throws KmqError: InvalidRequest for a malformed one,
   * MessageTooLarge for an oversize payload) and returns its idempotency key.
   * `at` prefixes field names in messages ("message." in a stream).
   */
  validate(req: PublishRequest, at = ''): string {
    destinationOf(req.destination, at);
    const max = this.options.maxPayloadBytes;
    if (req.payload.length > max) {
      throw new KmqError(ErrorCode.MessageTooLarge, `${at}payload is ${req.payload.length} bytes, over the sidecar's maxPayloadBytes (${max})`, {}, { retriable: false });
    }
    for (const k in req.headers) {
      if (k === '') throw invalid(`${at}headers has an empty header name`);
      if (k.toLowerCase().startsWith(RESERVED_HEADER_PREFIX)) {
        throw invalid(`${at}headers["${k}"]: names starting with "${RESERVED_HEADER_PREFIX}" are reserved${k === IDEMPOTENCY_KEY_HEADER ? '; set idempotency_key instead' : ''}`);
      }
    }
    if (req.delayMs !== undefined && req.delayMs > this.options.maxPublishDelayMs) {
      throw invalid(`${at}delay_ms is ${req.delayMs}, over the sidecar's maxPublishDelayMs (${this.options.maxPublishDelayMs})`);
    }
    const key = req.idempotencyKey;
    if (key === undefined) return newIdempotencyKey();
    if (key === '' || key.length > MAX_IDEMPOTENCY_KEY) throw invalid(`${at}idempotency_key must be 1-${MAX_IDEMPOTENCY_KEY} characters (got ${key.length})`);
    return key;
  }

  /**
   * The topic of a request validate() accepted that can go out with others in one
   * producer call (publishTopicRun): a topic destination without a delay.
   */
  batchableTopic(req: PublishRequest): string | undefined {
    const d = req.destination;
    return d?.topic !== undefined && (req.delayMs === undefined || req.delayMs === 0) ? d.topic : undefined;
  }

  /**
   * Publishes requests validate() accepted, all to `topic` with no delay, in one
   * producer call: one promise for the run instead of one per message. Resolves
   * with one response per request, in order; the run fails or succeeds as a whole.
   */
  async publishTopicRun(topic: string, reqs: readonly PublishRequest[], idempotencyKeys: readonly string[]): Promise<PublishResponse[]> {
    const records: ProducerRecord[] = new Array<ProducerRecord>(reqs.length);
    for (let i = 0; i < reqs.length; i++) records[i] = topicRecord(reqs[i]!, idempotencyKeys[i]!);
    const mds = await this.producer.send(topic, records);
    const out: PublishResponse[] = new Array<PublishResponse>(mds.length);
    // Every record went to `topic`: one destination object for the run.
    const destination = { topic };
    for (let i = 0; i < mds.length; i++) {
      const md = mds[i]!;
      out[i] = { idempotencyKey: idempotencyKeys[i]!, placements: [{ destination, partition: md.partition, offset: md.offset }] };
    }
    return out;
  }

  /**
   * Publishes a message validate() accepted, with `idempotencyKey`; resolves once
   * the broker has appended it. A delayed publish waits first, and publishes
   * nothing when `signal` aborts during the wait.
   */
  async publish(req: PublishRequest, idempotencyKey: string, signal?: AbortSignal): Promise<PublishResponse> {
    const dest = destinationOf(req.destination, '');
    if (req.delayMs !== undefined && req.delayMs > 0) await delay(req.delayMs, signal);
    if ('topic' in dest) {
      const md = await this.producer.sendOne(dest.topic, topicRecord(req, idempotencyKey));
      return { idempotencyKey, placements: [{ destination: { topic: md.topic }, partition: md.partition, offset: md.offset }] };
    }
    const headers: Record<string, string> = { ...req.headers, [IDEMPOTENCY_KEY_HEADER]: idempotencyKey };
    // Headers exchanges match on the message's headers.
    const target = 'exchange' in dest ? { ...dest, headers: req.headers } : dest;
    const res = await this.publisher.publish(target, [{ key: req.key ?? null, value: req.payload, headers }]);
    const placements: Placement[] = [];
    for (const r of res.routed) {
      const d = destinationFromWire(r.destination);
      if (d === undefined) continue;
      placements.push({ destination: d.kind === 'topic' ? { topic: d.name } : { queue: d.name }, partition: r.partition, offset: r.baseOffset });
    }
    return { idempotencyKey, placements };
  }
}

/** The record of a topic publish: the app's headers behind the idempotency key. */
function topicRecord(req: PublishRequest, idempotencyKey: string): ProducerRecord {
  const headers: RecordHeader[] = [{ key: IDEMPOTENCY_KEY_HEADER, value: Buffer.from(idempotencyKey) }];
  for (const k in req.headers) headers.push({ key: k, value: Buffer.from(req.headers[k]!, 'utf8') });
  return { key: req.key ?? null, value: req.payload, headers };
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(new KmqError(ErrorCode.ShuttingDown, 'The publish was cancelled during its delay; nothing was published', {}, { retriable: false }));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new KmqError(ErrorCode.ShuttingDown, 'The publish was cancelled during its delay; nothing was published', {}, { retriable: false }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
