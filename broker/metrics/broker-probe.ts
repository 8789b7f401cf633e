import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface PartitionGaugeSource {
  partitions(): Iterable<{ topic: string; partition: number; logStartOffset: number; logEndOffset: number }>;
  groupLag(): Iterable<{ group: string; topic: string; partition: number; lag: number }>;
  queues(): Iterable<{ queue: string; depth: { ready: number; inFlight: number; delayed: number }; redeliveries: number; deadLettered: number }>;
  exchanges(): { routed: ReadonlyMap<string, number>; unroutable: ReadonlyMap<string, number> };
  /** Per destination, publishes dropped as repeats of an idempotency key. */
  duplicatesDropped(): ReadonlyMap<string, number>;
  /** In a cluster: the partitions this broker leads and whether it is the controller; undefined on a single node. */
  replication?(): ReplicationSnapshot | undefined;
}

/** What the replication metrics show. */
export interface ReplicationSnapshot {
  isController: boolean;
  /** Partitions this broker leads, with their in-sync and replica counts. */
  led: Iterable<{ topic: string; partition: number; inSync: number; replicas: number; highWatermark: number }>;
  /** Partitions being moved (the controller reports them; undefined elsewhere): copying data, or waiting for the throttle. */
  reassigning?: { copying: number; waiting: number };
  /** Whether this broker hosts the queues (leads __share_state partition 0). */
  queueHost: boolean;
}

/**
 * Every metric the broker exports, and the verbs that move them. Labels stay
 * bounded: topic and partition, group, api, error code.
 */
export class BrokerProbe {
  readonly registry = new Registry();
  private readonly recordsIn: Counter<'topic'>;
  private readonly bytesIn: Counter<'topic'>;
  private readonly recordsOut: Counter<'topic'>;
  private readonly bytesOut: Counter<'topic'>;
  private readonly produceSeconds: Histogram;
  private readonly fetchSeconds: Histogram;
  private readonly requests: Counter<'api'>;
  private readonly requestErrors: Counter<'api' | 'code'>;
  private readonly connections: Gauge;
  private readonly rejectedFrames: Counter;

  constructor(source: PartitionGaugeSource) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'kmq_broker_process_' });
    this.recordsIn = new Counter({ name: 'kmq_broker_records_in_total', help: 'Records appended, per topic', labelNames: ['topic'], registers });
    this.bytesIn = new Counter({ name: 'kmq_broker_bytes_in_total', help: 'Record batch bytes appended, per topic', labelNames: ['topic'], registers });
    this.recordsOut = new Counter({ name: 'kmq_broker_records_out_total', help: 'Records sent to consumers (by batch header count), per topic', labelNames: ['topic'], registers });
    this.bytesOut = new Counter({ name: 'kmq_broker_bytes_out_total', help: 'Record batch bytes sent to consumers, per topic', labelNames: ['topic'], registers });
    const buckets = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
    this.produceSeconds = new Histogram({ name: 'kmq_broker_produce_seconds', help: 'Produce request latency, from frame read to answer', buckets, registers });
    this.fetchSeconds = new Histogram({ name: 'kmq_broker_fetch_seconds', help: 'Fetch request latency, long-poll wait included', buckets, registers });
    this.requests = new Counter({ name: 'kmq_broker_requests_total', help: 'Requests handled, per api', labelNames: ['api'], registers });
    this.requestErrors = new Counter({ name: 'kmq_broker_request_errors_total', help: 'Requests or partitions answered with an error, per api and error code', labelNames: ['api', 'code'], registers });
    this.connections = new Gauge({ name: 'kmq_broker_connections', help: 'Open client connections', registers });
    this.queueMetrics(source, registers);
    this.rejectedFrames = new Counter({ name: 'kmq_broker_rejected_frames_total', help: 'Connections closed for a malformed frame (bad length, unknown api)', registers });
    new Gauge({
      name: 'kmq_broker_log_end_offset',
      help: 'Next offset to be written, per partition',
      labelNames: ['topic', 'partition'],
      registers,
      collect() {
        this.reset();
        for (const p of source.partitions()) this.set({ topic: p.topic, partition: String(p.partition) }, p.logEndOffset);
      },
    });
    new Gauge({
      name: 'kmq_broker_log_start_offset',
      help: 'First offset still stored, per partition',
      labelNames: ['topic', 'partition'],
      registers,
      collect() {
        this.reset();
        for (const p of source.partitions()) this.set({ topic: p.topic, partition: String(p.partition) }, p.logStartOffset);
      },
    });
    this.replicationMetrics(source, registers);
    new Gauge({
      name: 'kmq_broker_group_lag',
      help: 'Records between a group committed offset and the log end, per group and partition',
      labelNames: ['group', 'topic', 'partition'],
      registers,
      collect() {
        this.reset();
        for (const l of source.groupLag()) this.set({ group: l.group, topic: l.topic, partition: String(l.partition) }, l.lag);
      },
    });
  }

  private replicationMetrics(source: PartitionGaugeSource, registers: Registry[]): void {
    const snapshot = (): ReplicationSnapshot | undefined => source.replication?.();
    new Gauge({
      name: 'kmq_broker_under_replicated_partitions',
      help: 'Partitions this broker leads whose in-sync set is smaller than their replica set',
      registers,
      collect() {
        let n = 0;
        for (const p of snapshot()?.led ?? []) if (p.inSync < p.replicas) n++;
        this.set(n);
      },
    });
    new Gauge({
      name: 'kmq_broker_leader_partitions',
      help: 'Partitions this broker leads (a single node leads all of its own)',
      registers,
      collect() {
        const s = snapshot();
        if (s === undefined) {
          let n = 0;
          for (const _ of source.partitions()) n++;
          this.set(n);
          return;
        }
        let n = 0;
        for (const _ of s.led) n++;
        this.set(n);
      },
    });
    new Gauge({
      name: 'kmq_broker_partition_in_sync_replicas',
      help: 'In-sync replicas of each partition this broker leads',
      labelNames: ['topic', 'partition'],
      registers,
      collect() {
        this.reset();
        for (const p of snapshot()?.led ?? []) this.set({ topic: p.topic, partition: String(p.partition) }, p.inSync);
      },
    });
    new Gauge({
      name: 'kmq_broker_high_watermark',
      help: 'Offset below which every in-sync replica has the records (consumers read below it), per partition this broker leads',
      labelNames: ['topic', 'partition'],
      registers,
      collect() {
        this.reset();
        for (const p of snapshot()?.led ?? []) this.set({ topic: p.topic, partition: String(p.partition) }, p.highWatermark);
      },
    });
    new Gauge({
      name: 'kmq_cluster_reassigning_partitions',
      help: 'Partitions being moved between brokers, reported by the controller: copying (new replicas catching up) or waiting (for the reassignment throttle)',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const r = snapshot()?.reassigning;
        if (r === undefined) return;
        this.set({ state: 'copying' }, r.copying);
        this.set({ state: 'waiting' }, r.waiting);
      },
    });
    new Gauge({
      name: 'kmq_broker_queue_host',
      help: '1 while this broker hosts the queues, shared groups and exchanges (always 1 on a single node)',
      registers,
      collect() {
        const s = snapshot();
        this.set(s === undefined || s.queueHost ? 1 : 0);
      },
    });
    new Gauge({
      name: 'kmq_broker_is_controller',
      help: '1 while this broker is the cluster controller (always 1 on a single node)',
      registers,
      collect() {
        const s = snapshot();
        this.set(s === undefined || s.isController ? 1 : 0);
      },
    });
  }

  private queueMetrics(source: PartitionGaugeSource, registers: Registry[]): void {
    new Gauge({
      name: 'kmq_broker_queue_depth',
      help: 'Messages in a queue, by state: ready, in_flight (acquired, unacked), delayed (nacked with a delay)',
      labelNames: ['queue', 'state'],
      registers,
      collect() {
        this.reset();
        for (const q of source.queues()) {
          this.set({ queue: q.queue, state: 'ready' }, q.depth.ready);
          this.set({ queue: q.queue, state: 'in_flight' }, q.depth.inFlight);
          this.set({ queue: q.queue, state: 'delayed' }, q.depth.delayed);
        }
      },
    });
    new Gauge({
      name: 'kmq_broker_queue_redeliveries',
      help: 'Redeliveries of a queue since the broker started',
      labelNames: ['queue'],
      registers,
      collect() {
        this.reset();
        for (const q of source.queues()) this.set({ queue: q.queue }, q.redeliveries);
      },
    });
    new Gauge({
      name: 'kmq_broker_queue_dead_lettered',
      help: 'Messages of a queue dead-lettered (rejected or past max deliveries) since the broker started',
      labelNames: ['queue'],
      registers,
      collect() {
        this.reset();
        for (const q of source.queues()) this.set({ queue: q.queue }, q.deadLettered);
      },
    });
    new Gauge({
      name: 'kmq_broker_publish_duplicates_dropped',
      help: 'Publishes dropped because their x-kmq-idempotency-key was already stored in the dedupe window, per destination, since the broker started',
      labelNames: ['destination'],
      registers,
      collect() {
        this.reset();
        for (const [d, n] of source.duplicatesDropped()) this.set({ destination: d }, n);
      },
    });
    new Gauge({
      name: 'kmq_broker_exchange_unroutable',
      help: 'Publishes to an exchange that matched no binding, since the broker started',
      labelNames: ['exchange'],
      registers,
      collect() {
        this.reset();
        for (const [e, n] of source.exchanges().unroutable) this.set({ exchange: e }, n);
      },
    });
    new Gauge({
      name: 'kmq_broker_exchange_routed',
      help: 'Publishes to an exchange that reached at least one destination, since the broker started',
      labelNames: ['exchange'],
      registers,
      collect() {
        this.reset();
        for (const [e, n] of source.exchanges().routed) this.set({ exchange: e }, n);
      },
    });
  }

  produced(topic: string, records: number, bytes: number, seconds: number): void {
    this.recordsIn.inc({ topic }, records);
    this.bytesIn.inc({ topic }, bytes);
    this.produceSeconds.observe(seconds);
  }

  fetched(seconds: number): void {
    this.fetchSeconds.observe(seconds);
  }

  sent(topic: string, records: number, bytes: number): void {
    if (bytes === 0) return;
    this.recordsOut.inc({ topic }, records);
    this.bytesOut.inc({ topic }, bytes);
  }

  request(api: string): void {
    this.requests.inc({ api });
  }

  requestError(api: string, code: string): void {
    this.requestErrors.inc({ api, code });
  }

  connectionOpened(): void {
    this.connections.inc();
  }

  connectionClosed(): void {
    this.connections.dec();
  }

  frameRejected(): void {
    this.rejectedFrames.inc();
  }
}
