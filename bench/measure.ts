import type { LatencyResult, WorkerCpu } from './bench-config.js';
import type { Row } from './report.js';

/** CPU this process used since `start` (user and system, ms). */
export function cpuSince(start: NodeJS.CpuUsage): WorkerCpu {
  const u = process.cpuUsage(start);
  return { cpuUserMs: u.user / 1000, cpuSystemMs: u.system / 1000 };
}

/** A worker's CPU over its measured interval, % of one core. */
export function clientCpuPct(r: WorkerCpu & { elapsedMs: number }): number {
  return ((r.cpuUserMs + r.cpuSystemMs) / r.elapsedMs) * 100;
}

/** Percentile of sorted values, nearest rank. */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Percentiles, max and mean of the first `measured` latencies (ms); sorts them in place. */
export function latencySummary(latencies: Float64Array, measured: number): { p50Ms: number; p95Ms: number; p99Ms: number; p999Ms: number; maxMs: number; meanMs: number } {
  const sorted = latencies.subarray(0, measured).sort();
  let sum = 0;
  for (const x of sorted) sum += x;
  return {
    p50Ms: percentile(sorted, 0.5),
    p95Ms: percentile(sorted, 0.95),
    p99Ms: percentile(sorted, 0.99),
    p999Ms: percentile(sorted, 0.999),
    maxMs: measured === 0 ? NaN : sorted[measured - 1]!,
    meanMs: measured === 0 ? NaN : sum / measured,
  };
}

/**
 * The rate and percentile columns of a latency row, from the receiving side's
 * result; MB/s only when the record size is given.
 */
export function latencyColumns(r: LatencyResult, recordBytes?: number): Pick<Row, 'recordsPerSec' | 'mbPerSec' | 'p50Ms' | 'p95Ms' | 'p99Ms' | 'maxMs'> {
  const seconds = r.elapsedMs / 1000;
  return {
    recordsPerSec: r.records / seconds,
    ...(recordBytes === undefined ? {} : { mbPerSec: (r.records * recordBytes) / 1e6 / seconds }),
    p50Ms: r.p50Ms,
    p95Ms: r.p95Ms,
    p99Ms: r.p99Ms,
    maxMs: r.maxMs,
  };
}
