/**
 * The benchmark's printed table and target summary. Figures: records/s, MB/s
 * (10^6 bytes of record values per second), latency in ms, CPU in % of one core.
 */

/** One row of the results table. */
export interface Row {
  workload: string;
  recordsPerSec?: number;
  mbPerSec?: number;
  p50Ms?: number;
  p95Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  /** Produce MB/s as a fraction of the disk's sequential write bandwidth with fdatasync per 1 MiB. */
  diskFsyncFraction?: number;
  brokerCpuPct?: number;
  /** Per broker, when the row ran on a cluster (brokerCpuPct is their sum; in the note and the JSON, not a column). */
  brokerCpuPcts?: number[];
  /** CPU of the cluster's etcd, % of one core (in the note and the JSON, not a column). */
  etcdCpuPct?: number;
  /** Mean time the broker took per produce request (frame read to answer, fsync included). */
  brokerProduceMs?: number | undefined;
  clientCpuPct?: number;
  /** CPU of the sidecar process in this row, % of one core (in the note and the JSON, not a column). */
  sidecarCpuPct?: number;
  /** Whole machine: busy CPU time (user, system, irq, softirq, steal) as % of all CPUs, and iowait. */
  machineCpuPct?: number;
  iowaitPct?: number;
  /** Busy CPU not used by the broker or this row's clients, % of one core: kernel threads, softirq, other processes, steal. */
  otherCpuPct?: number;
  brokerPeakRssMb?: number;
  note?: string;
}

const COLUMNS: Array<{ title: string; width: number; cell: (r: Row) => string }> = [
  { title: 'workload', width: 30, cell: (r) => r.workload },
  { title: 'records/s', width: 11, cell: (r) => int(r.recordsPerSec) },
  { title: 'MB/s', width: 8, cell: (r) => fixed(r.mbPerSec, 1) },
  { title: 'p50 ms', width: 8, cell: (r) => fixed(r.p50Ms, 2) },
  { title: 'p95 ms', width: 8, cell: (r) => fixed(r.p95Ms, 2) },
  { title: 'p99 ms', width: 8, cell: (r) => fixed(r.p99Ms, 2) },
  { title: 'max ms', width: 8, cell: (r) => fixed(r.maxMs, 1) },
  { title: '/fsync disk', width: 11, cell: (r) => (r.diskFsyncFraction === undefined ? '' : `${(r.diskFsyncFraction * 100).toFixed(0)}%`) },
  { title: 'broker produce ms', width: 17, cell: (r) => fixed(r.brokerProduceMs, 2) },
  { title: 'broker CPU', width: 10, cell: (r) => pct(r.brokerCpuPct) },
  { title: 'client CPU', width: 10, cell: (r) => pct(r.clientCpuPct) },
  { title: 'machine busy', width: 12, cell: (r) => pct(r.machineCpuPct) },
  { title: 'iowait', width: 6, cell: (r) => pct(r.iowaitPct) },
  { title: 'other CPU', width: 9, cell: (r) => pct(r.otherCpuPct) },
  { title: 'broker RSS MB', width: 13, cell: (r) => fixed(r.brokerPeakRssMb, 0) },
];

function int(n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? '' : Math.round(n).toLocaleString('en-US');
}

function fixed(n: number | undefined, digits: number): string {
  return n === undefined || !Number.isFinite(n) ? '' : n.toFixed(digits);
}

function pct(n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? '' : `${n.toFixed(0)}%`;
}

export function formatTable(rows: Row[]): string {
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(COLUMNS[i]!.width) : c.padStart(COLUMNS[i]!.width))).join('  ');
  const out = [line(COLUMNS.map((c) => c.title)), line(COLUMNS.map((c) => '-'.repeat(c.width)))];
  for (const r of rows) out.push(line(COLUMNS.map((c) => c.cell(r))) + (r.note === undefined ? '' : `  ${r.note}`));
  return out.join('\n');
}

/** One target of the broker, checked against a measured figure (reported, never asserted). */
export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

export function formatTargets(checks: TargetCheck[]): string {
  return checks.map((c) => `  [${c.met ? 'met' : 'MISSED'}] ${c.target}: ${c.measured}`).join('\n');
}

/** One workload measured on a single broker and on a cluster, in the same run. */
export interface Comparison {
  workload: string;
  single: Row;
  cluster: Row;
}

/** Broker CPU time per record, µs (every broker of the row together). */
export function brokerCpuUsPerRecord(r: Row): number | undefined {
  if (r.brokerCpuPct === undefined || r.recordsPerSec === undefined || r.recordsPerSec === 0) return undefined;
  return (r.brokerCpuPct / 100 / r.recordsPerSec) * 1e6;
}

const ratio = (cluster: number | undefined, single: number | undefined): string =>
  cluster === undefined || single === undefined || !Number.isFinite(cluster) || !Number.isFinite(single) || single === 0 ? '' : `${(cluster / single).toFixed(2)}x`;

const COMPARISON_COLUMNS: Array<{ title: string; width: number; cell: (c: Comparison) => string }> = [
  { title: 'workload', width: 22, cell: (c) => c.workload },
  { title: 'records/s 1', width: 11, cell: (c) => int(c.single.recordsPerSec) },
  { title: 'records/s 3', width: 11, cell: (c) => int(c.cluster.recordsPerSec) },
  { title: '3 / 1', width: 6, cell: (c) => ratio(c.cluster.recordsPerSec, c.single.recordsPerSec) },
  { title: 'MB/s 1', width: 7, cell: (c) => fixed(c.single.mbPerSec, 1) },
  { title: 'MB/s 3', width: 7, cell: (c) => fixed(c.cluster.mbPerSec, 1) },
  { title: 'p50 ms 1', width: 8, cell: (c) => fixed(c.single.p50Ms, 2) },
  { title: 'p50 ms 3', width: 8, cell: (c) => fixed(c.cluster.p50Ms, 2) },
  { title: 'p99 ms 1', width: 8, cell: (c) => fixed(c.single.p99Ms, 2) },
  { title: 'p99 ms 3', width: 8, cell: (c) => fixed(c.cluster.p99Ms, 2) },
  { title: '3 / 1', width: 6, cell: (c) => ratio(c.cluster.p99Ms, c.single.p99Ms) },
  { title: 'broker CPU 1', width: 12, cell: (c) => pct(c.single.brokerCpuPct) },
  { title: 'brokers CPU 3', width: 13, cell: (c) => pct(c.cluster.brokerCpuPct) },
  { title: 'µs/record 1', width: 11, cell: (c) => fixed(brokerCpuUsPerRecord(c.single), 1) },
  { title: 'µs/record 3', width: 11, cell: (c) => fixed(brokerCpuUsPerRecord(c.cluster), 1) },
];

/** Single broker (1) beside the cluster (3), with the cluster / single-node ratios of throughput and p99. */
export function formatComparison(pairs: Comparison[]): string {
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(COMPARISON_COLUMNS[i]!.width) : c.padStart(COMPARISON_COLUMNS[i]!.width))).join('  ');
  const out = [line(COMPARISON_COLUMNS.map((c) => c.title)), line(COMPARISON_COLUMNS.map((c) => '-'.repeat(c.width)))];
  for (const p of pairs) out.push(line(COMPARISON_COLUMNS.map((c) => c.cell(p))));
  return out.join('\n');
}
