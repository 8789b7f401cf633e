import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { silentLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { Controller } from './controller.js';
import { Informer } from './informer.js';
import type { InformerOptions } from './informer.js';
import { LeaderElector, apiLeaseStore } from './leader-election.js';
import type { LeaseStore } from './leader-election.js';
import type { ListWatchSource } from './list-watch.js';

/** Leader election settings of a Manager (see LeaderElectionOptions for the defaults). */
export interface ManagerLeaderElection {
  namespace: string;
  /** The Lease's name (e.g. 'kmq-operator'). */
  name: string;
  /** Default: hostname plus a random suffix. */
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Default true: a graceful stop hands the Lease over at once. */
  releaseOnStop?: boolean;
  /** Default: the Lease through client-node with the manager's kubeConfig. */
  store?: LeaseStore;
}

/** Options of a Manager. */
export interface ManagerOptions {
  kubeConfig: KubeConfig;
  /** Run controllers only while holding this Lease; omit to run them at once (a single replica). */
  leaderElection?: ManagerLeaderElection;
  /** How long a stop waits for queued and in-flight reconciles, ms (default 30,000). */
  drainTimeoutMs?: number;
  /** Stop gracefully on SIGTERM and SIGINT (default false; the operator's main sets it). */
  handleSignals?: boolean;
  /** Called when this replica starts leading (the Lease is won, when electing), before any controller starts. */
  onStartedLeading?: () => void;
  /** Called once the controllers have stopped, before the Lease is released. */
  onStoppedLeading?: () => void;
  /** Passed to the informers the manager creates. */
  informer?: Omit<InformerOptions, 'logger' | 'clock'>;
  clock?: Clock;
  logger?: Logger;
}

/** Why a Manager ended. */
export type ManagerExit = 'stopped' | 'lost-leadership';

/**
 * Runs a set of controllers over shared informers: informers start at once (a standby
 * replica keeps a warm cache), controllers only while this replica leads. Losing the Lease
 * ends the Manager with 'lost-leadership', as controller-runtime does: the process should
 * exit and be restarted rather than carry on with state from its term. A Manager runs once.
 */
export class Manager {
  private readonly informers = new Map<string, Informer<KubernetesObject>>();
  private readonly controllers: Controller[] = [];
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly elector: LeaderElector | undefined;
  private readonly drainTimeoutMs: number;
  private readonly stopping = new AbortController();
  private started = false;
  private leading = false;
  private exit: Promise<ManagerExit> | undefined;
  private readonly signalHandler = (signal: NodeJS.Signals): void => {
    this.log.info({ signal }, 'Signal received, stopping');
    void this.stop();
  };

  constructor(private readonly options: ManagerOptions) {
    this.clock = options.clock ?? systemClock;
    this.log = options.logger ?? silentLogger();
    this.drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    const le = options.leaderElection;
    if (le) {
      const identity = le.identity ?? `${os.hostname()}-${randomBytes(4).toString('hex')}`;
      const config = {
        namespace: le.namespace,
        name: le.name,
        identity,
        leaseDurationMs: le.leaseDurationMs,
        renewDeadlineMs: le.renewDeadlineMs,
        retryPeriodMs: le.retryPeriodMs,
        releaseOnStop: le.releaseOnStop,
        store: le.store ?? apiLeaseStore(options.kubeConfig),
        clock: this.clock,
        logger: this.log,
        onStartedLeading: (signal: AbortSignal) => this.lead(signal),
        onStoppedLeading: () => this.stopControllers(),
      };
      this.elector = new LeaderElector(config);
    }
  }

  /** True from winning the Lease until the controllers have stopped. */
  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * The informer of `source`, shared by every controller that asks for the same resource
   * (sources are told apart by their description, i.e. their path).
   */
  informer<T extends KubernetesObject>(source: ListWatchSource<T>): Informer<T> {
    let informer = this.informers.get(source.description);
    if (!informer) {
      informer = new Informer(source as ListWatchSource<KubernetesObject>, { ...this.options.informer, clock: this.clock, logger: this.log });
      this.informers.set(source.description, informer);
      if (this.started) informer.start();
    }
    return informer as unknown as Informer<T>;
  }

  add(controller: Controller): this {
    this.controllers.push(controller);
    return this;
  }

  /** Starts the informers and the campaign (or the controllers); returns the promise of the end. */
  start(): Promise<ManagerExit> {
    if (this.exit) return this.exit;
    this.started = true;
    if (this.options.handleSignals) {
      process.once('SIGTERM', this.signalHandler);
      process.once('SIGINT', this.signalHandler);
    }
    for (const informer of this.informers.values()) informer.start();
    this.exit = this.run();
    return this.exit;
  }

  /** Resolves when the Manager has ended: 'stopped' after stop(), 'lost-leadership' otherwise. */
  get done(): Promise<ManagerExit> {
    return this.exit ?? Promise.resolve('stopped');
  }

  /**
   * Graceful stop: controllers stop taking keys and drain for up to drainTimeoutMs, the
   * informers stop, then the Lease is released (unless releaseOnStop is false).
   */
  async stop(): Promise<ManagerExit> {
    this.stopping.abort();
    await this.elector?.stop();
    return this.done;
  }

  private async run(): Promise<ManagerExit> {
    try {
      if (this.elector) {
        await this.elector.run();
      } else {
        const lead = this.lead(this.stopping.signal);
        await new Promise<void>((resolve) => this.stopping.signal.addEventListener('abort', () => resolve(), { once: true }));
        await lead;
        await this.stopControllers();
      }
    } finally {
      await Promise.all([...this.informers.values()].map((i) => i.stop()));
      if (this.options.handleSignals) {
        process.removeListener('SIGTERM', this.signalHandler);
        process.removeListener('SIGINT', this.signalHandler);
      }
    }
    const why: ManagerExit = this.stopping.signal.aborted ? 'stopped' : 'lost-leadership';
    this.log.info({ why }, 'Manager ended');
    return why;
  }

  /** Starts the controllers (after their informers synced) and marks this replica leading. */
  private async lead(signal: AbortSignal): Promise<void> {
    this.leading = true;
    this.options.onStartedLeading?.();
    for (const controller of this.controllers) {
      if (!(await controller.start(signal))) return;
    }
    if (!signal.aborted) this.log.info({ controllers: this.controllers.map((c) => c.name) }, 'Controllers running');
  }

  private async stopControllers(): Promise<void> {
    // Informers stop first so no new keys arrive while the queues drain.
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    await Promise.all(this.controllers.map((c) => c.stop(this.drainTimeoutMs)));
    const wasLeading = this.leading;
    this.leading = false;
    if (wasLeading) this.options.onStoppedLeading?.();
  }
}
