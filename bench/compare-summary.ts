/**
 * The comparison's per-run results, their summary over repetitions and the
 * formatting of the report's cells. A run that measured no latency (a consumer
 * that received nothing past the warm-up) has no percentiles: its cells read "–",
 * never 0.
 */
import type { SystemId } from './peers/peer-client.js';

/** One measured run of one workload on one system. */
export interface RunResult {
  system: SystemId;
  workload: string;
  rep: number;
  msgsPerSec: number;
  mbPerSec: number;
  p50Ms?: number;
  p95Ms?: number;
  p99Ms?: number;
  p999Ms?: number;
  maxMs?: number;
  /** e2e: the rate the producer reached, msg/s. */
  achievedRate?: number;
  serverCpuPct: number;
  clientCpuPct: number;
  problems: string[];
  raw: unknown;
}

/** A workload's runs on one system, summarised. */
export interface Summary {
  system: SystemId;
  workload: string;
  runs: number;
  msgsPerSec: number;
  min: number;
  max: number;
  mbPerSec: number;
  /** Latencies: mean over the runs that measured any; undefined when none did. */
  p50Ms?: number;
  p95Ms?: number;
  p99Ms?: number;
  p999Ms?: number;
  maxMs?: number;
  achievedRate?: number;
  serverCpuPct: number;
  clientCpuPct: number;
  problems: string[];
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
export const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
export const int = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : Math.round(x).toLocaleString('en-US'));
export const fix = (x: number | undefined, d: number): string => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));
export const pct = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : `${x.toFixed(0)}%`);

/** A measured figure, or undefined: a worker's NaN arrives as null through JSON. */
export const measuredOrUndefined = (x: number | null | undefined): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);

/** The latency figures of a consumer's result, all undefined when it measured none. */
export function latencyFigures(c: { measured: number; p50Ms: number; p95Ms: number; p99Ms: number; p999Ms: number; maxMs: number }): Pick<RunResult, 'p50Ms' | 'p95Ms' | 'p99Ms' | 'p999Ms' | 'maxMs'> {
  if (!(c.measured > 0)) return {};
  return { p50Ms: measuredOrUndefined(c.p50Ms), p95Ms: measuredOrUndefined(c.p95Ms), p99Ms: measuredOrUndefined(c.p99Ms), p999Ms: measuredOrUndefined(c.p999Ms), maxMs: measuredOrUndefined(c.maxMs) };
}

export function summarise(runs: RunResult[]): Summary {
  const r0 = runs[0]!;
  // Only runs that measured the figure: a run without latencies must not count as 0 ms.
  const measuredMean = (k: 'p50Ms' | 'p95Ms' | 'p99Ms' | 'p999Ms' | 'maxMs' | 'achievedRate'): number | undefined => {
    const xs = runs.map((r) => measuredOrUndefined(r[k])).filter((x): x is number => x !== undefined);
    return xs.length === 0 ? undefined : mean(xs);
  };
  return {
    system: r0.system,
    workload: r0.workload,
    runs: runs.length,
    msgsPerSec: median(runs.map((r) => r.msgsPerSec)),
    min: Math.min(...runs.map((r) => r.msgsPerSec)),
    max: Math.max(...runs.map((r) => r.msgsPerSec)),
    mbPerSec: median(runs.map((r) => r.mbPerSec)),
    p50Ms: measuredMean('p50Ms'),
    p95Ms: measuredMean('p95Ms'),
    p99Ms: measuredMean('p99Ms'),
    p999Ms: measuredMean('p999Ms'),
    maxMs: measuredMean('maxMs'),
    achievedRate: measuredMean('achievedRate'),
    serverCpuPct: mean(runs.map((r) => r.serverCpuPct)),
    clientCpuPct: mean(runs.map((r) => r.clientCpuPct)),
    problems: [...new Set(runs.flatMap((r) => r.problems.map((p) => `rep ${r.rep}: ${p}`)))],
  };
}

/** kmq p99 over the peer's, "–" when either measured none. */
export function p99Ratio(kmq: Summary | undefined, peer: Summary): string {
  return kmq?.p99Ms !== undefined && peer.p99Ms !== undefined ? fix(kmq.p99Ms / peer.p99Ms, 2) : '–';
}

/** The latency cells of an e2e row: p50, p95, p99, p99.9 (2 decimals), max (1 decimal). */
export function latencyCells(sm: Summary): string[] {
  return [fix(sm.p50Ms, 2), fix(sm.p95Ms, 2), fix(sm.p99Ms, 2), fix(sm.p999Ms, 2), fix(sm.maxMs, 1)];
}
