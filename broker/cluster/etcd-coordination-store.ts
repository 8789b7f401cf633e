import { ClientClosedError, Etcd3, EtcdLeaseInvalidError, GRPCDeadlineExceededError, GRPCInvalidArgumentError } from 'etcd3';
import type { IKeyValue, Lease, Watcher } from 'etcd3';
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

/** Options of EtcdCoordinationStore. */
export interface EtcdCoordinationStoreOptions {
  /** etcd client URLs, e.g. `http://127.0.0.1:2379`. */
  endpoints: string[];
  /** Every key lives under this prefix, e.g. `/kmq/<clusterId>/`. */
  prefix: string;
  /** Deadline of each unary call, ms (default 5000). */
  callTimeoutMs?: number;
}

/**
 * The coordination store on etcd v3. Versions are etcd revisions (a key's
 * mod_revision); compare-and-swap is a transaction on mod_revision, or on
 * create_revision = 0 for `'absent'`. Leases are etcd leases with TTLs in whole
 * seconds; watches resume from their last revision after a reconnect and report
 * `resync` if etcd cancels them (history compacted).
 */
export class EtcdCoordinationStore implements CoordinationStore {
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly leases = new Set<EtcdLease>();
  private readonly watches = new Set<StopWatch>();
  private closed = false;

  constructor(options: EtcdCoordinationStoreOptions) {
    if (options.endpoints.length === 0) throw new KmqError(ErrorCode.InvalidConfig, 'The etcd coordination store needs at least one endpoint');
    if (options.prefix === '') throw new KmqError(ErrorCode.InvalidConfig, 'The etcd coordination store needs a key prefix');
    const timeoutMs = options.callTimeoutMs ?? 5000;
    this.prefix = options.prefix;
    this.client = new Etcd3({
      hosts: options.endpoints,
      dialTimeout: timeoutMs,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    });
  }

  async get(key: string): Promise<VersionedValue | undefined> {
    this.checkOpen();
    const res = await this.call(() => this.client.get(this.full(key)).exec());
    const kv = res.kvs[0];
    return kv ? { value: kv.value.toString('utf8'), version: Number(kv.mod_revision) } : undefined;
  }

  async put(key: string, value: string, options: PutOptions = {}): Promise<WriteResult> {
    this.checkOpen();
    const full = this.full(key);
    const op = (): ReturnType<Etcd3['put']> => {
      const put = this.client.put(full).value(value);
      if (options.lease) put.lease(this.leaseOf(options.lease).id);
      return put;
    };
    if (options.ifVersion === undefined) {
      const res = await this.call(() => op().exec());
      return { ok: true, version: Number(res.header.revision) };
    }
    const expected = options.ifVersion;
    if (expected !== 'absent' && !(Number.isSafeInteger(expected) && expected >= 0)) {
      throw new KmqError(ErrorCode.InvalidRequest, `ifVersion must be a non-negative integer or 'absent', got ${String(expected)}`, { key });
    }
    const res = await this.call(() =>
      (expected === 'absent' || expected === 0 ? this.client.if(full, 'Create', '==', 0) : this.client.if(full, 'Mod', '==', expected))
        .then(op())
        .else(this.client.get(full))
        .commit(),
    );
    if (res.succeeded) return { ok: true, version: Number(res.header.revision) };
    const current = res.responses[0]?.response_range?.kvs[0];
    return { ok: false, version: current ? Number(current.mod_revision) : 0 };
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<WriteResult> {
    this.checkOpen();
    const full = this.full(key);
    if (options.ifVersion === undefined) {
      const res = await this.call(() => this.client.delete().key(full).exec());
      return { ok: true, version: Number(res.deleted) > 0 ? Number(res.header.revision) : 0 };
    }
    const expected = options.ifVersion;
    if (!(Number.isSafeInteger(expected) && expected >= 0)) {
      throw new KmqError(ErrorCode.InvalidRequest, `ifVersion must be a non-negative integer, got ${String(expected)}`, { key });
    }
    const res = await this.call(() =>
      (expected === 0 ? this.client.if(full, 'Create', '==', 0) : this.client.if(full, 'Mod', '==', expected))
        .then(this.client.delete().key(full))
        .else(this.client.get(full))
        .commit(),
    );
    if (res.succeeded) {
      const deleted = Number(res.responses[0]?.response_delete_range?.deleted ?? 0);
      return { ok: true, version: deleted > 0 ? Number(res.header.revision) : 0 };
    }
    const current = res.responses[0]?.response_range?.kvs[0];
    return { ok: false, version: current ? Number(current.mod_revision) : 0 };
  }

  async list(prefix: string): Promise<VersionedEntry[]> {
    this.checkOpen();
    const res = await this.call(() => this.client.getAll().prefix(this.full(prefix)).sort('Key', 'Ascend').exec());
    return res.kvs.map((kv) => ({ key: this.relative(kv), value: kv.value.toString('utf8'), version: Number(kv.mod_revision) }));
  }

  async grantLease(ttlMs: number, options: GrantLeaseOptions = {}): Promise<CoordinationLease> {
    this.checkOpen();
    if (!(Number.isFinite(ttlMs) && ttlMs > 0)) throw new KmqError(ErrorCode.InvalidRequest, `A lease TTL must be positive, got ${ttlMs} ms`);
    const ttlSeconds = Math.max(1, Math.ceil(ttlMs / 1000));
    const lease = this.client.lease(ttlSeconds, { autoKeepAlive: options.keepAlive ?? true });
    let id: string;
    try {
      id = await lease.grant();
    } catch (err) {
      lease.release();
      throw toStoreError(err);
    }
    const handle = new EtcdLease(lease, id, ttlSeconds * 1000, options.keepAlive ?? true, () => this.leases.delete(handle));
    this.leases.add(handle);
    return handle;
  }

  async watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<StopWatch> {
    this.checkOpen();
    let watcher: Watcher | undefined;
    let stopped = false;
    const open = async (): Promise<void> => {
      const w = await this.call(() => this.client.watch().prefix(this.full(prefix)).create());
      if (stopped) return void (await w.cancel().catch(() => undefined));
      watcher = w;
      w.on('put', (kv) => onEvent({ type: 'put', key: this.relative(kv), value: kv.value.toString('utf8'), version: Number(kv.mod_revision) }));
      w.on('delete', (kv) => onEvent({ type: 'delete', key: this.relative(kv), version: Number(kv.mod_revision) }));
      // etcd cancelled the watch (e.g. its start revision was compacted): events may be missing.
      w.on('error', () => {
        if (stopped || watcher !== w) return;
        watcher = undefined;
        void w.cancel().catch(() => undefined);
        onEvent({ type: 'resync' });
        void reopen();
      });
    };
    const reopen = async (): Promise<void> => {
      while (!stopped && !this.closed) {
        try {
          return await open();
        } catch {
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    };
    await open();
    const stop: StopWatch = async () => {
      if (stopped) return;
      stopped = true;
      this.watches.delete(stop);
      await watcher?.cancel().catch(() => undefined);
    };
    this.watches.add(stop);
    return stop;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const stop of [...this.watches]) await stop();
    this.closed = true;
    for (const lease of [...this.leases]) lease.release();
    this.client.close();
  }

  private full(key: string): string {
    return this.prefix + key;
  }

  private relative(kv: IKeyValue): string {
    return kv.key.toString('utf8').slice(this.prefix.length);
  }

  private leaseOf(lease: CoordinationLease): EtcdLease {
    if (!(lease instanceof EtcdLease) || !this.leases.has(lease)) {
      throw new KmqError(ErrorCode.InvalidRequest, `Lease ${lease.id} does not belong to this store or has ended`);
    }
    return lease;
  }

  private checkOpen(): void {
    if (this.closed) throw new KmqError(ErrorCode.ConnectionClosed, 'The coordination store is closed');
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toStoreError(err);
    }
  }
}

/** An etcd lease with its own expiry check: lost once keep-alives have not succeeded for a TTL. */
class EtcdLease implements CoordinationLease {
  readonly lost: Promise<KmqError>;
  ended = false;
  private resolveLost!: (err: KmqError) => void;
  private expiry: NodeJS.Timeout | undefined;
  private lastFiredAt = Date.now();

  constructor(
    private readonly lease: Lease,
    readonly id: string,
    readonly ttlMs: number,
    keepAlive: boolean,
    private readonly onEnd: () => void,
  ) {
    this.lost = new Promise((resolve) => (this.resolveLost = resolve));
    this.armExpiry(Date.now() + ttlMs);
    lease.on('lost', (err) => this.loseWith(err));
    if (keepAlive) {
      lease.on('keepaliveFired', () => (this.lastFiredAt = Date.now()));
      lease.on('keepaliveSucceeded', (res) => {
        const ttl = Number(res.TTL) * 1000;
        if (ttl > 0) this.armExpiry(this.lastFiredAt + ttl);
      });
    }
  }

  async revoke(): Promise<void> {
    if (this.ended) return;
    this.end();
    try {
      await this.lease.revoke();
    } catch (err) {
      throw toStoreError(err);
    }
  }

  /** Stops keep-alives without revoking (the store is closing). */
  release(): void {
    if (this.ended) return;
    this.end();
    this.lease.release();
  }

  private armExpiry(at: number): void {
    clearTimeout(this.expiry);
    this.expiry = setTimeout(() => this.loseWith(new EtcdLeaseInvalidError(this.id)), Math.max(0, at - Date.now()));
    this.expiry.unref();
  }

  private loseWith(err: unknown): void {
    if (this.ended) return;
    this.end();
    this.lease.release();
    this.resolveLost(new KmqError(ErrorCode.BrokerNotAvailable, `Lease ${this.id} is lost`, { lease: this.id }, { cause: err }));
  }

  private end(): void {
    this.ended = true;
    clearTimeout(this.expiry);
    this.onEnd();
  }
}

/** Turns an etcd client error into a KmqError: unreachable and timed out are retriable. */
function toStoreError(err: unknown): KmqError {
  if (err instanceof KmqError) return err;
  const message = `etcd: ${err instanceof Error ? err.message : String(err)}`;
  if (err instanceof ClientClosedError) return new KmqError(ErrorCode.ConnectionClosed, message, {}, { cause: err });
  if (err instanceof GRPCDeadlineExceededError) return new KmqError(ErrorCode.RequestTimedOut, message, {}, { cause: err });
  if (err instanceof GRPCInvalidArgumentError) return new KmqError(ErrorCode.InvalidRequest, message, {}, { cause: err });
  // Everything else the client raises is the transport (refused connections, cancelled streams, an open circuit breaker): etcd is not reachable now.
  return new KmqError(ErrorCode.BrokerNotAvailable, message, {}, { cause: err });
}
