import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { ApiKey, Apis } from '../../protocol/apis.js';
import { errorCodeToWire } from '../../protocol/error-codes.js';
import * as q from '../../protocol/gen/kmq/broker/v1/queues.js';
import type { QueueSettings } from '../cluster/metadata-store.js';
import type { CompiledBrokerOptions } from '../options.js';
import type { ExchangeRegistry } from '../routing/exchange-registry.js';
import type { BindingSpec, Destination, ExchangeType } from '../routing/exchange-types.js';
import { DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_PREFETCH } from '../queues/queue-service.js';
import type { Acquired, AckInput, DeadLetterFilterInput, QueueService, QueueView } from '../queues/queue-service.js';
import type { QueueHost } from '../queues/queue-host.js';
import type { ClientConnection, HandlerResult } from './client-connection.js';

const MAX_SHARE_WAIT_MS = 30_000;
/** A push stream pauses while this much is queued for its client. */
const PUSH_HIGH_WATER_BYTES = 4 * 1024 * 1024;

const exchangeTypes: Record<number, ExchangeType> = {
  [q.ExchangeType.EXCHANGE_DIRECT]: 'direct',
  [q.ExchangeType.EXCHANGE_TOPIC]: 'topic',
  [q.ExchangeType.EXCHANGE_FANOUT]: 'fanout',
  [q.ExchangeType.EXCHANGE_HEADERS]: 'headers',
};
const exchangeTypeNumbers: Record<ExchangeType, q.ExchangeType> = {
  direct: q.ExchangeType.EXCHANGE_DIRECT,
  topic: q.ExchangeType.EXCHANGE_TOPIC,
  fanout: q.ExchangeType.EXCHANGE_FANOUT,
  headers: q.ExchangeType.EXCHANGE_HEADERS,
};
const ackTypes: Record<number, AckInput['type']> = {
  [q.AckType.ACK_ACCEPT]: 'accept',
  [q.AckType.ACK_RELEASE]: 'release',
  [q.AckType.ACK_REJECT]: 'reject',
  [q.AckType.ACK_RENEW]: 'renew',
};

function destinationFrom(d: q.Destination | undefined, what: string): Destination {
  if (d === undefined || d.name === '') throw new KmqError(ErrorCode.InvalidRequest, `${what} needs a destination name`);
  return { kind: d.kind === q.DestinationKind.DESTINATION_TOPIC ? 'topic' : 'queue', name: d.name };
}

function destinationTo(d: Destination): q.Destination {
  return { kind: d.kind === 'topic' ? q.DestinationKind.DESTINATION_TOPIC : q.DestinationKind.DESTINATION_QUEUE, name: d.name };
}

function bindingFrom(b: q.Binding | undefined): BindingSpec {
  if (b === undefined) throw new KmqError(ErrorCode.InvalidRequest, 'Binding missing');
  const spec: BindingSpec = { exchange: b.exchange, destination: destinationFrom(b.destination, 'A binding'), routingKey: b.routingKey };
  if (Object.keys(b.headers).length > 0) spec.headers = b.headers;
  if (b.matchAny) spec.match = 'any';
  return spec;
}

function filterFrom(f: q.DeadLetterFilter | undefined): DeadLetterFilterInput {
  return { headers: f?.headers ?? {}, fromTime: f?.fromTime ?? 0, toTime: f?.toTime ?? 0, maxCount: f?.maxCount ?? 0 };
}

function queueInfo(v: QueueView): q.QueueInfo {
  return {
    name: v.name,
    config: {
      partitions: v.partitions,
      retentionMs: v.retentionMs,
      retentionBytes: v.retentionBytes,
      maxDeliveries: v.settings.maxDeliveries,
      deadLetterQueue: v.settings.deadLetterQueue,
      lockTimeoutMs: v.settings.lockTimeoutMs,
      perKeyOrdering: v.settings.perKeyOrdering,
      maxMessageBytes: v.maxMessageBytes,
    },
    depth: v.depth,
    consumers: v.consumers,
    redeliveries: v.redeliveries,
    deadLettered: v.deadLettered,
    logStartOffset: v.logStartOffset,
    logEndOffset: v.logEndOffset,
  };
}

function fetchAnswer(a: Acquired, endOfStream = false): HandlerResult {
  const header = Apis.ShareFetch.response
    .encode({
      acquired: a.ranges.map((r) => ({ partition: r.partition, firstOffset: r.firstOffset, lastOffset: r.lastOffset, deliveryCount: r.deliveryCount, lockExpiresAt: r.lockExpiresAt })),
      data: a.data.map((d) => ({ partition: d.partition, recordsLength: d.bytes.length })),
      endOfStream,
    })
    .finish();
  return { header, payload: a.data.map((d) => d.bytes) };
}

/**
 * Protocol handlers for queues, shared consumption, exchanges and dead letters:
 * each maps its header message to QueueService / ExchangeRegistry and back.
 */
export class QueueHandlers {
  /** Members seen on each connection: they are gone when it closes. */
  private readonly membersOf = new WeakMap<ClientConnection, Set<string>>();
  private readonly connectionsOf = new Map<string, Set<ClientConnection>>();

  constructor(
    private readonly options: CompiledBrokerOptions,
    /** The queue host; throws a retriable NotLeader where another broker hosts the queues. */
    private readonly host: () => QueueHost,
    /** The queue host if this broker is it (cleanup on disconnect). */
    private readonly hosted: () => QueueHost | undefined,
    private readonly logger: Logger,
  ) {}

  // Looked up per use: hosting moves with the leadership of __share_state (cluster).
  private get queues(): QueueService {
    return this.host().queues;
  }

  private get exchanges(): ExchangeRegistry {
    return this.host().exchanges;
  }

  /** Handles the api, or returns undefined when it is not one of these. */
  dispatch(apiKey: number, header: Buffer, payload: Buffer, conn: ClientConnection, correlationId: number): Promise<HandlerResult | null> | HandlerResult | null | undefined {
    switch (apiKey) {
      case ApiKey.CreateQueue:
        return this.createQueue(Apis.CreateQueue.request.decode(header));
      case ApiKey.DeleteQueue: {
        const r = Apis.DeleteQueue.request.decode(header);
        return this.queues.deleteQueue(r.name, r.ifExists, r.ifEmpty).then(() => ({ header: Apis.DeleteQueue.response.encode({}).finish() }));
      }
      case ApiKey.DescribeQueue:
        return { header: Apis.DescribeQueue.response.encode({ queue: queueInfo(this.queues.describe(Apis.DescribeQueue.request.decode(header).name)) }).finish() };
      case ApiKey.ListQueues:
        return { header: Apis.ListQueues.response.encode({ queues: this.queues.list().map(queueInfo) }).finish() };
      case ApiKey.PurgeQueue:
        return this.queues.purge(Apis.PurgeQueue.request.decode(header).name).then((purged) => ({ header: Apis.PurgeQueue.response.encode({ purged }).finish() }));
      case ApiKey.ShareFetch:
        return this.shareFetch(Apis.ShareFetch.request.decode(header), conn);
      case ApiKey.ShareSubscribe:
        this.subscribe(Apis.ShareSubscribe.request.decode(header), conn, correlationId);
        return null;
      case ApiKey.ShareAck:
        return this.shareAck(Apis.ShareAck.request.decode(header), conn);
      case ApiKey.ShareLeave: {
        const r = Apis.ShareLeave.request.decode(header);
        this.queues.leave(r.memberId);
        // The member may have streams on other connections: they end too.
        for (const c of this.connectionsOf.get(r.memberId) ?? []) this.membersOf.get(c)?.delete(r.memberId);
        this.connectionsOf.delete(r.memberId);
        return { header: Apis.ShareLeave.response.encode({}).finish() };
      }
      case ApiKey.CreateExchange:
        return this.createExchange(Apis.CreateExchange.request.decode(header));
      case ApiKey.DeleteExchange: {
        const r = Apis.DeleteExchange.request.decode(header);
        return this.exchanges.deleteExchange(r.name, { ifExists: r.ifExists }).then(() => ({ header: Apis.DeleteExchange.response.encode({}).finish() }));
      }
      case ApiKey.ListExchanges:
        return { header: Apis.ListExchanges.response.encode({ exchanges: this.listExchanges() }).finish() };
      case ApiKey.Bind:
        return this.exchanges.bind(bindingFrom(Apis.Bind.request.decode(header).binding)).then(() => ({ header: Apis.Bind.response.encode({}).finish() }));
      case ApiKey.Unbind:
        return this.exchanges.unbind(bindingFrom(Apis.Unbind.request.decode(header).binding)).then(() => ({ header: Apis.Unbind.response.encode({}).finish() }));
      case ApiKey.Publish:
        return this.publish(Apis.Publish.request.decode(header), payload);
      case ApiKey.DlqPeek: {
        const r = Apis.DlqPeek.request.decode(header);
        const { positions, data } = this.queues.peek(r.source, filterFrom(r.filter));
        const recordsLength = data.reduce((s, b) => s + b.length, 0);
        return { header: Apis.DlqPeek.response.encode({ positions, recordsLength }).finish(), payload: data };
      }
      case ApiKey.DlqReplay: {
        const r = Apis.DlqReplay.request.decode(header);
        return this.queues.replay(r.source, filterFrom(r.filter), r.ratePerSecond, r.dryRun).then((x) => ({ header: Apis.DlqReplay.response.encode({ replayed: x.replayed, skippedDuplicates: x.skipped }).finish() }));
      }
      case ApiKey.DlqPurge:
        return this.queues.purgeDeadLetters(Apis.DlqPurge.request.decode(header).source).then((purged) => ({ header: Apis.DlqPurge.response.encode({ purged }).finish() }));
      default:
        return undefined;
    }
  }

  private async createQueue(r: q.CreateQueueRequest): Promise<HandlerResult> {
    const c = r.config;
    const settings: QueueSettings = {
      maxDeliveries: c?.maxDeliveries ?? 0,
      deadLetterQueue: c?.deadLetterQueue ?? '',
      lockTimeoutMs: c?.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
      perKeyOrdering: c?.perKeyOrdering ?? false,
    };
    const overrides: { retentionMs?: number; retentionBytes?: number; maxMessageBytes?: number } = {};
    if (c?.retentionMs !== undefined) overrides.retentionMs = c.retentionMs;
    if (c?.retentionBytes !== undefined) overrides.retentionBytes = c.retentionBytes;
    if (c?.maxMessageBytes !== undefined) overrides.maxMessageBytes = c.maxMessageBytes;
    await this.queues.createQueue(r.name, c?.partitions ?? 1, settings, overrides, r.ifNotExists);
    return { header: Apis.CreateQueue.response.encode({}).finish() };
  }

  private track(conn: ClientConnection, memberId: string): void {
    let set = this.membersOf.get(conn);
    if (set === undefined) {
      const members = new Set<string>();
      set = members;
      this.membersOf.set(conn, members);
      conn.onClose(() => {
        for (const m of members) {
          this.hosted()?.queues.leave(m);
          const conns = this.connectionsOf.get(m);
          conns?.delete(conn);
          if (conns?.size === 0) this.connectionsOf.delete(m);
        }
      });
    }
    set.add(memberId);
    let conns = this.connectionsOf.get(memberId);
    if (conns === undefined) {
      conns = new Set();
      this.connectionsOf.set(memberId, conns);
    }
    conns.add(conn);
  }

  private async shareFetch(r: q.ShareFetchRequest, conn: ClientConnection): Promise<HandlerResult> {
    this.track(conn, r.memberId);
    const deadline = Date.now() + Math.min(r.maxWaitMs, MAX_SHARE_WAIT_MS);
    for (;;) {
      const a = await this.queues.acquire(r.queue, r.group, r.memberId, r.maxRecords, r.prefetch);
      const remaining = deadline - Date.now();
      if (a.ranges.length > 0 || remaining <= 0 || conn.isClosed) return fetchAnswer(a);
      // Delays and lock expiries free records without an append: look again at least every 100 ms.
      await this.queues.waitForWork(r.queue, Math.min(remaining, 100), (fn) => conn.onClose(fn));
    }
  }

  /** Push: acquires and sends as records arrive and the prefetch allows, until the connection closes. */
  private subscribe(r: q.ShareSubscribeRequest, conn: ClientConnection, correlationId: number): void {
    this.track(conn, r.memberId);
    const prefetch = r.prefetch > 0 ? r.prefetch : DEFAULT_PREFETCH;
    void (async () => {
      try {
        this.queues.resolve(r.queue, r.group);
        const member = (): boolean => this.membersOf.get(conn)?.has(r.memberId) === true;
        while (!conn.isClosed) {
          if (!member()) {
            // ShareLeave ended this member: end its stream too.
            conn.push(correlationId, fetchAnswer({ ranges: [], data: [] }, true));
            return;
          }
          if (conn.queuedBytes > PUSH_HIGH_WATER_BYTES) {
            await new Promise<void>((resolve) => {
              conn.socket.once('drain', resolve);
              conn.onClose(resolve);
            });
            continue;
          }
          const a = await this.queues.acquire(r.queue, r.group, r.memberId, prefetch, prefetch);
          if (!member()) {
            // Left while acquiring: what was just taken goes back at once.
            this.queues.leave(r.memberId);
            continue;
          }
          if (a.ranges.length > 0) {
            conn.push(correlationId, fetchAnswer(a));
            continue;
          }
          await this.queues.waitForWork(r.queue, 100, (fn) => conn.onClose(fn));
        }
      } catch (err) {
        if (!conn.isClosed) {
          if (err instanceof KmqError && (err.code === ErrorCode.UnknownQueue || err.code === ErrorCode.UnknownTopic)) {
            conn.push(correlationId, fetchAnswer({ ranges: [], data: [] }, true));
          } else {
            conn.pushError(correlationId, 'ShareSubscribe', err);
          }
        }
        this.logger.debug({ queue: r.queue, err: (err as Error).message }, 'Push subscription ended');
      }
    })();
  }

  private async shareAck(r: q.ShareAckRequest, conn: ClientConnection): Promise<HandlerResult> {
    this.track(conn, r.memberId);
    const acks: AckInput[] = r.ranges.map((x) => ({ partition: x.partition, firstOffset: x.firstOffset, lastOffset: x.lastOffset, type: ackTypes[x.type] ?? 'accept', delayMs: x.delayMs, reason: x.reason }));
    const failures = await this.queues.ack(r.queue, r.group, r.memberId, acks);
    return {
      header: Apis.ShareAck.response
        .encode({
          errors: failures.map((f) => ({
            partition: f.partition,
            offset: f.offset,
            errorCode: errorCodeToWire(f.code),
            errorMessage: f.code === ErrorCode.InvalidDelivery ? `Offset ${f.offset} of partition ${f.partition} is not held by this member (unknown, expired or already settled)` : f.code,
          })),
        })
        .finish(),
    };
  }

  private async createExchange(r: q.CreateExchangeRequest): Promise<HandlerResult> {
    const type = exchangeTypes[r.type];
    if (type === undefined) throw new KmqError(ErrorCode.InvalidExchange, `Unknown exchange type ${r.type}`);
    await this.exchanges.createExchange({ name: r.name, type, ...(r.alternate !== undefined && r.alternate.name !== '' ? { alternate: destinationFrom(r.alternate, 'An alternate') } : {}) }, { ifNotExists: r.ifNotExists });
    return { header: Apis.CreateExchange.response.encode({}).finish() };
  }

  private listExchanges(): q.ExchangeInfo[] {
    const { routed, unroutable } = this.queues.exchangeCounters();
    return this.exchanges.listExchanges().map((e) => ({
      name: e.name,
      type: exchangeTypeNumbers[e.type],
      alternate: e.alternate === undefined ? undefined : destinationTo(e.alternate),
      bindings: e.bindings.map((b) => ({ exchange: b.exchange, destination: destinationTo(b.destination), routingKey: b.routingKey, headers: b.headers ?? {}, matchAny: b.match === 'any' })),
      routed: routed.get(e.name) ?? 0,
      unroutable: unroutable.get(e.name) ?? 0,
    }));
  }

  private async publish(r: q.PublishRequest, payload: Buffer): Promise<HandlerResult | null> {
    if (payload.length > this.options.maxMessageBytes) {
      throw new KmqError(ErrorCode.MessageTooLarge, `Publish of ${payload.length} bytes exceeds the maximum message size of ${this.options.maxMessageBytes} bytes`);
    }
    const res = await this.queues.publish({ exchange: r.exchange, routingKey: r.routingKey, headers: r.headers, mandatory: r.mandatory, queue: r.queue }, payload);
    return {
      header: Apis.Publish.response
        .encode({
          routed: res.routed.map((x) => ({ destination: destinationTo(x.destination), partition: x.partition, baseOffset: x.baseOffset, duplicates: x.duplicates })),
          dropped: res.dropped,
          duplicates: res.duplicates,
        })
        .finish(),
    };
  }
}
