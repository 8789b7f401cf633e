import type { KubernetesObject } from '@kubernetes/client-node';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { ErrorContext } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { Informer } from './informer.js';
import { objectKey } from './informer.js';
import type { RateLimiter, RateLimiterOptions } from './rate-limiter.js';
import { defaultControllerRateLimiter } from './rate-limiter.js';
import { WorkQueue } from './work-queue.js';

/** What a reconcile asks for: nothing (done until the next event), or another pass after a delay. */
export interface ReconcileResult {
  /** Reconcile the key again after this many ms (its failure backoff is reset). */
  requeueAfterMs?: number;
}

/**
 * Brings the object named by `key` (`namespace/name`) to its desired state. Level-triggered:
 * it reads current state itself and must be idempotent. A thrown TerminalError is logged
 * and not retried; any other error requeues the key with backoff. `signal` aborts when the
 * controller stops and its drain timeout has passed.
 */
export type Reconciler = (key: string, signal: AbortSignal) => Promise<ReconcileResult | void>;

/**
 * An error that retrying cannot fix (an invalid spec, say): the controller records it and
 * does not requeue the key; the next change of the object triggers a new reconcile.
 */
export class TerminalError extends KmqError {
  constructor(message: string, context: ErrorContext = {}, options: { cause?: unknown; code?: ErrorCode } = {}) {
    super(options.code ?? ErrorCode.InvalidConfig, message, context, { cause: options.cause, retriable: false });
    this.name = 'TerminalError';
  }
}

/** Options of a Controller. */
export interface ControllerOptions {
  /** Names the controller in logs, e.g. 'topic'. */
  name: string;
  reconcile: Reconciler;
  /** Reconciles running at once, each on a different key (default 1). */
  workers?: number;
  /**
   * Every this many ms, enqueue the keys of every cached object again, so state outside
   * Kubernetes (a broker's topics) that drifted without an event is repaired (default: never).
   */
  resyncMs?: number;
  /** Backoff after failed reconciles (default: 5 ms doubling to 5 min per key, 10 qps burst 100 overall). */
  rateLimiter?: RateLimiter | RateLimiterOptions;
  clock?: Clock;
  logger?: Logger;
}

/** Maps an event's object to the keys to reconcile. */
export type KeyMapper<T> = (obj: T) => string | string[] | undefined;

/** Maps an owned object to its controlling owner's key, if the owner is of `kind` (and `apiVersion`, when given). */
export function ownerKey<T extends KubernetesObject>(kind: string, apiVersion?: string): KeyMapper<T> {
  return (obj) => {
    const ref = obj.metadata?.ownerReferences?.find((r) => r.controller && r.kind === kind && (apiVersion === undefined || r.apiVersion === apiVersion));
    if (!ref) return undefined;
    const ns = obj.metadata?.namespace;
    return ns ? `${ns}/${ref.name}` : ref.name;
  };
}

function isRateLimiter(x: RateLimiter | RateLimiterOptions | undefined): x is RateLimiter {
  return typeof (x as RateLimiter | undefined)?.when === 'function';
}

/**
 * Informers → work queue → reconcile, as controller-runtime: informer handlers only add
 * keys to the queue (so reconcile never runs inside an informer callback), N workers take
 * keys, and the queue guarantees one reconcile per key at a time.
 */
export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly reconcile: Reconciler;
  private readonly workers: number;
  private readonly informers = new Set<Informer<KubernetesObject>>();
  private readonly sources: Array<{ informer: Informer<KubernetesObject>; enqueue: (obj: KubernetesObject) => void }> = [];
  private readonly clock: Clock;
  private readonly resyncMs: number | undefined;
  private resyncTimer: unknown;
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private reconciles = 0;
  private failures = 0;

  constructor(options: ControllerOptions) {
    const clock = options.clock ?? systemClock;
    this.clock = clock;
    this.resyncMs = options.resyncMs;
    this.name = options.name;
    this.reconcile = options.reconcile;
    this.workers = options.workers ?? 1;
    if (!Number.isInteger(this.workers) || this.workers < 1) {
      throw new KmqError(ErrorCode.InvalidConfig, `Controller ${options.name}: workers must be an integer >= 1, got ${this.workers}`, { setting: 'workers' }, { retriable: false });
    }
    const rateLimiter = isRateLimiter(options.rateLimiter) ? options.rateLimiter : defaultControllerRateLimiter(options.rateLimiter ?? {}, clock);
    this.queue = new WorkQueue({ rateLimiter, clock });
    this.log = (options.logger ?? silentLogger()).child({ controller: options.name });
  }

  /** Reconciles finished (successfully or not) and those that failed, since start. */
  get stats(): { reconciles: number; failures: number } {
    return { reconciles: this.reconciles, failures: this.failures };
  }

  /**
   * Enqueues keys for every add, update and delete the informer reports: the object's own
   * key by default, or what `map` returns (e.g. ownerKey('Topic') for owned objects).
   */
  watch<T extends KubernetesObject>(informer: Informer<T>, map: KeyMapper<T> = objectKey): this {
    this.informers.add(informer as unknown as Informer<KubernetesObject>);
    const enqueue = (obj: T): void => {
      const keys = map(obj);
      if (keys === undefined) return;
      for (const key of Array.isArray(keys) ? keys : [keys]) this.queue.add(key);
    };
    informer.on('add', enqueue);
    informer.on('update', (obj) => enqueue(obj));
    informer.on('delete', enqueue);
    this.sources.push({ informer: informer as unknown as Informer<KubernetesObject>, enqueue: enqueue as (obj: KubernetesObject) => void });
    return this;
  }

  /** Enqueues `key` by hand (e.g. a periodic resync). */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  /**
   * Waits until every watched informer has synced (so reconciles see a full cache), then
   * starts the workers. Resolves false when `signal` aborted first.
   */
  async start(signal?: AbortSignal): Promise<boolean> {
    if (this.running) return true;
    for (const informer of this.informers) {
      if (!(await informer.waitForSync(signal))) return false;
    }
    if (signal?.aborted) return false;
    this.log.info({ workers: this.workers }, 'Starting workers');
    this.running = Promise.all(Array.from({ length: this.workers }, () => this.work())).then(() => undefined);
    if (this.resyncMs !== undefined && this.resyncMs > 0) this.scheduleResync(this.resyncMs);
    return true;
  }

  /**
   * Stops taking new keys, lets in-flight and queued reconciles finish for up to
   * `drainTimeoutMs`, then aborts the signal given to reconciles still running and waits
   * for them. Resolves true when the queue drained in time.
   */
  async stop(drainTimeoutMs = 30_000): Promise<boolean> {
    if (this.resyncTimer !== undefined) this.clock.clearTimeout(this.resyncTimer);
    if (!this.running) {
      this.queue.shutDown();
      this.abort.abort();
      return true;
    }
    const drained = await this.queue.shutDownWithDrain(drainTimeoutMs);
    if (!drained) this.log.warn({ drainTimeoutMs, inFlight: this.queue.inFlight }, 'Drain timed out, aborting reconciles');
    this.abort.abort();
    await this.running;
    this.log.info({ drained }, 'Stopped');
    return drained;
  }

  private scheduleResync(ms: number): void {
    this.resyncTimer = this.clock.setTimeout(() => {
      if (this.queue.isShuttingDown) return;
      for (const { informer, enqueue } of this.sources) for (const obj of informer.list()) enqueue(obj);
      this.scheduleResync(ms);
    }, ms);
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      if (this.abort.signal.aborted) {
        this.queue.done(key);
        continue;
      }
      try {
        await this.process(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async process(key: string): Promise<void> {
    try {
      const result = await this.reconcile(key, this.abort.signal);
      this.reconciles++;
      this.queue.forget(key);
      if (result?.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      this.reconciles++;
      this.failures++;
      if (err instanceof TerminalError) {
        this.queue.forget(key);
        this.log.error({ err, key }, 'Reconcile failed terminally, not requeued');
        return;
      }
      const requeues = this.queue.numRequeues(key);
      this.queue.addRateLimited(key);
      this.log.warn({ err, key, requeues: requeues + 1 }, 'Reconcile failed, requeued with backoff');
    }
  }
}
