import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { RateLimiter } from './rate-limiter.js';
import { defaultControllerRateLimiter } from './rate-limiter.js';

/** Options of a WorkQueue. */
export interface WorkQueueOptions {
  /** Delays for addRateLimited (default: defaultControllerRateLimiter()). */
  rateLimiter?: RateLimiter;
  /** Timers for addAfter (default: the system clock). */
  clock?: Clock;
}

/**
 * A rate-limited work queue of keys, as client-go's workqueue:
 * - a key waiting in the queue is there once (`dirty`), however often it is added;
 * - a key handed out by `get` is in `processing` until `done`; adding it meanwhile marks
 *   it dirty, and `done` puts it back, so no two workers ever hold the same key;
 * - `addAfter` keeps the earliest due time per key; `addRateLimited` asks the rate limiter
 *   how long to wait; `forget` clears the key's failure history.
 * After `shutDown`, adds are ignored and delayed keys dropped; `get` still hands out the
 * keys already queued, then returns undefined.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly waiting = new Map<string, { at: number; handle: unknown }>();
  private readonly getters: Array<(key: string | undefined) => void> = [];
  private readonly drainWaiters: Array<() => void> = [];
  private shuttingDown = false;
  private readonly rateLimiter: RateLimiter;
  private readonly clock: Clock;

  constructor(options: WorkQueueOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter({}, this.clock);
  }

  /** Keys waiting to be handed out (not those in processing or delayed). */
  get length(): number {
    return this.queue.length;
  }

  /** Keys handed out and not yet done. */
  get inFlight(): number {
    return this.processing.size;
  }

  /** Keys scheduled by addAfter / addRateLimited and not yet due. */
  get delayed(): number {
    return this.waiting.size;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /** Adds `key` after `ms`; an earlier pending due time for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + ms;
    const existing = this.waiting.get(key);
    if (existing) {
      if (existing.at <= at) return;
      this.clock.clearTimeout(existing.handle);
    }
    const handle = this.clock.setTimeout(() => {
      this.waiting.delete(key);
      this.add(key);
    }, ms);
    this.waiting.set(key, { at, handle });
  }

  /** Adds `key` after the delay the rate limiter gives it (it grows with each call until `forget`). */
  addRateLimited(key: string): void {
    this.addAfter(key, this.rateLimiter.when(key));
  }

  /** Clears the failure history of `key`: its next addRateLimited starts from the base delay. */
  forget(key: string): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.rateLimiter.numRequeues(key);
  }

  /** The next key, once one is queued; undefined once shut down and empty. Call `done(key)` after processing it. */
  get(): Promise<string | undefined> {
    const key = this.take();
    if (key !== undefined || this.shuttingDown) return Promise.resolve(key);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** Marks `key` processed; if it was added meanwhile it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) this.push(key);
    if (this.processing.size === 0) this.wakeDrainWaiters();
  }

  /** Stops accepting keys and drops delayed ones; waiting `get` calls return undefined. */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const { handle } of this.waiting.values()) this.clock.clearTimeout(handle);
    this.waiting.clear();
    for (const resolve of this.getters.splice(0)) resolve(undefined);
  }

  /**
   * shutDown, then waits until no key is in processing and none is queued (workers keep
   * taking queued keys meanwhile). Resolves true when drained, false when `timeoutMs`
   * passed first.
   */
  async shutDownWithDrain(timeoutMs = Infinity): Promise<boolean> {
    this.shutDown();
    if (this.drained()) return true;
    return new Promise<boolean>((resolve) => {
      let handle: unknown;
      const onDrained = (): void => {
        if (handle !== undefined) this.clock.clearTimeout(handle);
        resolve(true);
      };
      this.drainWaiters.push(onDrained);
      if (Number.isFinite(timeoutMs)) {
        handle = this.clock.setTimeout(() => {
          const i = this.drainWaiters.indexOf(onDrained);
          if (i >= 0) this.drainWaiters.splice(i, 1);
          resolve(false);
        }, timeoutMs);
      }
    });
  }

  private drained(): boolean {
    return this.processing.size === 0 && this.queue.length === 0;
  }

  private wakeDrainWaiters(): void {
    if (!this.shuttingDown || !this.drained()) return;
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }

  private push(key: string): void {
    this.queue.push(key);
    const getter = this.getters.shift();
    if (getter) getter(this.take());
  }

  private take(): string | undefined {
    const key = this.queue.shift();
    if (key === undefined) return undefined;
    this.dirty.delete(key);
    this.processing.add(key);
    return key;
  }
}
