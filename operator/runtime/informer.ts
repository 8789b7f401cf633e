/**
 * A shared informer: lists a resource, then watches it from the list's resourceVersion,
 * keeping a cache keyed `namespace/name` (or `name`) and emitting add / update / delete.
 *
 * Written over a ListWatchSource (client-node's Watch plus a list call) rather than on
 * client-node's makeInformer/ListWatch, because ListWatch (cache.js, v1.4) stops for good
 * on any error other than 410 (it only emits 'error' and waits for the caller to restart
 * it), retries with no backoff, has no clock to inject, no sync signal, and swallows a
 * watch ERROR event with code 410 until the stream happens to end.
 *
 * Behaviour:
 * - a watch that ends cleanly (server timeout) is resumed from the last resourceVersion
 *   seen (events and bookmarks advance it);
 * - 410 Gone (HTTP status, or an ERROR event with code 410) drops the resourceVersion and
 *   relists at once; the relist diff emits add / update / delete so handlers see every
 *   change that happened while the watch was down;
 * - any other failure (list or watch) is reported on 'error' and retried after an
 *   exponential backoff (lib/backoff.ts) measured on the injected clock; a watch that ends
 *   at once without events counts as a failure too, so a misbehaving server cannot spin it;
 * - handlers run synchronously inside the informer and must not block: controllers only
 *   enqueue keys there.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { backoffDelay } from '../../lib/backoff.js';
import type { BackoffOptions } from '../../lib/backoff.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
import type { Clock } from './clock.js';
import { delay, systemClock } from './clock.js';
import type { ListWatchSource, WatchEvent, WatchHandle } from './list-watch.js';

/** Options of an Informer. */
export interface InformerOptions {
  /** Timers for backoff (default: the system clock). */
  clock?: Clock;
  /** Backoff between failed attempts (default 800 ms doubling to 30 s, ±10 %). */
  backoff?: BackoffOptions;
  /** A watch that ends sooner than this without events counts as a failure (default 1,000 ms). */
  minWatchMs?: number;
  /**
   * A watch open longer than this is presumed dead (a silently dropped connection) and
   * resumed, ms (default 660,000: the server ends a watch within 600 s of asking).
   */
  maxWatchMs?: number;
  logger?: Logger;
}

export type AddHandler<T> = (obj: T) => void;
export type UpdateHandler<T> = (obj: T, old: T) => void;
export type DeleteHandler<T> = (obj: T) => void;
export type ErrorHandler = (err: unknown) => void;

/** The cache key of an object: `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(obj: KubernetesObject): string {
  const name = obj.metadata?.name ?? '';
  const namespace = obj.metadata?.namespace;
  return namespace ? `${namespace}/${name}` : name;
}

/** Splits a key of objectKey into namespace (undefined when cluster-scoped) and name. */
export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** True for 410 Gone: the resourceVersion asked for is no longer in the server's watch window. */
export function isResourceExpired(err: unknown): boolean {
  if (err instanceof KmqError) return err.context.statusCode === 410;
  const e = err as { statusCode?: unknown; code?: unknown } | null;
  return e?.statusCode === 410 || e?.code === 410;
}

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 800, maxMs: 30_000, multiplier: 2, jitter: 0.1 };

export class Informer<T extends KubernetesObject> {
  private cache = new Map<string, T>();
  private resourceVersion = '';
  private synced = false;
  private readonly syncWaiters: Array<() => void> = [];
  private readonly adds: AddHandler<T>[] = [];
  private readonly updates: UpdateHandler<T>[] = [];
  private readonly deletes: DeleteHandler<T>[] = [];
  private readonly errors: ErrorHandler[] = [];
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private readonly clock: Clock;
  private readonly backoff: BackoffOptions;
  private readonly minWatchMs: number;
  private readonly maxWatchMs: number;
  private readonly log: Logger;

  constructor(
    private readonly source: ListWatchSource<T>,
    options: InformerOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.minWatchMs = options.minWatchMs ?? 1000;
    this.maxWatchMs = options.maxWatchMs ?? 660_000;
    this.log = (options.logger ?? silentLogger()).child({ resource: source.description });
  }

  /** Registers a handler; an 'add' handler is called at once for every object already cached. */
  on(event: 'add', handler: AddHandler<T>): this;
  on(event: 'update', handler: UpdateHandler<T>): this;
  on(event: 'delete', handler: DeleteHandler<T>): this;
  on(event: 'error', handler: ErrorHandler): this;
  on(event: 'add' | 'update' | 'delete' | 'error', handler: AddHandler<T> | UpdateHandler<T> | ErrorHandler): this {
    if (event === 'add') {
      this.adds.push(handler as AddHandler<T>);
      // A handler added late still hears of every cached object, as with client-go's AddEventHandler.
      for (const obj of this.cache.values()) this.emit([handler as AddHandler<T>], obj);
    } else if (event === 'update') this.updates.push(handler as UpdateHandler<T>);
    else if (event === 'delete') this.deletes.push(handler as DeleteHandler<T>);
    else this.errors.push(handler as ErrorHandler);
    return this;
  }

  /** The cached object with `key` (see objectKey). */
  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  /** Every cached object, or those of one namespace. */
  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  /** The resourceVersion the informer would resume a watch from ('' before the first list or after a 410). */
  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  get running(): boolean {
    return this.loop !== undefined;
  }

  /** True once the first list has filled the cache. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once synced; false if `signal` aborted or the informer stopped first (or is not running). */
  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    if (!this.loop || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = (): void => resolve(false);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve(this.synced);
      });
    });
  }

  /** Starts listing and watching; a second call while running does nothing. */
  start(): void {
    if (this.loop) return;
    const abort = new AbortController();
    this.abort = abort;
    this.loop = this.run(abort.signal).finally(() => {
      this.loop = undefined;
      for (const wake of this.syncWaiters.splice(0)) wake();
    });
  }

  /** Stops the watch and waits for the loop to end; the cache keeps its last state. */
  async stop(): Promise<void> {
    this.abort?.abort();
    await this.loop;
  }

  private async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (this.resourceVersion === '') {
          await this.relist(signal);
          if (signal.aborted) break;
          failures = 0;
        }
        const started = this.clock.now();
        const events = await this.watchOnce(signal);
        if (signal.aborted) break;
        if (events > 0 || this.clock.now() - started >= this.minWatchMs) {
          failures = 0;
          continue;
        }
        throw new KmqError(ErrorCode.ConnectionClosed, 'Watch ended at once', { resource: this.source.description });
      } catch (err) {
        if (signal.aborted) break;
        if (isResourceExpired(err)) {
          this.log.info({ resourceVersion: this.resourceVersion }, 'Resource version too old, relisting');
          this.resourceVersion = '';
          continue;
        }
        const wait = backoffDelay(failures++, this.backoff);
        this.log.warn({ err, failures, retryInMs: wait }, 'List or watch failed');
        this.emit(this.errors, err);
        await delay(this.clock, wait, signal);
      }
    }
  }

  private async relist(signal: AbortSignal): Promise<void> {
    // A list call cannot be cancelled; stop() does not wait for it.
    let onAbort = (): void => undefined;
    const aborted = new Promise<undefined>((resolve) => {
      onAbort = () => resolve(undefined);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    const listed = await Promise.race([this.source.list(), aborted]).finally(() => signal.removeEventListener('abort', onAbort));
    if (signal.aborted || listed === undefined) return;
    const { items, resourceVersion } = listed;
    const old = this.cache;
    const fresh = new Map<string, T>();
    for (const item of items) fresh.set(objectKey(item), item);
    this.cache = fresh;
    this.resourceVersion = resourceVersion;
    for (const [key, obj] of fresh) {
      const prev = old.get(key);
      if (!prev) this.emit(this.adds, obj);
      else if (prev.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emitUpdate(obj, prev);
    }
    for (const [key, obj] of old) if (!fresh.has(key)) this.emit(this.deletes, obj);
    if (!this.synced) {
      this.synced = true;
      for (const wake of this.syncWaiters.splice(0)) wake();
    }
    this.log.debug({ items: items.length, resourceVersion }, 'Listed');
  }

  /** Runs one watch to its end; resolves with the number of object events, rejects on failure or 410. */
  private watchOnce(signal: AbortSignal): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      let events = 0;
      let finished = false;
      let handle: WatchHandle | undefined;
      const watchdog = this.clock.setTimeout(() => {
        this.log.info({ maxWatchMs: this.maxWatchMs }, 'Watch open too long, resuming it');
        finish(null);
      }, this.maxWatchMs);
      const finish = (err: unknown): void => {
        if (finished) return;
        finished = true;
        this.clock.clearTimeout(watchdog);
        signal.removeEventListener('abort', onAbort);
        handle?.abort();
        if (err && !signal.aborted) reject(err);
        else resolve(events);
      };
      const onAbort = (): void => finish(null);
      signal.addEventListener('abort', onAbort, { once: true });
      const onEvent = (event: WatchEvent<T>): void => {
        if (finished) return;
        if (event.type === 'ERROR') {
          const status = event.object as unknown as { code?: number; reason?: string; message?: string };
          finish(
            new KmqError(ErrorCode.Unknown, `Watch error: ${status.message ?? status.reason ?? 'unknown'}`, {
              resource: this.source.description,
              statusCode: status.code,
              reason: status.reason,
            }),
          );
          return;
        }
        const rv = event.object.metadata?.resourceVersion;
        if (event.type === 'BOOKMARK') {
          if (rv) this.resourceVersion = rv;
          return;
        }
        events++;
        this.apply(event);
        if (rv) this.resourceVersion = rv;
      };
      this.source.watch(this.resourceVersion, onEvent, finish).then(
        (h) => {
          handle = h;
          if (finished) h.abort();
        },
        finish,
      );
    });
  }

  private apply(event: WatchEvent<T>): void {
    const obj = event.object;
    const key = objectKey(obj);
    const prev = this.cache.get(key);
    if (event.type === 'DELETED') {
      this.cache.delete(key);
      this.emit(this.deletes, obj);
    } else if (!prev) {
      this.cache.set(key, obj);
      this.emit(this.adds, obj);
    } else {
      this.cache.set(key, obj);
      this.emitUpdate(obj, prev);
    }
  }

  private emit<A>(handlers: Array<(arg: A) => void>, arg: A): void {
    for (const h of handlers) {
      try {
        h(arg);
      } catch (err) {
        this.log.error({ err }, 'Informer handler threw');
      }
    }
  }

  private emitUpdate(obj: T, old: T): void {
    for (const h of this.updates) {
      try {
        h(obj, old);
      } catch (err) {
        this.log.error({ err }, 'Informer handler threw');
      }
    }
  }
}
