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
  broker: string;
  topic: string;
  partitions: number;
  records: number;
}

/** Fixed-rate producer of the e2e workload: `ratePerSec` records for `durationMs`, each value starting with its send time. */
export interface E2eProduceConfig {
  broker: string;
  topic: string;
  recordBytes: number;
  ratePerSec: number;
  durationMs: number;
  producer: ProducerSettings;
}

/** Consumer of the e2e workload: reads `records` records, latency of those sent after `warmupMs`. */
export interface E2eConsumeConfig {
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
