import { describe, expect, it } from 'vitest';
import { latencyCells, latencyFigures, p99Ratio, summarise } from './compare-summary.js';
import type { RunResult } from './compare-summary.js';

const run = (over: Partial<RunResult>): RunResult => ({ system: 'kafka', workload: 'e2e-50k', rep: 1, msgsPerSec: 1000, mbPerSec: 0.1, serverCpuPct: 50, clientCpuPct: 50, problems: [], raw: {}, ...over });

describe('compare summary', () => {
  it('shows "–" for a run that measured no latency, and a "–" ratio', () => {
    // A worker's NaN percentiles arrive as null through JSON.
    const consumer = JSON.parse(JSON.stringify({ measured: 0, p50Ms: NaN, p95Ms: NaN, p99Ms: NaN, p999Ms: NaN, maxMs: NaN })) as Parameters<typeof latencyFigures>[0];
    const sm = summarise([run({ ...latencyFigures(consumer) }), run({ rep: 2, ...latencyFigures(consumer) })]);
    expect(latencyCells(sm)).toEqual(['–', '–', '–', '–', '–']);
    const kmq = summarise([run({ system: 'kmq', p50Ms: 1, p95Ms: 2, p99Ms: 3, p999Ms: 4, maxMs: 5 })]);
    expect(p99Ratio(kmq, sm)).toBe('–');
    expect(p99Ratio(sm, kmq)).toBe('–');
  });

  it('averages only the runs that measured latency', () => {
    const sm = summarise([run({ p50Ms: 2, p95Ms: 4, p99Ms: 6, p999Ms: 8, maxMs: 10 }), run({ rep: 2 }), run({ rep: 3, p50Ms: 4, p95Ms: 6, p99Ms: 8, p999Ms: 10, maxMs: 12 })]);
    expect(latencyCells(sm)).toEqual(['3.00', '5.00', '7.00', '9.00', '11.0']);
    const kmq = summarise([run({ system: 'kmq', p99Ms: 3.5 })]);
    expect(p99Ratio(kmq, sm)).toBe('0.50');
  });

  it('keeps a measured 0 ms as a figure', () => {
    const figures = latencyFigures({ measured: 10, p50Ms: 0, p95Ms: 0.5, p99Ms: 1, p999Ms: 1, maxMs: 2 });
    expect(latencyCells(summarise([run(figures)]))).toEqual(['0.00', '0.50', '1.00', '1.00', '2.0']);
  });
});
