import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { barChart, latencyChart } from './charts.js';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('charts', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  const tmp = (): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-charts-test-'));
    dirs.push(d);
    return d;
  };

  it('draws throughput bars as a PNG', async () => {
    const dir = tmp();
    const out = await barChart(
      [
        { group: 'produce-1p', series: 'kmq', value: 500_000 },
        { group: 'produce-1p', series: 'kafka', value: 90_000 },
      ],
      'Throughput',
      'messages/s',
      path.join(dir, 'bars'),
    );
    expect(out).toEqual({ file: path.join(dir, 'bars.png') });
    const png = fs.readFileSync(out.file);
    expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    // Rendered at 2× zoom: wider than a bare axis.
    expect(png.readUInt32BE(16)).toBeGreaterThan(200);
  });

  it('draws latency percentiles and leaves out points a log scale cannot show', async () => {
    const dir = tmp();
    const out = await latencyChart(
      [
        { series: 'kmq', percentile: 'p50', ms: 0.6 },
        { series: 'kmq', percentile: 'p99', ms: 9 },
        { series: 'redis', percentile: 'p50', ms: NaN },
        { series: 'redis', percentile: 'p99', ms: 0 },
      ],
      ['p50', 'p99'],
      'Latency',
      path.join(dir, 'lat'),
    );
    expect(out.file).toBe(path.join(dir, 'lat.png'));
    expect(fs.readFileSync(out.file).subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
  });
});
