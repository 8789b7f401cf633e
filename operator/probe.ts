import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Controller, Reconciler } from './runtime/controller.js';

/**
 * Every metric of the operator process. Reconcile counts are read from each controller's
 * stats at scrape time (so every controller is counted, however it was built); reconcile
 * durations are observed by reconcilers wrapped with `timed`.
 */
export class OperatorProbe {
  readonly registry = new Registry();
  private readonly controllers: Controller[] = [];
  private readonly seconds: Histogram<'controller'>;
  private leading = false;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'kmq_operator_' });
    const controllers = this.controllers;
    new Counter({
      name: 'kmq_operator_reconciles_total',
      help: 'Reconciles finished, successful or not, per controller',
      labelNames: ['controller'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const c of controllers) this.inc({ controller: c.name }, c.stats.reconciles);
      },
    });
    new Counter({
      name: 'kmq_operator_reconcile_errors_total',
      help: 'Reconciles that failed (requeued with backoff, or terminal), per controller',
      labelNames: ['controller'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const c of controllers) this.inc({ controller: c.name }, c.stats.failures);
      },
    });
    new Gauge({
      name: 'kmq_operator_queue_depth',
      help: 'Keys waiting in the work queue, per controller',
      labelNames: ['controller'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const c of controllers) this.set({ controller: c.name }, c.queue.length);
      },
    });
    const isLeading = (): boolean => this.leading;
    new Gauge({
      name: 'kmq_operator_leader',
      help: '1 while this replica holds the leader Lease and runs the controllers',
      registers: [this.registry],
      collect() {
        this.set(isLeading() ? 1 : 0);
      },
    });
    this.seconds = new Histogram({
      name: 'kmq_operator_reconcile_seconds',
      help: 'Time one reconcile took, per controller',
      labelNames: ['controller'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
  }

  /** Counts the reconciles of `controller` from now on. */
  controllerAdded(controller: Controller): void {
    this.controllers.push(controller);
  }

  leadershipChanged(leading: boolean): void {
    this.leading = leading;
  }

  /** `reconcile`, with each call's duration observed under `controller`. */
  timed(controller: string, reconcile: Reconciler): Reconciler {
    return async (key, signal) => {
      const end = this.seconds.startTimer({ controller });
      try {
        return await reconcile(key, signal);
      } finally {
        end();
      }
    };
  }
}
