import { ErrorCode, KmqError, toKmqError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { retry } from '../lib/backoff.js';
import { Apis } from '../protocol/apis.js';
import type { ApiSpec } from '../protocol/apis.js';
import { errorCodeFromWire } from '../protocol/error-codes.js';
import { OFFSETS_TOPIC, PROCESSED_KEYS_TOPIC, SHARE_STATE_TOPIC } from '../protocol/well-known.js';
import type { MetadataResponse } from '../protocol/gen/kmq/broker/v1/broker.js';
import { BrokerConnection } from '../protocol/connection.js';
import type { RequestOptions, Response } from '../protocol/connection.js';
import type { BrokerAddress, CompiledClientOptions } from './options.js';
import { formatBrokerAddress } from './options.js';

/** What the client knows of one topic: its partitions and their leaders. */
export interface TopicRoute {
  topic: string;
  /** leaders[p] = broker id of the leader of partition p. */
  leaders: number[];
  fetchedAt: number;
}

/** How long an internal topic metadata did not know is not looked up again (unless a request says it moved), ms. */
const MISSING_INTERNAL_TTL_MS = 10_000;
/** Errors after which the coordinator (or a leader) may be elsewhere. */
const MOVED: ReadonlySet<string> = new Set([ErrorCode.NotLeader, ErrorCode.BrokerNotAvailable, ErrorCode.ConnectionClosed, ErrorCode.RequestTimedOut]);

/** Cached metadata older than this is refreshed on the next use. */
const METADATA_MAX_AGE_MS = 5 * 60_000;

/**
 * The cluster as the client sees it: connections (one per broker, opened
 * lazily, replaced when closed), the broker id → address map and a metadata
 * cache per topic, refreshed on demand and when a request hits NotLeader or
 * UnknownTopic. Routing lives here; BrokerConnection only moves frames.
 */
export class Cluster {
  private readonly options: CompiledClientOptions;
  private readonly log: Logger;
  private readonly connections = new Map<string, BrokerConnection>();
  private readonly brokers = new Map<number, BrokerAddress>();
  private readonly routes = new Map<string, TopicRoute>();
  private readonly loading = new Map<string, Promise<TopicRoute>>();
  private bootstrapIndex = 0;
  /** Internal topics metadata did not know, until when requests for them go to any broker. */
  private readonly missingInternal = new Map<string, number>();
  /** Brokers (host:port) that let a request time out, until when they are tried last. */
  private readonly suspects = new Map<string, number>();
  private closed = false;

  constructor(options: CompiledClientOptions) {
    this.options = options;
    this.log = options.logger;
  }

  get requestTimeoutMs(): number {
    return this.options.requestTimeoutMs;
  }

  /** An open connection to the broker at `address`. */
  async connectionTo(address: BrokerAddress): Promise<BrokerConnection> {
    if (this.closed) throw new KmqError(ErrorCode.ShuttingDown, 'Client is closed', {}, { retriable: false });
    const name = formatBrokerAddress(address);
    let conn = this.connections.get(name);
    if (conn === undefined || conn.closed) {
      conn = new BrokerConnection({
        address,
        connectTimeoutMs: this.options.connectTimeoutMs,
        requestTimeoutMs: this.options.requestTimeoutMs,
        maxFrameBytes: this.options.maxFrameBytes,
        logger: this.log,
      });
      this.connections.set(name, conn);
    }
    try {
      await conn.connect();
    } catch (err) {
      if (this.connections.get(name) === conn) this.connections.delete(name);
      throw err;
    }
    return conn;
  }

  /** A connection to broker `id`, as metadata announced it. */
  async connectionToBroker(id: number): Promise<BrokerConnection> {
    const address = this.brokers.get(id);
    // A broker that announces no addresses is a single node: the bootstrap one.
    if (address === undefined && this.brokers.size === 0) return this.anyConnection();
    if (address === undefined) throw new KmqError(ErrorCode.BrokerNotAvailable, `Broker ${id} is not in the cluster metadata`, { broker: String(id) });
    return this.connectionTo(address);
  }

  /**
   * A connection to any reachable broker: an open one first, else the bootstrap list,
   * rotating on failure. Brokers that just let a request time out are tried last.
   */
  async anyConnection(): Promise<BrokerConnection> {
    const now = Date.now();
    const suspect = (name: string): boolean => (this.suspects.get(name) ?? 0) > now;
    for (const conn of this.connections.values()) if (!conn.closed && !suspect(formatBrokerAddress(conn.address))) return this.connectionTo(conn.address);
    const list = [...this.options.brokers].sort((a, b) => Number(suspect(formatBrokerAddress(a))) - Number(suspect(formatBrokerAddress(b))));
    let last: unknown;
    for (let i = 0; i < list.length; i++) {
      const address = list[(this.bootstrapIndex + i) % list.length]!;
      try {
        return await this.connectionTo(address);
      } catch (err) {
        last = err;
        this.log.warn({ broker: formatBrokerAddress(address), err: (err as Error).message }, 'Bootstrap broker unreachable');
      }
    }
    this.bootstrapIndex = (this.bootstrapIndex + 1) % list.length;
    throw toKmqError(last, ErrorCode.BrokerNotAvailable);
  }

  /**
   * The connection to the group coordinator: the leader of partition 0 of
   * `__consumer_offsets` (a single node leads it itself). Before the topic exists
   * any broker takes the request (and creates it).
   */
  coordinatorConnection(): Promise<BrokerConnection> {
    return this.internalLeaderConnection(OFFSETS_TOPIC);
  }

  /** The connection to the broker's processed-key store: the leader of partition 0 of `__processed_keys`. */
  keysConnection(): Promise<BrokerConnection> {
    return this.internalLeaderConnection(PROCESSED_KEYS_TOPIC);
  }

  private async internalLeaderConnection(topic: string): Promise<BrokerConnection> {
    if ((this.missingInternal.get(topic) ?? 0) > Date.now()) return this.anyConnection();
    try {
      return await this.leaderConnection(topic, 0);
    } catch (err) {
      if (err instanceof KmqError && (err.code === ErrorCode.UnknownTopic || err.code === ErrorCode.UnknownPartition)) {
        // Not created yet (or a broker that does not list it): any broker serves, without a lookup per request.
        this.missingInternal.set(topic, Date.now() + MISSING_INTERNAL_TTL_MS);
        return this.anyConnection();
      }
      throw err;
    }
  }

  /** The connection to the queue host (queues, shared groups, exchanges): the leader of partition 0 of `__share_state`. */
  queueConnection(): Promise<BrokerConnection> {
    return this.internalLeaderConnection(SHARE_STATE_TOPIC);
  }

  /** A group request failed in a way that may mean the coordinator moved: look it up again next time. */
  coordinatorMoved(): void {
    this.invalidate(OFFSETS_TOPIC);
    this.invalidate(PROCESSED_KEYS_TOPIC);
    this.invalidate(SHARE_STATE_TOPIC);
    this.missingInternal.clear();
  }

  /** One request with retries of retriable errors; `connect` picks the broker per attempt. */
  async call<Req, Res>(
    connect: () => Promise<BrokerConnection>,
    api: ApiSpec<Req, Res>,
    req: Req,
    payload?: readonly Buffer[],
    opts?: RequestOptions,
  ): Promise<Response<Res>> {
    return retry(async () => (await connect()).request(api, req, payload, opts), {
      ...this.options.retry,
      onRetry: (err, attempt, delayMs) => {
        if (err instanceof KmqError && MOVED.has(err.code)) this.coordinatorMoved();
        if (err instanceof KmqError && err.code === ErrorCode.RequestTimedOut && typeof err.context.broker === 'string') {
          this.suspects.set(err.context.broker, Date.now() + 3 * this.options.requestTimeoutMs);
        }
        this.log.debug({ api: api.name, attempt, delayMs, err: (err as Error).message }, 'Retrying request');
      },
    });
  }

  /** Runs `fn` again on retriable errors, with the client's retry settings. */
  withRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retry(fn, {
      ...this.options.retry,
      onRetry: (err, attempt, delayMs) => this.log.debug({ what, attempt, delayMs, err: (err as Error).message }, 'Retrying'),
    });
  }

  /** Retried request to any broker (metadata, admin, groups). */
  /** One queue, exchange or dead-letter request, to the queue host, with retries. */
  callQueue<Req, Res>(api: ApiSpec<Req, Res>, req: Req, opts?: RequestOptions): Promise<Response<Res>> {
    return this.call(() => this.queueConnection(), api, req, undefined, opts);
  }

  callAny<Req, Res>(api: ApiSpec<Req, Res>, req: Req, opts?: RequestOptions): Promise<Response<Res>> {
    return this.call(() => this.anyConnection(), api, req, undefined, opts);
  }

  /** Fetches metadata for `topics` (all when empty) and updates the caches. */
  async metadata(topics: string[], includeInternal = false): Promise<MetadataResponse> {
    const res = await this.callAny(Apis.Metadata, { topics, includeInternal });
    this.absorb(res.header);
    return res.header;
  }

  /** The topic's route from the cache, or from the broker when missing, stale or `refresh`. */
  route(topic: string, refresh = false): Promise<TopicRoute> {
    const cached = this.routes.get(topic);
    if (!refresh && cached !== undefined && Date.now() - cached.fetchedAt < METADATA_MAX_AGE_MS) return Promise.resolve(cached);
    let p = this.loading.get(topic);
    if (p === undefined) {
      p = this.loadRoute(topic).finally(() => this.loading.delete(topic));
      this.loading.set(topic, p);
    }
    return p;
  }

  /** The cached route if there is a fresh one; lets hot paths skip an await. */
  cachedRoute(topic: string): TopicRoute | undefined {
    const cached = this.routes.get(topic);
    return cached !== undefined && Date.now() - cached.fetchedAt < METADATA_MAX_AGE_MS ? cached : undefined;
  }

  /** Forgets the topic's route, after NotLeader, UnknownTopic or a lost connection. */
  invalidate(topic: string): void {
    this.routes.delete(topic);
  }

  /** The leader's connection for (topic, partition). */
  async leaderConnection(topic: string, partition: number): Promise<BrokerConnection> {
    const route = await this.route(topic);
    const leader = route.leaders[partition];
    if (leader === undefined) {
      throw new KmqError(ErrorCode.UnknownPartition, `Topic ${topic} has no partition ${partition} (it has ${route.leaders.length})`, { topic, partition });
    }
    return this.connectionToBroker(leader);
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.connections.values()];
    this.connections.clear();
    await Promise.all(all.map((c) => c.close()));
  }

  private async loadRoute(topic: string): Promise<TopicRoute> {
    const md = await this.metadata([topic]);
    const t = md.topics.find((x) => x.name === topic);
    if (t === undefined) throw new KmqError(ErrorCode.UnknownTopic, `Topic ${topic} does not exist`, { topic });
    if (t.errorCode !== 0) {
      const code = errorCodeFromWire(t.errorCode);
      throw new KmqError(code, t.errorMessage !== '' ? t.errorMessage : `Topic ${topic}: ${code}`, { topic });
    }
    const route = this.routes.get(topic);
    if (route === undefined) throw new KmqError(ErrorCode.UnknownTopic, `Topic ${topic} has no partitions`, { topic });
    return route;
  }

  private absorb(md: MetadataResponse): void {
    for (const b of md.brokers) this.brokers.set(b.id, { host: b.host, port: b.port });
    const now = Date.now();
    for (const t of md.topics) {
      if (t.errorCode !== 0 || t.partitions.length === 0) {
        this.routes.delete(t.name);
        continue;
      }
      const leaders = new Array<number>(t.partitions.length);
      for (const p of t.partitions) leaders[p.partition] = p.leader;
      this.routes.set(t.name, { topic: t.name, leaders, fetchedAt: now });
    }
  }
}
