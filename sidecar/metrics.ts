import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { BucketHistogram } from './bucket-histogram.js';

/** The metrics of one subscription, label children resolved once (no label lookup per record). */
export interface SubscriptionProbe {
  /** A message was handed to the app (a Consume delivery or an OnMessage call). */
  delivered(): void;
  /** The source was acknowledged. */
  acked(): void;
  /** A delivery is to be delivered again. */
  retried(): void;
  /** A message went to the dead-letter target. */
  deadLettered(): void;
  /** An effectively-once delivery whose key was processed before: acked without reaching the app. */
  duplicateSkipped(): void;
  /** The app settled a delivery `seconds` after it was handed over. */
  handled(seconds: number): void;
  /** Records delivered and not yet committed on one partition (ordered subscriptions). */
  commitLag(topic: string, partition: number, records: number): void;
}

/**
 * Every metric the sidecar exports (kmq_sidecar_*), in one registry, and the
 * verbs that move them. Labels stay bounded: subscription, destination kind,
 * topic and partition of ordered subscriptions.
 */
export class SidecarProbe {
  readonly registry = new Registry();
  private readonly published: Counter<'kind'>;
  private readonly publishFailed: Counter<'kind'>;
  private readonly delivered: Counter<'subscription'>;
  private readonly acked: Counter<'subscription'>;
  private readonly retried: Counter<'subscription'>;
  private readonly deadLettered: Counter<'subscription'>;
  private readonly duplicates: Counter<'subscription'>;
  private readonly handlerSeconds: BucketHistogram;
  private readonly commitLag: Gauge<'subscription' | 'topic' | 'partition'>;
  /** Per subscription, delivered and acked since the last scrape. */
  private readonly counts: Array<{ labels: { subscription: string }; delivered: number; acked: number }> = [];

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'kmq_sidecar_process_' });
    const sub = ['subscription'] as const;
    this.published = new Counter({ name: 'kmq_sidecar_published_total', help: 'Messages the app published and the broker stored, per destination kind', labelNames: ['kind'], registers });
    this.publishFailed = new Counter({ name: 'kmq_sidecar_publish_failed_total', help: 'Publishes answered with an error, per destination kind', labelNames: ['kind'], registers });
    // The two per-message counters count in plain numbers and reach prom-client at scrape time (a labelled inc costs ~0.3 µs).
    const flush = (): void => this.flushCounts();
    this.delivered = new Counter({ name: 'kmq_sidecar_delivered_total', help: 'Messages handed to the app, per subscription', labelNames: sub, registers, collect: flush });
    this.acked = new Counter({ name: 'kmq_sidecar_acked_total', help: 'Messages acknowledged at the source, per subscription', labelNames: sub, registers, collect: flush });
    this.retried = new Counter({ name: 'kmq_sidecar_retried_total', help: 'Deliveries to be delivered again (retry, failure, handler timeout), per subscription', labelNames: sub, registers });
    this.deadLettered = new Counter({ name: 'kmq_sidecar_dead_lettered_total', help: 'Messages sent to the dead-letter target, per subscription', labelNames: sub, registers });
    this.duplicates = new Counter({ name: 'kmq_sidecar_duplicates_skipped_total', help: 'Effectively-once deliveries of an already processed key, acked without reaching the app', labelNames: sub, registers });
    this.handlerSeconds = new BucketHistogram(
      'kmq_sidecar_handler_seconds',
      'Time from handing a message to the app to its settlement, per subscription',
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      this.registry,
    );
    this.commitLag = new Gauge({
      name: 'kmq_sidecar_commit_lag_records',
      help: 'Records delivered on a partition and not yet covered by a committed offset (ordered subscriptions)',
      labelNames: ['subscription', 'topic', 'partition'],
      registers,
    });
  }

  /** A publish the broker stored. `kind`: topic, queue or exchange. */
  publishedOne(kind: string): void {
    this.published.inc({ kind });
  }

  /** `n` publishes of one kind the broker stored together. */
  publishedMany(kind: string, n: number): void {
    this.published.inc({ kind }, n);
  }

  publishFailedOne(kind: string): void {
    this.publishFailed.inc({ kind });
  }

  publishFailedMany(kind: string, n: number): void {
    this.publishFailed.inc({ kind }, n);
  }

  private flushCounts(): void {
    for (const c of this.counts) {
      if (c.delivered > 0) this.delivered.inc(c.labels, c.delivered);
      if (c.acked > 0) this.acked.inc(c.labels, c.acked);
      c.delivered = 0;
      c.acked = 0;
    }
  }

  /** The probe of one subscription. */
  subscription(name: string): SubscriptionProbe {
    const l = { subscription: name };
    let counts = this.counts.find((c) => c.labels.subscription === name);
    if (counts === undefined) {
      counts = { labels: l, delivered: 0, acked: 0 };
      this.counts.push(counts);
      // Exported as 0 before the first message.
      this.delivered.inc(l, 0);
      this.acked.inc(l, 0);
    }
    const c = counts;
    const retried = this.retried.labels(l);
    const deadLettered = this.deadLettered.labels(l);
    const duplicates = this.duplicates.labels(l);
    const handler = this.handlerSeconds.child(l);
    const lag = this.commitLag;
    return {
      delivered: () => void c.delivered++,
      acked: () => void c.acked++,
      retried: () => retried.inc(),
      deadLettered: () => deadLettered.inc(),
      duplicateSkipped: () => duplicates.inc(),
      handled: handler,
      commitLag: (topic, partition, records) => lag.set({ subscription: name, topic, partition: String(partition) }, records),
    };
  }
}
