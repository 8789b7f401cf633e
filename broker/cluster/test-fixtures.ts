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
import type { MemoryCoordinationStore } from './memory-coordination-store.js';

// Shared fixtures of the cluster tests (imported by *.test.ts only).

/** A successful write made through a StoreClient. */
export interface RecordedWrite {
  op: 'put' | 'delete';
  key: string;
  value?: string;
  version: number;
}

/**
 * One broker's connection to a shared in-memory store, as each broker of a
 * cluster has its own etcd client. It can be cut off (every call fails
 * retriably and watch events are missed, reported by `resync` once healed),
 * its leases can be expired as the store does after a TTL without keep-alives,
 * and it can crash (closed without revoking, as on kill -9). It records every
 * write that succeeded through it.
 */
export class StoreClient implements CoordinationStore {
  readonly writes: RecordedWrite[] = [];
  /** Runs before every put goes to the store (e.g. to let another writer in first). */
  beforePut: ((key: string) => Promise<void> | void) | undefined;
  /** Runs after every successful put; if it throws, the put fails although it was written (a lost reply). */
  afterPut: ((key: string) => void) | undefined;
  private readonly leases = new Set<ClientLease>();
  private readonly watches = new Set<{ stop: StopWatch; onEvent: (event: WatchEvent) => void; missed: boolean }>();
  private reachable = true;
  private closed = false;

  constructor(readonly shared: MemoryCoordinationStore) {}

  /** Every call fails with BrokerNotAvailable until `heal()`; watch events are missed meanwhile. */
  cut(): void {
    this.reachable = false;
  }

  /** Reachable again; watches that missed events get `resync`. */
  heal(): void {
    this.reachable = true;
    for (const w of this.watches) {
      if (w.missed) {
        w.missed = false;
        w.onEvent({ type: 'resync' });
      }
    }
  }

  /** Every lease of this client expires at the store (its keys are deleted) and reports `lost`. */
  async expireLeases(): Promise<void> {
    for (const lease of [...this.leases]) await lease.expire();
  }

  /** Closed without revoking (kill -9); the leases live on until `expireLeases()`. */
  async crash(): Promise<void> {
    this.closed = true;
    for (const w of [...this.watches]) await w.stop();
    this.watches.clear();
  }

  get(key: string): Promise<VersionedValue | undefined> {
    return this.call(() => this.shared.get(key));
  }

  put(key: string, value: string, options: PutOptions = {}): Promise<WriteResult> {
    return this.call(async () => {
      await this.beforePut?.(key);
      const lease = options.lease === undefined ? undefined : this.inner(options.lease);
      const res = await this.shared.put(key, value, { ...options, lease });
      if (res.ok) this.writes.push({ op: 'put', key, value, version: res.version });
      if (res.ok) this.afterPut?.(key);
      return res;
    });
  }

  delete(key: string, options?: DeleteOptions): Promise<WriteResult> {
    return this.call(async () => {
      const res = await this.shared.delete(key, options);
      if (res.ok && res.version > 0) this.writes.push({ op: 'delete', key, version: res.version });
      return res;
    });
  }

  list(prefix: string): Promise<VersionedEntry[]> {
    return this.call(() => this.shared.list(prefix));
  }

  grantLease(ttlMs: number, options?: GrantLeaseOptions): Promise<CoordinationLease> {
    return this.call(async () => {
      const lease = new ClientLease(await this.shared.grantLease(ttlMs, options), this);
      this.leases.add(lease);
      void lease.lost.then(() => this.leases.delete(lease));
      return lease;
    });
  }

  watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<StopWatch> {
    return this.call(async () => {
      const entry = { stop: (() => Promise.resolve()) as StopWatch, onEvent, missed: false };
      const stopShared = await this.shared.watch(prefix, (event) => {
        if (this.reachable) onEvent(event);
        else entry.missed = true;
      });
      entry.stop = async () => {
        this.watches.delete(entry);
        await stopShared();
      };
      this.watches.add(entry);
      return entry.stop;
    });
  }

  async close(): Promise<void> {
    await this.crash();
  }

  /** Fails like an unreachable or closed store; otherwise runs `fn`. */
  call<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new KmqError(ErrorCode.ConnectionClosed, 'The coordination store is closed'));
    if (!this.reachable) return Promise.reject(new KmqError(ErrorCode.BrokerNotAvailable, 'The coordination store is unreachable'));
    return fn();
  }

  private inner(lease: CoordinationLease): CoordinationLease {
    if (!(lease instanceof ClientLease) || lease.ended) throw new KmqError(ErrorCode.InvalidRequest, `Lease ${lease.id} does not belong to this store or has ended`);
    return lease.inner;
  }
}

class ClientLease implements CoordinationLease {
  readonly lost: Promise<KmqError>;
  ended = false;
  private resolveLost!: (err: KmqError) => void;

  constructor(
    readonly inner: CoordinationLease,
    private readonly client: StoreClient,
  ) {
    this.lost = new Promise((resolve) => (this.resolveLost = resolve));
  }

  get id(): string {
    return this.inner.id;
  }

  get ttlMs(): number {
    return this.inner.ttlMs;
  }

  revoke(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return this.client.call(async () => {
      this.ended = true;
      await this.inner.revoke();
    });
  }

  async expire(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    // The holder learns first (its keep-alives failed for the TTL), then the store deletes the keys.
    this.resolveLost(new KmqError(ErrorCode.BrokerNotAvailable, `Lease ${this.id} expired`, { lease: this.id }));
    await new Promise((resolve) => setImmediate(resolve));
    await this.inner.revoke();
  }
}

/** Polls `check` until it returns true, failing after `timeoutMs`. */
export async function eventually(what: string, timeoutMs: number, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A client of one shared store (as several brokers are clients of one etcd): closing it stops only its own watches. */
export function sharedClient(shared: CoordinationStore): CoordinationStore {
  let closed = false;
  const stops: StopWatch[] = [];
  const guard = <T>(fn: () => Promise<T>): Promise<T> =>
    closed ? Promise.reject(new KmqError(ErrorCode.ConnectionClosed, 'The coordination store is closed')) : fn();
  return {
    get: (key) => guard(() => shared.get(key)),
    put: (key, value, options) => guard(() => shared.put(key, value, options)),
    delete: (key, options) => guard(() => shared.delete(key, options)),
    list: (prefix) => guard(() => shared.list(prefix)),
    grantLease: (ttlMs, options) => guard(() => shared.grantLease(ttlMs, options)),
    watch: (prefix, onEvent) =>
      guard(async () => {
        const stop = await shared.watch(prefix, onEvent);
        stops.push(stop);
        return stop;
      }),
    close: async () => {
      closed = true;
      for (const stop of stops) await stop();
    },
  };
}
