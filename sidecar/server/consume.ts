import type { ServerDuplexStream } from '@grpc/grpc-js';
import { ErrorCode, KmqError } from '../../client/index.js';
import type { KmqClient } from '../../client/index.js';
import type { Logger } from '../../lib/logger.js';
import type { CompiledSidecarOptions, CompiledSubscription } from '../config.js';
import type { ConsumeRequest, ConsumeResponse } from '../gen/kmq/sidecar/v1/sidecar.js';
import type { Delivery } from '../gen/kmq/sidecar/v1/sidecar.js';
import type { SidecarProbe } from '../metrics.js';
import type { DeadLetterTopics } from './dead-letter-topics.js';
import type { DeliveryPipeline } from './delivery-pipeline.js';
import type { DeliverySource, OutboundDelivery, Settlement } from './delivery-source.js';
import { OrderedSource } from './ordered-source.js';
import { SharedSource } from './shared-source.js';
import { toServiceError } from './status.js';

/** A delivery handed to the app on a stream, waiting for its settlement. */
interface PendingDelivery {
  resolve(s: Settlement | undefined): void;
  sentAt: number;
}

/** Late settlements of timed-out deliveries are ignored; this many ids are remembered. */
const MAX_TIMED_OUT_IDS = 10_000;

/** The source of a subscription's deliveries: an ordered consumer group or a shared group. */
export function openSource(client: KmqClient, sub: CompiledSubscription, maxInFlight: number, deadLetters: DeadLetterTopics, probe: SidecarProbe, log: Logger): DeliverySource {
  return sub.mode === 'ordered' ? new OrderedSource(client, sub, maxInFlight, deadLetters, probe.subscription(sub.name), log) : new SharedSource(client, sub, maxInFlight, log);
}

const ACK: Settlement = Object.freeze({ kind: 'ack' });

type ConsumeCall = ServerDuplexStream<ConsumeRequest, ConsumeResponse>;

function invalid(message: string): KmqError {
  return new KmqError(ErrorCode.InvalidRequest, message, {}, { retriable: false });
}

/**
 * Serves Consume streams. An ordered subscription is exclusive: one stream at a
 * time in this sidecar (its consumer group owns every partition); a shared one
 * takes any number of streams, each a member of the shared group.
 */
export class ConsumeService {
  private readonly exclusive = new Set<string>();
  private readonly sessions = new Set<ConsumeSession>();

  constructor(
    readonly client: KmqClient,
    readonly options: CompiledSidecarOptions,
    readonly deadLetters: DeadLetterTopics,
    readonly pipelines: ReadonlyMap<string, DeliveryPipeline>,
    readonly probe: SidecarProbe,
    readonly log: Logger,
  ) {}

  handle(call: ConsumeCall): void {
    const s = new ConsumeSession(this, call);
    this.sessions.add(s);
    s.closed.finally(() => this.sessions.delete(s)).catch(() => {});
  }

  /** Claims an ordered subscription for one stream; false when another stream holds it. */
  claim(sub: CompiledSubscription): boolean {
    if (sub.mode !== 'ordered') return true;
    if (this.exclusive.has(sub.name)) return false;
    this.exclusive.add(sub.name);
    return true;
  }

  release(sub: CompiledSubscription): void {
    if (sub.mode === 'ordered') this.exclusive.delete(sub.name);
  }

  /** Ends every stream (status UNAVAILABLE) and returns its unsettled deliveries to the broker. */
  async closeAll(): Promise<void> {
    const all = [...this.sessions];
    for (const s of all) s.fail(new KmqError(ErrorCode.ShuttingDown, 'The sidecar is shutting down; unsettled deliveries will be delivered again'));
    await Promise.all(all.map((s) => s.closed));
  }
}

/**
 * One Consume stream: `start` first, then deliveries out and settlements in.
 * Delivery ids are per stream. A protocol error ends the stream with its status;
 * whatever is unsettled then goes back to the broker.
 */
class ConsumeSession {
  private state: 'awaiting-start' | 'starting' | 'running' | 'ended' = 'awaiting-start';
  private sub: CompiledSubscription | undefined;
  private source: DeliverySource | undefined;
  /** By delivery id (the stream's counter; the wire carries it as a decimal string). */
  private readonly pending = new Map<number, PendingDelivery>();
  private readonly timedOut = new Set<number>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private nextId = 0;
  /** Deliveries per response; above 1, the outbox collects the deliveries of one turn. */
  private maxBatch = 0;
  private outbox: Delivery[] = [];
  private flushScheduled = false;
  private resolveClosed!: () => void;
  /** Resolves once the source is closed and the subscription released. */
  readonly closed = new Promise<void>((resolve) => (this.resolveClosed = resolve));
  private readonly log: Logger;

  constructor(
    private readonly service: ConsumeService,
    private readonly call: ConsumeCall,
  ) {
    this.log = service.log.child({ peer: call.getPeer() });
    call.on('data', (req: ConsumeRequest) => this.onRequest(req));
    call.on('end', () => this.finish());
    call.on('cancelled', () => this.end(undefined));
  }

  private onRequest(req: ConsumeRequest): void {
    if (this.state === 'ended') return;
    try {
      if (req.start !== undefined) {
        if (this.state !== 'awaiting-start') throw invalid('start was already sent on this stream; open another stream for another subscription');
        this.state = 'starting';
        void this.start(req.start.subscription, req.start.maxInFlight, req.start.maxBatch ?? 0);
        return;
      }
      if (req.ack === undefined && req.acks === undefined && req.retry === undefined && req.deadLetter === undefined) throw invalid('ConsumeRequest is empty: set start, ack, acks, retry or dead_letter');
      if (this.state === 'awaiting-start') throw invalid('the first ConsumeRequest must be start (naming a subscription)');
      if (req.ack !== undefined) this.settle(req.ack.deliveryId, ACK);
      else if (req.acks !== undefined) for (const id of req.acks.deliveryIds) this.settle(id, ACK);
      else if (req.retry !== undefined) this.settle(req.retry.deliveryId, { kind: 'retry', delayMs: req.retry.delayMs });
      else this.settle(req.deadLetter!.deliveryId, { kind: 'dead-letter', reason: req.deadLetter!.reason });
    } catch (err) {
      this.fail(err);
    }
  }

  private async start(name: string, requested: number, maxBatch: number): Promise<void> {
    const { service } = this;
    if (name === '') return this.fail(invalid('start.subscription is required'));
    const sub = service.options.subscriptions.get(name);
    if (sub === undefined) {
      const known = [...service.options.subscriptions.keys()];
      return this.fail(
        new KmqError(ErrorCode.UnknownSubscription, `Unknown subscription "${name}"; this sidecar serves ${known.length === 0 ? 'none' : known.map((k) => `"${k}"`).join(', ')}`, { subscription: name }, { retriable: false }),
      );
    }
    if (sub.pushPort !== undefined) {
      return this.fail(
        new KmqError(ErrorCode.SubscriptionBusy, `Subscription "${name}" is a push subscription: the sidecar delivers it to the app's AppCallback on port ${sub.pushPort}`, { subscription: name }, { retriable: false }),
      );
    }
    if (!service.claim(sub)) {
      return this.fail(
        new KmqError(ErrorCode.SubscriptionBusy, `Subscription "${name}" is ordered (exclusive) and another Consume stream is consuming it; close that stream first`, { subscription: name }, { retriable: false }),
      );
    }
    this.sub = sub;
    const maxInFlight = requested === 0 ? sub.maxInFlight : Math.min(requested, sub.maxInFlight);
    this.maxBatch = Math.min(maxBatch, maxInFlight);
    try {
      // A precise NOT_FOUND before joining anything.
      if (sub.source.kind === 'topic') await service.client.admin().describeTopic(sub.source.name);
      else await service.client.admin().describeQueue(sub.source.name);
    } catch (err) {
      return this.fail(err);
    }
    if (this.state !== 'starting') return;
    const log = this.log.child({ subscription: sub.name });
    const source = openSource(service.client, sub, maxInFlight, service.deadLetters, service.probe, log);
    const pipeline = service.pipelines.get(sub.name)!;
    this.source = source;
    this.state = 'running';
    this.call.write({ started: { subscription: sub.name, maxInFlight } });
    log.info({ mode: sub.mode, maxInFlight, guarantee: sub.guarantee }, 'Consume stream started');
    const timeoutMs = sub.retryPolicy.handlerTimeoutMs;
    this.sweepTimer = setInterval(() => this.expire(timeoutMs), Math.max(10, Math.min(1_000, Math.floor(timeoutMs / 10))));
    this.sweepTimer.unref();
    const transport = (m: Omit<Delivery, 'deliveryId'>, answer: (s: Settlement | undefined) => void): void => this.send(m, answer);
    source.run((d: OutboundDelivery) => pipeline.handle(d, transport)).then(
      () => this.end(undefined),
      (err: unknown) => this.fail(err),
    );
  }

  private send(message: Omit<Delivery, 'deliveryId'>, answer: (s: Settlement | undefined) => void): void {
    if (this.state !== 'running') return answer(undefined);
    const id = ++this.nextId;
    this.pending.set(id, { resolve: answer, sentAt: Date.now() });
    const m = message;
    const delivery: Delivery = {
      deliveryId: String(id),
      payload: m.payload,
      key: m.key,
      headers: m.headers,
      attempt: m.attempt,
      source: m.source,
      timestampMs: m.timestampMs,
      idempotencyKey: m.idempotencyKey,
    };
    if (this.maxBatch <= 1) {
      this.call.write({ delivery });
      return;
    }
    // Batched: what is ready in this turn goes out together, never waiting for more.
    this.outbox.push(delivery);
    if (this.outbox.length >= this.maxBatch) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.outbox.length === 0 || this.state !== 'running') return;
    const deliveries = this.outbox;
    this.outbox = [];
    this.call.write({ deliveries: { deliveries } });
  }

  /** Fails deliveries the app has held longer than the handler timeout (oldest first: the map keeps send order). */
  private expire(timeoutMs: number): void {
    const cutoff = Date.now() - timeoutMs;
    for (const [id, p] of this.pending) {
      if (p.sentAt > cutoff) break;
      this.pending.delete(id);
      this.timedOut.add(id);
      if (this.timedOut.size > MAX_TIMED_OUT_IDS) this.timedOut.delete(this.timedOut.values().next().value!);
      p.resolve({ kind: 'failure', timeout: true, reason: `handler timeout (${timeoutMs} ms)` });
    }
  }

  private settle(deliveryId: string, s: Settlement): void {
    // Only the stream's own decimal ids ("1", "2", ...) can match.
    const id = /^[1-9][0-9]{0,15}$/.test(deliveryId) ? Number(deliveryId) : -1;
    const d = this.pending.get(id);
    if (d === undefined) {
      // Settled after its handler timeout: already retried.
      if (this.timedOut.delete(id)) return;
      throw new KmqError(
        ErrorCode.UnknownDelivery,
        deliveryId === '' ? 'delivery_id is required' : `Delivery "${deliveryId}" is not in flight on this stream (unknown, or already settled)`,
        { deliveryId, subscription: this.sub?.name },
        { retriable: false },
      );
    }
    this.pending.delete(id);
    d.resolve(s);
  }

  /** Ends the stream with the error's status. */
  fail(err: unknown): void {
    if (this.state === 'ended') return;
    const e = toServiceError(err);
    this.log.debug({ subscription: this.sub?.name, code: e.code, err: e.details }, 'Consume stream failed');
    this.end(e);
  }

  /** The app half-closed: stop, then end the stream with OK. */
  private finish(): void {
    this.end(undefined);
  }

  private end(error: ReturnType<typeof toServiceError> | undefined): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    clearInterval(this.sweepTimer);
    const sub = this.sub;
    const source = this.source;
    const closing = source === undefined ? Promise.resolve() : source.close();
    // Unsettled: they go back to the broker with the source's close.
    for (const p of this.pending.values()) p.resolve(undefined);
    this.pending.clear();
    closing
      .catch((err: unknown) => this.log.warn({ subscription: sub?.name, err: (err as Error).message }, 'Closing the consumer failed'))
      .finally(() => {
        if (sub !== undefined) this.service.release(sub);
        if (!this.call.cancelled) {
          if (error !== undefined) this.call.emit('error', error);
          else this.call.end();
        }
        this.resolveClosed();
      })
      .catch(() => {});
  }
}
