import { ErrorCode, KmqError } from '../../lib/errors.js';
import type {
  CoordinationLease,
  CoordinationStore,
  DeleteOptions,
  GrantLeaseOptions,
  PutOptions,
  StopWatch,
  VersionedEntry,
  VersionedValue,
  WatchEvent,
  WriteResult,
} from './coordination-store.js';

/** Options of MemoryCoordinationStore. */
export interface MemoryCoordinationStoreOptions {
  /** The clock leases expire by (default Date.now); tests inject a fake one and call `expireLeases()`. */
  now?: () => number;
  /** How often expired leases are swept, ms (default 100; 0 = only on `expireLeases()`). */
  sweepIntervalMs?: number;
  /** State to start from (the local store's file): keys without leases and the last version. */
  initial?: DurableState;
  /** Called after every change to a key, before the write is answered (the local store persists there). */
  onChange?: () => void;
}

/** What survives the process: keys not bound to a lease, and the store's version counter. */
export interface DurableState {
  revision: number;
  entries: VersionedEntry[];
}

interface Entry {
  value: string;
  version: number;
  lease: MemoryLease | undefined;
}

/**
 * The coordination store of a single node, in process memory. Same semantics as
 * the etcd one: one store-wide version counter, compare-and-swap on a key's
 * version, leases whose keys are deleted on expiry or revoke, and watches that
 * see every event in order (delivered synchronously, so none can be missed).
 * Not safe across processes; it is the `local` store's semantics and the
 * reference the contract tests check the others against.
 */
export class MemoryCoordinationStore implements CoordinationStore {
  private readonly entries = new Map<string, Entry>();
  private readonly leases = new Map<string, MemoryLease>();
  private readonly watchers = new Set<{ prefix: string; onEvent: (event: WatchEvent) => void }>();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout | undefined;
  private revision = 0;
  private nextLeaseId = 1;
  private closed = false;

  private readonly onChange: (() => void) | undefined;

  constructor(options: MemoryCoordinationStoreOptions = {}) {
    this.now = options.now ?? Date.now;
    this.onChange = options.onChange;
    if (options.initial !== undefined) {
      this.revision = options.initial.revision;
      for (const e of options.initial.entries) this.entries.set(e.key, { value: e.value, version: e.version, lease: undefined });
    }
    const interval = options.sweepIntervalMs ?? 100;
    if (interval > 0) {
      this.sweeper = setInterval(() => this.expireLeases(), interval);
      this.sweeper.unref();
    }
  }

  get(key: string): Promise<VersionedValue | undefined> {
    return this.op(() => {
      const e = this.entries.get(key);
      return e ? { value: e.value, version: e.version } : undefined;
    });
  }

  put(key: string, value: string, options: PutOptions = {}): Promise<WriteResult> {
    return this.op(() => {
      const current = this.entries.get(key);
      const expected = options.ifVersion;
      if (expected !== undefined && expected !== 'absent' && !(Number.isSafeInteger(expected) && expected >= 0)) {
        throw new KmqError(ErrorCode.InvalidRequest, `ifVersion must be a non-negative integer or 'absent', got ${String(expected)}`, { key });
      }
      const lease = options.lease ? this.leaseOf(options.lease) : undefined;
      if (!matches(current, expected)) return { ok: false, version: current?.version ?? 0 };
      current?.lease?.keys.delete(key);
      const version = ++this.revision;
      this.entries.set(key, { value, version, lease });
      lease?.keys.add(key);
      this.onChange?.();
      this.emit({ type: 'put', key, value, version });
      return { ok: true, version };
    });
  }

  delete(key: string, options: DeleteOptions = {}): Promise<WriteResult> {
    return this.op(() => {
      const current = this.entries.get(key);
      const expected = options.ifVersion;
      if (expected !== undefined && !(Number.isSafeInteger(expected) && expected >= 0)) {
        throw new KmqError(ErrorCode.InvalidRequest, `ifVersion must be a non-negative integer, got ${String(expected)}`, { key });
      }
      if (!matches(current, expected)) return { ok: false, version: current?.version ?? 0 };
      return { ok: true, version: current ? this.remove(key, current) : 0 };
    });
  }

  list(prefix: string): Promise<VersionedEntry[]> {
    return this.op(() =>
      [...this.entries]
        .filter(([key]) => key.startsWith(prefix))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([key, e]) => ({ key, value: e.value, version: e.version })),
    );
  }

  grantLease(ttlMs: number, options: GrantLeaseOptions = {}): Promise<CoordinationLease> {
    return this.op(() => {
      if (!(Number.isFinite(ttlMs) && ttlMs > 0)) throw new KmqError(ErrorCode.InvalidRequest, `A lease TTL must be positive, got ${ttlMs} ms`);
      const id = String(this.nextLeaseId++);
      // Keep-alive cannot fail in process: a kept-alive lease never expires.
      const expiresAt = options.keepAlive === false ? this.now() + ttlMs : Infinity;
      const lease = new MemoryLease(id, ttlMs, expiresAt, () => this.endLease(lease));
      this.leases.set(id, lease);
      return lease;
    });
  }

  watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<StopWatch> {
    return this.op(() => {
      const watcher = { prefix, onEvent };
      this.watchers.add(watcher);
      return () => {
        this.watchers.delete(watcher);
        return Promise.resolve();
      };
    });
  }

  /** Keys not bound to a lease, and the version counter: what a restart keeps. */
  durableState(): DurableState {
    const entries = [...this.entries].filter(([, e]) => e.lease === undefined).map(([key, e]) => ({ key, value: e.value, version: e.version }));
    return { revision: this.revision, entries };
  }

  /** Ends every lease whose time has passed by the injected clock, deleting its keys. */
  expireLeases(): void {
    const now = this.now();
    for (const lease of [...this.leases.values()]) {
      if (lease.expiresAt <= now) {
        this.endLease(lease);
        lease.markLost(new KmqError(ErrorCode.BrokerNotAvailable, `Lease ${lease.id} expired`, { lease: lease.id }));
      }
    }
  }

  close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.watchers.clear();
    return Promise.resolve();
  }

  private endLease(lease: MemoryLease): void {
    if (!this.leases.delete(lease.id)) return;
    for (const key of [...lease.keys]) {
      const e = this.entries.get(key);
      if (e?.lease === lease) this.remove(key, e);
    }
    lease.keys.clear();
  }

  private remove(key: string, entry: Entry): number {
    this.entries.delete(key);
    entry.lease?.keys.delete(key);
    const version = ++this.revision;
    this.onChange?.();
    this.emit({ type: 'delete', key, version });
    return version;
  }

  private emit(event: WatchEvent & { key: string }): void {
    for (const w of [...this.watchers]) if (event.key.startsWith(w.prefix)) w.onEvent(event);
  }

  private leaseOf(lease: CoordinationLease): MemoryLease {
    const own = this.leases.get(lease.id);
    if (own !== lease) throw new KmqError(ErrorCode.InvalidRequest, `Lease ${lease.id} does not belong to this store or has ended`);
    return own;
  }

  private op<T>(fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new KmqError(ErrorCode.ConnectionClosed, 'The coordination store is closed'));
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

function matches(current: Entry | undefined, expected: number | 'absent' | undefined): boolean {
  if (expected === undefined) return true;
  if (expected === 'absent' || expected === 0) return current === undefined;
  return current?.version === expected;
}

class MemoryLease implements CoordinationLease {
  readonly keys = new Set<string>();
  readonly lost: Promise<KmqError>;
  ended = false;
  private resolveLost!: (err: KmqError) => void;

  constructor(
    readonly id: string,
    readonly ttlMs: number,
    readonly expiresAt: number,
    private readonly onRevoke: () => void,
  ) {
    this.lost = new Promise((resolve) => (this.resolveLost = resolve));
  }

  revoke(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      this.onRevoke();
    }
    return Promise.resolve();
  }

  markLost(err: KmqError): void {
    if (this.ended) return;
    this.ended = true;
    this.resolveLost(err);
  }
}
