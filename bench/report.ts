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
