import { backoffDelay, sleep } from '../../lib/backoff.js';
import type { BackoffOptions } from '../../lib/backoff.js';
import { toKmqError } from '../../lib/errors.js';
import type { KmqError } from '../../lib/errors.js';
import type { CoordinationStore, StopWatch, VersionedValue, WatchEvent } from './coordination-store.js';

/** One key's change as an informer reports it: the value before and after (undefined = absent). */
export interface KeyChange {
  key: string;
  before: VersionedValue | undefined;
  after: VersionedValue | undefined;
}

/** Options of PrefixInformer. */
export interface PrefixInformerOptions {
  store: CoordinationStore;
  /** The key prefix to mirror. */
  prefix: string;
  /** Only keys this accepts are kept (e.g. `controller` but not `controller-epoch`); default all. */
  filter?: (key: string) => boolean;
  /** Called with every batch of changes, in store order; never throws back into the informer. */
  onChange: (changes: KeyChange[]) => void;
  /** Called when listing or watching fails (it is retried with `backoff`). */
  onError?: (err: KmqError) => void;
  /** Retry delays of list and watch (default 100 ms doubling to 2 s, ±20 %). */
  backoff?: BackoffOptions;
}

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 2000, multiplier: 2, jitter: 0.2 };

/**
 * A local copy of every key under a prefix, kept current by a watch: watch
 * first, then list, so nothing written in between is missed; on `resync`, list
 * again. Events that arrive while a list is in flight are buffered and replayed
 * over the listed snapshot, each applied only if newer than what the key holds,
 * so the copy never goes back in time and is swapped in whole (readers never see
 * a half-listed prefix). Failed lists and watches are retried with backoff until
 * `stop()`.
 */
export class PrefixInformer {
  private entries = new Map<string, VersionedValue>();
  private buffer: WatchEvent[] | undefined;
  private listGeneration = 0;
  private stopWatch: StopWatch | undefined;
  private stopped = false;
  private synced = false;
  private readonly backoff: BackoffOptions;

  constructor(private readonly options: PrefixInformerOptions) {
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
  }

  /** Starts the watch and resolves after the first complete list (retrying store failures until `stop()`). */
  async start(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        this.buffer = [];
        const stop = await this.options.store.watch(this.options.prefix, (event) => this.onEvent(event));
        if (this.stopped) return void (await stop().catch(() => undefined));
        this.stopWatch = stop;
        break;
      } catch (err) {
        this.report(err);
        await sleep(backoffDelay(attempt, this.backoff));
      }
    }
    await this.relist();
  }

  /** True once the first list has completed. */
  get ready(): boolean {
    return this.synced;
  }

  get(key: string): VersionedValue | undefined {
    return this.entries.get(key);
  }

  /** Every key and value held, in no particular order. */
  all(): ReadonlyMap<string, VersionedValue> {
    return this.entries;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const stop = this.stopWatch;
    this.stopWatch = undefined;
    await stop?.().catch(() => undefined);
  }

  private onEvent(event: WatchEvent): void {
    if (this.stopped) return;
    if (event.type === 'resync') {
      // Events may be missing: list again (superseding a list in flight, whose snapshot may predate the gap).
      this.buffer = [];
      void this.relist();
      return;
    }
    if (!this.accepts(event.key)) return;
    if (this.buffer !== undefined) {
      this.buffer.push(event);
      return;
    }
    const change = applyEvent(this.entries, event);
    if (change) this.emit([change]);
  }

  private async relist(): Promise<void> {
    const generation = ++this.listGeneration;
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const listed = await this.options.store.list(this.options.prefix);
        if (generation !== this.listGeneration || this.stopped) return;
        const next = new Map<string, VersionedValue>();
        for (const e of listed) if (this.accepts(e.key)) next.set(e.key, { value: e.value, version: e.version });
        for (const event of this.buffer ?? []) if (event.type !== 'resync') applyEvent(next, event);
        this.buffer = undefined;
        const changes = diff(this.entries, next);
        this.entries = next;
        this.synced = true;
        if (changes.length > 0) this.emit(changes);
        return;
      } catch (err) {
        if (generation !== this.listGeneration) return;
        this.report(err);
        await sleep(backoffDelay(attempt, this.backoff));
        if (generation !== this.listGeneration) return;
      }
    }
  }

  private accepts(key: string): boolean {
    return this.options.filter?.(key) ?? true;
  }

  private emit(changes: KeyChange[]): void {
    try {
      this.options.onChange(changes);
    } catch (err) {
      this.report(err);
    }
  }

  private report(err: unknown): void {
    try {
      this.options.onError?.(toKmqError(err));
    } catch {
      // A failing error handler must not stop the informer.
    }
  }
}

/** Applies a put or delete if it is newer than what `entries` holds for the key; returns the change, if any. */
function applyEvent(entries: Map<string, VersionedValue>, event: Exclude<WatchEvent, { type: 'resync' }>): KeyChange | undefined {
  const before = entries.get(event.key);
  if (before !== undefined && before.version >= event.version) return undefined;
  if (event.type === 'put') {
    const after = { value: event.value, version: event.version };
    entries.set(event.key, after);
    return { key: event.key, before, after };
  }
  if (before === undefined) return undefined;
  entries.delete(event.key);
  return { key: event.key, before, after: undefined };
}

function diff(from: ReadonlyMap<string, VersionedValue>, to: ReadonlyMap<string, VersionedValue>): KeyChange[] {
  const changes: KeyChange[] = [];
  for (const [key, after] of to) {
    const before = from.get(key);
    if (before?.version !== after.version) changes.push({ key, before, after });
  }
  for (const [key, before] of from) if (!to.has(key)) changes.push({ key, before, after: undefined });
  return changes;
}
