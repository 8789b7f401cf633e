import { describe, expect, it } from 'vitest';
import { brokerCpuUsPerRecord, formatComparison } from './report.js';

describe('cluster comparison table', () => {
  it('puts the cluster beside the single node with the ratios of throughput and p99', () => {
    const out = formatComparison([
      {
        workload: 'e2e 1 KiB × 1p @5k/s',
        single: { workload: 'x', recordsPerSec: 5000, mbPerSec: 5.1, p50Ms: 1, p99Ms: 2, brokerCpuPct: 10 },
        cluster: { workload: 'y', recordsPerSec: 4000, mbPerSec: 4.1, p50Ms: 3, p99Ms: 7, brokerCpuPct: 40 },
      },
    ]);
    const [title, , row] = out.split('\n');
    expect(title).toContain('records/s 1');
    const cells = row!.trim().split(/\s{2,}/);
    expect(cells).toEqual(['e2e 1 KiB × 1p @5k/s', '5,000', '4,000', '0.80x', '5.1', '4.1', '1.00', '3.00', '2.00', '7.00', '3.50x', '10%', '40%', '20.0', '100.0']);
  });

  it('leaves a ratio and a per-record figure empty where a figure is missing or zero', () => {
    const out = formatComparison([{ workload: 'produce', single: { workload: 'x', recordsPerSec: 0 }, cluster: { workload: 'y', recordsPerSec: 100 } }]);
    expect(out.split('\n')[2]!.trim().split(/\s{2,}/)).toEqual(['produce', '0', '100']);
    expect(brokerCpuUsPerRecord({ workload: 'x', recordsPerSec: 0, brokerCpuPct: 10 })).toBeUndefined();
    expect(brokerCpuUsPerRecord({ workload: 'x', recordsPerSec: 50_000, brokerCpuPct: 100 })).toBe(20);
  });
});
