import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BucketHistogram } from './bucket-histogram.js';

describe('BucketHistogram', () => {
  it('renders exactly what prom-client’s Histogram renders for the same observations', async () => {
    const bounds = [0.001, 0.01, 0.1, 1];
    const ours = new Registry();
    const theirs = new Registry();
    const h = new BucketHistogram('x_seconds', 'help text', bounds, ours);
    const p = new Histogram({ name: 'x_seconds', help: 'help text', labelNames: ['subscription'], buckets: bounds, registers: [theirs] });
    const a = h.child({ subscription: 'a' });
    const b = h.child({ subscription: 'b' });
    // Values on, between and past the bounds.
    const samples: Array<[string, number]> = [['a', 0.0005], ['a', 0.001], ['a', 0.05], ['b', 2], ['a', 0.1], ['b', 0.0101], ['a', 7]];
    for (const [s, v] of samples) {
      (s === 'a' ? a : b)(v);
      p.observe({ subscription: s }, v);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toContain('x_seconds_bucket{le="0.001",subscription="a"} 2');
    h.reset();
    p.reset();
    expect(await ours.metrics()).toContain('x_seconds_count{subscription="b"} 0');
  });
});
