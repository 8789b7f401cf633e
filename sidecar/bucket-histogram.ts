import type { MetricValueWithName, Registry } from 'prom-client';

/**
 * A Prometheus histogram for per-message observations, registered in a prom-client
 * registry and rendered by it. prom-client's own Histogram validates and hashes the
 * labels on every observe (~0.7 µs); here each label set gets its bucket counters
 * once (child()), and an observation is a bound search and three additions.
 */
export class BucketHistogram {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly children: Array<{ labels: Record<string, string>; counts: Float64Array; sum: number; count: number }> = [];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly upperBounds: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  /** The observer of one label set (created once; cheap to call per message). */
  child(labels: Record<string, string>): (value: number) => void {
    const c = { labels, counts: new Float64Array(this.upperBounds.length + 1), sum: 0, count: 0 };
    this.children.push(c);
    const bounds = this.upperBounds;
    return (value: number): void => {
      let i = 0;
      while (i < bounds.length && value > bounds[i]!) i++;
      c.counts[i]!++;
      c.sum += value;
      c.count++;
    };
  }

  /** What the registry renders (the shape of prom-client's metric objects). */
  get(): { name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Array<MetricValueWithName<string>> } {
    const values: Array<MetricValueWithName<string>> = [];
    for (const c of this.children) {
      let cumulative = 0;
      for (let i = 0; i <= this.upperBounds.length; i++) {
        cumulative += c.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le: i < this.upperBounds.length ? this.upperBounds[i]! : '+Inf', ...c.labels }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_sum`, labels: c.labels, value: c.sum });
      values.push({ metricName: `${this.name}_count`, labels: c.labels, value: c.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const c of this.children) {
      c.counts.fill(0);
      c.sum = 0;
      c.count = 0;
    }
  }
}
