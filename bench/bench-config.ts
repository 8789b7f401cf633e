/**
 * Configurations the benchmark runner hands to its worker processes (as one JSON
 * argument) and the results they print back (as one JSON line on stdout).
 */

/** Producer settings shared by the throughput and e2e workloads. */
export interface ProducerSettings {
  acks: 'none' | 'leader' | 'all';
  idempotent: boolean;
  lingerMs: number;
  batchSizeBytes: number;
}

/** Max-rate produce of `records` records of `recordBytes` each, `callSize` per send(), `callsInFlight` send() calls pending. */
export interface ProduceConfig {
  /** Bootstrap broker `host:port`; a cluster's brokers comma-separated. */
  broker: string;
  topic: string;
  records: number;
  recordBytes: number;
  callSize: number;
  callsInFlight: number;
  producer: ProducerSettings;
}

/** Catch-up read of `records` records from offset 0 of every partition. */
export interface ConsumeConfig {
  /** Bootstrap broker `host:port`; a cluster's brokers comma-separated. */
  broker: string;
  topic: string;
  partitions: number;
  records: number;
}

/** Fixed-rate producer of the e2e workload: `ratePerSec` records for `durationMs`, each value starting with its send time. */
export interface E2eProduceConfig {
  /** Bootstrap broker `host:port`; a cluster's brokers comma-separated. */
  broker: string;
  topic: string;
  recordBytes: number;
  ratePerSec: number;
  durationMs: number;
  producer: ProducerSettings;
}

/** Consumer of the e2e workload: reads `records` records, latency of those sent after `warmupMs`. */
export interface E2eConsumeConfig {
  /** Bootstrap broker `host:port`; a cluster's brokers comma-separated. */
  broker: string;
  topic: string;
  partitions: number;
  records: number;
  warmupMs: number;
  timeoutMs: number;
}

/** Sequential write of `totalBytes` in `chunkBytes` writes into `dir`; `syncEachChunk` fdatasyncs after every write, else once at the end. */
export interface DiskConfig {
  dir: string;
  totalBytes: number;
  chunkBytes: number;
  syncEachChunk: boolean;
}

export interface TcpSourceConfig {
  port: number;
  durationMs: number;
  chunkBytes: number;
}

/** What every worker reports besides its own figures. */
export interface WorkerCpu {
  /** Worker process CPU time over the measured interval, ms. */
  cpuUserMs: number;
  cpuSystemMs: number;
}

export interface ThroughputResult extends WorkerCpu {
  records: number;
  /** Record value bytes moved (records × recordBytes). */
  bytes: number;
  elapsedMs: number;
}

export interface LatencyResult extends WorkerCpu {
  records: number;
  /** Records whose latency counts (sent after the warm-up). */
  measured: number;
  elapsedMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

export interface E2eProduceResult extends WorkerCpu {
  records: number;
  elapsedMs: number;
  /** Largest lag of the send loop behind its schedule, ms: a large value means the producer, not the broker, fell behind. */
  maxScheduleLagMs: number;
}

export interface BandwidthResult {
  bytes: number;
  elapsedMs: number;
}

/** The wall clock with sub-millisecond resolution, comparable across processes of one machine. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Where a publisher sends: straight to a queue, or through an exchange with one routing key. */
export type PublishTargetConfig = { queue: string } | { exchange: string; routingKey: string };

/**
 * Max-rate publisher of the queue and exchange workloads: `messages` messages of
 * `messageBytes`, `callSize` per publish() call, `callsInFlight` calls pending. Each
 * value starts with its sequence number (uint32 LE, 0 … messages − 1).
 */
export interface PublishConfig {
  broker: string;
  target: PublishTargetConfig;
  messages: number;
  messageBytes: number;
  callSize: number;
  callsInFlight: number;
}

export interface PublishResult extends WorkerCpu {
  messages: number;
  bytes: number;
  /** First publish() call to last answer, ms. */
  elapsedMs: number;
  /** Wall clock (wallClockMs) just before the first publish() call. */
  firstPublishAt: number;
  /** Where the broker routed the calls: destination name → calls. */
  routedCalls: Record<string, number>;
  /** Calls the broker dropped as unroutable. */
  droppedCalls: number;
}

/**
 * One queue consumer of the queue workload: acks every delivery on its own
 * (`delivery.ack()`; the client sends one ShareAck per event-loop turn) until the
 * runner sends SIGUSR2, or nothing arrives for `idleTimeoutMs` after the first delivery.
 */
export interface QueueConsumeConfig {
  broker: string;
  queue: string;
  prefetch: number;
  mode: 'push' | 'pull';
  /** Sequence numbers run 0 … messages − 1. */
  messages: number;
  idleTimeoutMs: number;
}

/** cpuUserMs / cpuSystemMs: from the first delivery to the answer to the last ack. */
export interface QueueConsumeResult extends WorkerCpu {
  /** Deliveries acked (a redelivered message counts each time). */
  acked: number;
  ackErrors: number;
  /** Deliveries with deliveryCount > 1. */
  redeliveries: number;
  /** Deliveries whose value holds no sequence number below `messages`. */
  foreignValues: number;
  /** Bytes the process read from the first delivery on (/proc/self/io rchar: mostly the broker's pushes). */
  bytesReceived: number;
  /** Wall clock of the first delivery and of the answer to the last ack; 0 when none. */
  firstDeliveryAt: number;
  lastAckAt: number;
  /** Per sequence number, how often this consumer acked it (Uint8Array, saturating at 255, base64). */
  countsBase64: string;
}

/** An app publishing `messages` of `messageBytes` to `topic` through a sidecar's PublishStream, `inFlight` unanswered at most; at max rate, or `ratePerSec`. */
export interface SidecarPublishConfig {
  sidecar: string;
  topic: string;
  messages: number;
  messageBytes: number;
  inFlight: number;
  /** Messages per PublishStreamRequest (a PublishBatch); 0 = one message per request. */
  batch: number;
  ratePerSec?: number;
}

export interface SidecarPublishResult extends WorkerCpu {
  /** Messages answered (errors included). */
  messages: number;
  errors: number;
  /** First write to the last answer, ms. */
  elapsedMs: number;
  /** Wall clock of the first write, ms since the epoch. */
  firstPublishAt: number;
  maxScheduleLagMs: number;
}

/** An app reading `messages` deliveries of `subscription` on a sidecar's Consume stream, acking each. */
export interface SidecarConsumeConfig {
  sidecar: string;
  subscription: string;
  messages: number;
  /** Sent in ConsumeStart; 0 = the subscription's own. */
  maxInFlight: number;
  /** Sent in ConsumeStart: deliveries per response; above 1, each response's deliveries are acked with one Acks. */
  maxBatch: number;
  warmupMs: number;
  timeoutMs: number;
}
