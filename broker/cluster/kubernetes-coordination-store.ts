import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { CoordinationV1Api, CoreV1Api, V1MicroTime, Watch } from '@kubernetes/client-node';
import type { ConfigurationOptions, KubeConfig, V1ConfigMap, V1Lease, V1PolicyRule } from '@kubernetes/client-node';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
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
import { statusOf, toStoreError } from './kubernetes-api-errors.js';
import { ConfigMapWatch } from './kubernetes-config-map-watch.js';
import { KubernetesLease } from './kubernetes-lease.js';
import { KubernetesRequestOptions } from './kubernetes-request-options.js';
import {
  CONFIG_MAP_DATA_LIMIT,
  MANAGED_BY_LABEL,
  PREVIOUS_REVISION_ANNOTATION,
  REVISION_ANNOTATION,
  STORE_LABEL,
  compareKeys,
  configMapNameFor,
  dataKeyOf,
  dataSize,
  encodeEntry,
  isDnsSubdomain,
  stateOf,
  storeLabelValue,
} from './kubernetes-store-layout.js';
import type { StoreState, StoredEntry } from './kubernetes-store-layout.js';

/** Options of KubernetesCoordinationStore. */
export interface KubernetesCoordinationStoreOptions {
  /** How to reach the API server (in a pod: `loadFromCluster()`). */
  kubeConfig: KubeConfig;
  /** The namespace of the store's ConfigMap and Leases. */
  namespace: string;
  /** The store's key namespace, e.g. `/kmq/<clusterId>/`: names the ConfigMap (`kmq-cluster-…`). Required unless configMapName is given. */
  prefix?: string;
  /** The ConfigMap's name (default: derived from prefix). */
  configMapName?: string;
  /** holderIdentity of this store's Leases (default `<hostname>-<pid>`). */
  identity?: string;
  /** Deadline of each API call, ms (default 5000). */
  callTimeoutMs?: number;
  /** How often expired leases are looked for, ms (default 1000). Every store of a cluster sweeps. */
  sweepIntervalMs?: number;
  /** How far apart the clocks of the store's users may be, ms (default 500): a Lease counts as expired this long after renewTime + duration. */
  clockSkewMs?: number;
  logger?: Logger;
}

interface CompiledOptions {
  namespace: string;
  configMapName: string;
  storeLabel: string;
  identity: string;
  callTimeoutMs: number;
  sweepIntervalMs: number;
  clockSkewMs: number;
}

export function compileKubernetesCoordinationStoreOptions(o: KubernetesCoordinationStoreOptions): CompiledOptions {
  const invalid = (setting: string, why: string): KmqError =>
    new KmqError(ErrorCode.InvalidConfig, `The kubernetes coordination store: ${setting} ${why}`, { setting }, { retriable: false });
  if (!o.namespace || !isDnsSubdomain(o.namespace)) throw invalid('namespace', `must name a namespace, got '${o.namespace}'`);
  if (o.configMapName === undefined && !o.prefix) throw invalid('prefix', 'must not be empty (or give configMapName)');
  const configMapName = o.configMapName ?? configMapNameFor(o.prefix!);
  if (!isDnsSubdomain(configMapName)) throw invalid('configMapName', `must be a DNS subdomain, got '${configMapName}'`);
  const c: CompiledOptions = {
    namespace: o.namespace,
    configMapName,
    storeLabel: storeLabelValue(configMapName),
    identity: o.identity ?? `${os.hostname()}-${process.pid}`,
    callTimeoutMs: o.callTimeoutMs ?? 5000,
    sweepIntervalMs: o.sweepIntervalMs ?? 1000,
    clockSkewMs: o.clockSkewMs ?? 500,
  };
  if (!(c.callTimeoutMs > 0)) throw invalid('callTimeoutMs', 'must be > 0');
  if (!(c.sweepIntervalMs > 0)) throw invalid('sweepIntervalMs', 'must be > 0');
  if (!(c.clockSkewMs >= 0)) throw invalid('clockSkewMs', 'must be >= 0');
  if (c.identity === '') throw invalid('identity', 'must not be empty');
  return c;
}

/**
 * The RBAC rules the store needs in its namespace (a Role bound to the brokers'
 * ServiceAccount), as the class comment lists them.
 */
export const KUBERNETES_COORDINATION_STORE_RBAC_RULES: readonly V1PolicyRule[] = [
  { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create', 'update'] },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'create', 'update', 'delete'] },
];

/** Expired Leases that no key references (holders gone before binding any key) are collected this often, ms. */
const LEASE_GC_INTERVAL_MS = 30_000;

/**
 * The coordination store on the Kubernetes API (DESIGN.md §4 "Cluster": Leases plus
 * one object), the in-cluster default. Every key lives in one ConfigMap, laid out as
 * kubernetes-store-layout.ts describes (one data entry per key, a store-wide revision
 * counter in an annotation).
 *
 * - Writes are read-modify-write of the ConfigMap, replaced with the resourceVersion read:
 *   the API server answers 409 Conflict if anything changed in between, and the write is
 *   re-read and its condition (`ifVersion`) checked again. Of concurrent writers, exactly
 *   one wins each round. A write that would take the data over 1 MiB is refused (InvalidRequest).
 * - Leases are coordination.k8s.io/v1 Lease objects (random name, holderIdentity,
 *   leaseDurationSeconds = ceil(ttl), renewTime renewed every ttl/3 with the resourceVersion
 *   read). A lease is lost when no renewal succeeded for its TTL since the last successful one
 *   was sent, or when its Lease object is gone. A key's data entry names its Lease.
 * - The API server does not expire Leases, so every store instance sweeps (every
 *   sweepIntervalMs, and when a read meets a dead lease): a Lease is dead when it is missing,
 *   or when renewTime + duration + clockSkewMs is past. The sweeper deletes an expired Lease
 *   with the resourceVersion it read as precondition (a renewal in between wins), then deletes
 *   the Lease's keys in one CAS write, which watchers see as `delete` events. Until then, reads
 *   treat keys of dead leases as absent, and a write to such a key sweeps it first. Holders and
 *   sweepers compare their own clocks with renewTime: clocks must agree within clockSkewMs.
 *   revoke() deletes the lease's keys, then the Lease object.
 * - Watches are Kubernetes watches on the one ConfigMap (fieldSelector metadata.name), from the
 *   resourceVersion of a list, each state diffed against the previous one into put/delete events
 *   in version order. After a dropped connection the watch resumes from the last resourceVersion;
 *   after 410 Gone it re-lists and reports `resync` unless the listed state is the known one or
 *   exactly one write after it.
 * - Errors: an unreachable API server is BrokerNotAvailable, a call past its deadline
 *   RequestTimedOut (both retriable); 401 / 403 are InvalidConfig, not retriable, naming the verb
 *   and resource; a closed store answers ConnectionClosed.
 * - Cost: a get is one GET of the ConfigMap (plus a GET of a foreign Lease for a leased key),
 *   a write one GET and one PUT per round; each store instance also GETs the ConfigMap every
 *   sweepIntervalMs and LISTs the store's Leases when keys of other holders' leases exist.
 *   A watch is one long-lived request. Everything a write sends is the whole ConfigMap: the
 *   store suits cluster metadata (brokers, controller, topics), not high-rate data.
 * - The ConfigMap is never deleted by the store; deleting it by hand resets the keys (watchers
 *   get `resync`), and its new counter starts above the old versions.
 *
 * RBAC (a Role in the store's namespace, bound to the brokers' ServiceAccount;
 * KUBERNETES_COORDINATION_STORE_RBAC_RULES):
 * - `""` configmaps: get, list, watch, create, update
 * - `coordination.k8s.io` leases: get, list, create, update, delete
 */
export class KubernetesCoordinationStore implements CoordinationStore {
  private readonly o: CompiledOptions;
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly watcher: Watch;
  private readonly log: Logger;
  private readonly leases = new Map<string, KubernetesLease>();
  private readonly watches = new Set<StopWatch>();
  private readonly requests = new KubernetesRequestOptions();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private lastLeaseGcAt = 0;
  private closed = false;

  constructor(options: KubernetesCoordinationStoreOptions) {
    this.o = compileKubernetesCoordinationStoreOptions(options);
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.coordination = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.watcher = new Watch(options.kubeConfig);
    this.log = (options.logger ?? silentLogger()).child({ component: 'coordination-store', configMap: `${this.o.namespace}/${this.o.configMapName}` });
    this.scheduleSweep();
  }

  /** The ConfigMap holding the keys, `<namespace>/<name>`. */
  get configMap(): string {
    return `${this.o.namespace}/${this.o.configMapName}`;
  }

  async get(key: string): Promise<VersionedValue | undefined> {
    this.checkOpen();
    const read = await this.readConfigMap();
    const entry = read?.state.entries.get(dataKeyOf(key));
    if (!entry) return undefined;
    if (entry.lease !== undefined && (await this.leaseState(entry.lease)) !== 'alive') {
      this.sweepSoon();
      return undefined;
    }
    return { value: entry.value, version: entry.version };
  }

  async put(key: string, value: string, options: PutOptions = {}): Promise<WriteResult> {
    this.checkOpen();
    const expected = options.ifVersion;
    if (expected !== undefined && expected !== 'absent' && !(Number.isSafeInteger(expected) && expected >= 0)) {
      throw new KmqError(ErrorCode.InvalidRequest, `ifVersion must be a non-negative integer or 'absent', got ${String(expected)}`, { key });
    }
    const lease = options.lease ? this.leaseOf(options.lease) : undefined;
    return this.update(key, (current) => {
      // The lease may have ended while the ConfigMap was read.
      if (lease) this.leaseOf(lease);
      return matches(current, expected) ? { put: { value, lease: lease?.id } } : { ok: false, version: current?.version ?? 0 };
    });
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<WriteResult> {
    this.checkOpen();
    const expected = options.ifVersion;
    if (expected !== undefined && !(Number.isSafeInteger(expected) && expected >= 0)) {
      throw new KmqError(ErrorCode.InvalidRequest, `ifVersion must be a non-negative integer, got ${String(expected)}`, { key });
    }
    return this.update(key, (current) => {
      if (!matches(current, expected)) return { ok: false, version: current?.version ?? 0 };
      return current ? { delete: true } : { ok: true, version: 0 };
    });
  }

  async list(prefix: string): Promise<VersionedEntry[]> {
    this.checkOpen();
    const read = await this.readConfigMap();
    if (!read) return [];
    const matching = [...read.state.entries.values()].filter((e) => e.key.startsWith(prefix));
    const foreign = new Set(matching.map((e) => e.lease).filter((l): l is string => l !== undefined && !this.ownLive(l)));
    let live: Map<string, V1Lease> | undefined;
    if (foreign.size > 0) live = await this.listLeases();
    let dead = false;
    const out: VersionedEntry[] = [];
    for (const e of matching) {
      if (e.lease !== undefined && !this.ownLive(e.lease)) {
        const lease = live?.get(e.lease);
        if (!lease || this.expired(lease)) {
          dead = true;
          continue;
        }
      }
      out.push({ key: e.key, value: e.value, version: e.version });
    }
    if (dead) this.sweepSoon();
    return out.sort((a, b) => compareKeys(a.key, b.key));
  }

  async grantLease(ttlMs: number, options: GrantLeaseOptions = {}): Promise<CoordinationLease> {
    this.checkOpen();
    if (!(Number.isFinite(ttlMs) && ttlMs > 0)) throw new KmqError(ErrorCode.InvalidRequest, `A lease TTL must be positive, got ${ttlMs} ms`);
    const seconds = Math.max(1, Math.ceil(ttlMs / 1000));
    const name = `kmq-lease-${randomBytes(8).toString('hex')}`;
    const sentAt = Date.now();
    const body: V1Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: this.o.namespace, labels: this.labels() },
      spec: {
        holderIdentity: this.o.identity,
        leaseDurationSeconds: seconds,
        acquireTime: new V1MicroTime(sentAt),
        renewTime: new V1MicroTime(sentAt),
      },
    };
    const created = await this.call('create', 'leases', (opts) => this.coordination.createNamespacedLease({ namespace: this.o.namespace, body }, opts));
    const lease = new KubernetesLease(
      {
        renew: (object, at, timeoutMs) => this.renewLease(object, at, timeoutMs),
        revoke: (id) => this.revokeLease(id),
        ended: (id) => this.leases.delete(id),
        callTimeoutMs: this.o.callTimeoutMs,
        log: this.log,
      },
      created,
      seconds * 1000,
      options.keepAlive ?? true,
      sentAt,
    );
    this.leases.set(name, lease);
    return lease;
  }

  async watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<StopWatch> {
    this.checkOpen();
    const w = new ConfigMapWatch(
      {
        watcher: this.watcher,
        path: `/api/v1/namespaces/${this.o.namespace}/configmaps`,
        fieldSelector: `metadata.name=${this.o.configMapName}`,
        list: () => this.listConfigMap(),
        watchError: (err) => this.storeError(err, 'watch', 'configmaps'),
        log: this.log,
      },
      prefix,
      onEvent,
    );
    await w.start();
    const stop: StopWatch = () => {
      this.watches.delete(stop);
      w.stop();
      return Promise.resolve();
    };
    this.watches.add(stop);
    return stop;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.sweepTimer);
    for (const stop of [...this.watches]) await stop();
    for (const lease of [...this.leases.values()]) lease.release();
    this.leases.clear();
    this.requests.close();
  }

  // --- writes ---

  /**
   * Read, decide, replace with the resourceVersion read; again on 409 Conflict.
   * `decide` sees the key's live entry (a key of a dead lease is swept first).
   */
  private async update(key: string, decide: (current: StoredEntry | undefined) => WriteResult | { put: { value: string; lease?: string } } | { delete: true }): Promise<WriteResult> {
    const dataKey = dataKeyOf(key);
    for (let attempt = 0; ; attempt++) {
      this.checkOpen();
      const { object, state } = await this.readOrCreateConfigMap();
      const current = state.entries.get(dataKey);
      if (current?.lease !== undefined) {
        const lease = await this.leaseState(current.lease);
        if (lease !== 'alive') {
          await this.reap(new Map([[current.lease, lease]]));
          continue;
        }
      }
      const decision = decide(current);
      if ('ok' in decision) return decision;
      const revision = state.revision + 1;
      const data = { ...state.raw };
      if ('put' in decision) {
        data[dataKey] = encodeEntry({ key, value: decision.put.value, version: revision, lease: decision.put.lease });
        const size = dataSize(data);
        if (size > CONFIG_MAP_DATA_LIMIT) {
          throw new KmqError(
            ErrorCode.InvalidRequest,
            `The coordination store's ConfigMap ${this.configMap} would hold ${size} bytes with this value of ${key} (${Buffer.byteLength(decision.put.value)} bytes), over the API server's limit of ${CONFIG_MAP_DATA_LIMIT} bytes`,
            { key, bytes: size },
            { retriable: false },
          );
        }
      } else {
        delete data[dataKey];
      }
      if (await this.replaceData(object, data, state.revision, revision)) return { ok: true, version: revision };
      await backoff(attempt);
    }
  }

  /** Replaces the ConfigMap's data, expecting it unchanged since `object` was read; false on 409 Conflict (or 404: it was deleted). */
  private async replaceData(object: V1ConfigMap, data: Record<string, string>, from: number, to: number): Promise<boolean> {
    const body: V1ConfigMap = {
      ...object,
      data,
      metadata: {
        ...object.metadata,
        annotations: { ...object.metadata?.annotations, [REVISION_ANNOTATION]: String(to), [PREVIOUS_REVISION_ANNOTATION]: String(from) },
      },
    };
    try {
      await this.core.replaceNamespacedConfigMap({ name: this.o.configMapName, namespace: this.o.namespace, body }, this.deadline());
      return true;
    } catch (err) {
      const status = statusOf(err);
      if (status === 409 || status === 404) return false;
      throw this.storeError(err, 'update', 'configmaps');
    }
  }

  /** Deletes every key bound to one of `leases`, in one write (their versions: in key order). */
  private async removeKeysOfLeases(leases: ReadonlySet<string>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const read = await this.readConfigMap();
      if (!read) return;
      const data = { ...read.state.raw };
      let removed = 0;
      for (const [dataKey, entry] of read.state.entries) {
        if (entry.lease !== undefined && leases.has(entry.lease)) {
          delete data[dataKey];
          removed++;
        }
      }
      if (removed === 0) return;
      if (await this.replaceData(read.object, data, read.state.revision, read.state.revision + removed)) {
        this.log.debug({ leases: [...leases], keys: removed }, 'Deleted the keys of ended leases');
        return;
      }
      await backoff(attempt);
    }
  }

  // --- reads ---

  private async readConfigMap(): Promise<{ object: V1ConfigMap; state: StoreState } | undefined> {
    try {
      const object = await this.core.readNamespacedConfigMap({ name: this.o.configMapName, namespace: this.o.namespace }, this.deadline());
      return { object, state: stateOf(object) };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.storeError(err, 'get', 'configmaps');
    }
  }

  private async readOrCreateConfigMap(): Promise<{ object: V1ConfigMap; state: StoreState }> {
    for (;;) {
      this.checkOpen();
      const read = await this.readConfigMap();
      if (read) return read;
      await this.createConfigMap();
    }
  }

  /** Creates the empty ConfigMap; its counter starts at the time in ms (see kubernetes-store-layout.ts). */
  private async createConfigMap(): Promise<void> {
    const seed = String(Date.now());
    const body: V1ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: this.o.configMapName,
        namespace: this.o.namespace,
        labels: this.labels(),
        annotations: { [REVISION_ANNOTATION]: seed, [PREVIOUS_REVISION_ANNOTATION]: seed },
      },
      data: {},
    };
    try {
      await this.core.createNamespacedConfigMap({ namespace: this.o.namespace, body }, this.deadline());
      this.log.info('Created the coordination store ConfigMap');
    } catch (err) {
      if (statusOf(err) === 409) return;
      throw this.storeError(err, 'create', 'configmaps');
    }
  }

  /** The state and the list's resourceVersion a watch starts from (the ConfigMap created if missing). */
  private async listConfigMap(): Promise<{ state: StoreState | undefined; resourceVersion: string }> {
    this.checkOpen();
    for (let attempt = 0; ; attempt++) {
      const listed = await this.call('list', 'configmaps', (opts) =>
        this.core.listNamespacedConfigMap({ namespace: this.o.namespace, fieldSelector: `metadata.name=${this.o.configMapName}` }, opts),
      );
      const object = listed.items[0];
      if (object || attempt > 0) return { state: object ? stateOf(object) : undefined, resourceVersion: listed.metadata?.resourceVersion ?? '' };
      await this.createConfigMap();
    }
  }

  // --- leases ---

  private ownLive(name: string): boolean {
    const own = this.leases.get(name);
    return own !== undefined && !own.ended;
  }

  /** 'alive', or the Lease object when it is expired, or undefined when it is gone. */
  private async leaseState(name: string): Promise<'alive' | V1Lease | undefined> {
    if (this.ownLive(name)) return 'alive';
    let lease: V1Lease;
    try {
      lease = await this.coordination.readNamespacedLease({ name, namespace: this.o.namespace }, this.deadline());
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.storeError(err, 'get', 'leases');
    }
    return this.expired(lease) ? lease : 'alive';
  }

  private expired(lease: V1Lease): boolean {
    const renewed = new Date(lease.spec?.renewTime ?? lease.spec?.acquireTime ?? 0).getTime();
    const durationMs = (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
    return !(renewed + durationMs + this.o.clockSkewMs > Date.now());
  }

  private async listLeases(): Promise<Map<string, V1Lease>> {
    const listed = await this.call('list', 'leases', (opts) =>
      this.coordination.listNamespacedLease({ namespace: this.o.namespace, labelSelector: `${STORE_LABEL}=${this.o.storeLabel}` }, opts),
    );
    return new Map(listed.items.map((l) => [l.metadata?.name ?? '', l]));
  }

  /**
   * Ends dead leases: an expired Lease is deleted with the resourceVersion read as
   * precondition (if it was renewed since, it lives on), a missing one is dead already;
   * then the keys of the dead ones are deleted.
   */
  private async reap(candidates: Map<string, V1Lease | undefined>): Promise<void> {
    const dead = new Set<string>();
    for (const [name, lease] of candidates) {
      if (lease === undefined) {
        dead.add(name);
        continue;
      }
      try {
        await this.coordination.deleteNamespacedLease(
          { name, namespace: this.o.namespace, body: { preconditions: { resourceVersion: lease.metadata?.resourceVersion } } },
          this.deadline(),
        );
        this.log.info({ lease: name, holder: lease.spec?.holderIdentity }, 'Deleted an expired lease');
        dead.add(name);
      } catch (err) {
        const status = statusOf(err);
        if (status === 404) dead.add(name);
        else if (status !== 409) throw this.storeError(err, 'delete', 'leases');
      }
    }
    if (dead.size > 0) await this.removeKeysOfLeases(dead);
  }

  /** One sweep: finds keys of dead leases (and, now and then, expired Leases nobody references) and reaps them. */
  private async sweep(): Promise<void> {
    const read = await this.readConfigMap();
    const referenced = new Set<string>();
    for (const e of read?.state.entries.values() ?? []) if (e.lease !== undefined && !this.ownLive(e.lease)) referenced.add(e.lease);
    const gcDue = Date.now() - this.lastLeaseGcAt >= LEASE_GC_INTERVAL_MS;
    if (referenced.size === 0 && !gcDue) return;
    const leases = await this.listLeases();
    if (gcDue) this.lastLeaseGcAt = Date.now();
    const candidates = new Map<string, V1Lease | undefined>();
    for (const name of referenced) {
      const lease = leases.get(name);
      if (!lease || this.expired(lease)) candidates.set(name, lease);
    }
    if (gcDue) for (const [name, lease] of leases) if (!this.ownLive(name) && this.expired(lease)) candidates.set(name, lease);
    if (candidates.size > 0) await this.reap(candidates);
  }

  private sweepSoon(): void {
    if (this.closed || this.sweeping) return;
    this.sweeping = this.sweep()
      .catch((err: unknown) => this.log.debug({ err }, 'Lease sweep failed'))
      .finally(() => (this.sweeping = undefined));
  }

  private scheduleSweep(): void {
    const interval = this.o.sweepIntervalMs * (0.8 + 0.4 * Math.random());
    this.sweepTimer = setTimeout(() => {
      this.sweepSoon();
      if (!this.closed) this.scheduleSweep();
    }, interval);
    this.sweepTimer.unref();
  }

  /** Renews with the resourceVersion last seen; 'gone' when the Lease no longer exists. */
  private async renewLease(object: V1Lease, at: number, timeoutMs: number): Promise<V1Lease | 'gone'> {
    const name = object.metadata!.name!;
    let current = object;
    for (let attempt = 0; ; attempt++) {
      const body: V1Lease = { ...current, spec: { ...current.spec, renewTime: new V1MicroTime(at) } };
      try {
        return await this.coordination.replaceNamespacedLease({ name, namespace: this.o.namespace, body }, this.deadline(timeoutMs));
      } catch (err) {
        const status = statusOf(err);
        if (status === 404) return 'gone';
        if (status !== 409 || attempt > 0) throw this.storeError(err, 'update', 'leases', timeoutMs);
      }
      try {
        current = await this.coordination.readNamespacedLease({ name, namespace: this.o.namespace }, this.deadline(timeoutMs));
      } catch (err) {
        if (statusOf(err) === 404) return 'gone';
        throw this.storeError(err, 'get', 'leases', timeoutMs);
      }
    }
  }

  private async revokeLease(name: string): Promise<void> {
    await this.removeKeysOfLeases(new Set([name]));
    try {
      await this.coordination.deleteNamespacedLease({ name, namespace: this.o.namespace }, this.deadline());
    } catch (err) {
      if (statusOf(err) !== 404) throw this.storeError(err, 'delete', 'leases');
    }
  }

  private leaseOf(lease: CoordinationLease): KubernetesLease {
    const own = this.leases.get(lease.id);
    if (own !== lease || own.ended) throw new KmqError(ErrorCode.InvalidRequest, `Lease ${lease.id} does not belong to this store or has ended`);
    return own;
  }

  // --- plumbing ---

  private labels(): Record<string, string> {
    return { [MANAGED_BY_LABEL]: 'kmq', [STORE_LABEL]: this.o.storeLabel };
  }

  private checkOpen(): void {
    if (this.closed) throw new KmqError(ErrorCode.ConnectionClosed, 'The coordination store is closed');
  }

  /** Per-call options: the request is aborted after `timeoutMs`; connections are kept alive. */
  private deadline(timeoutMs = this.o.callTimeoutMs): ConfigurationOptions {
    return this.requests.forCall(timeoutMs);
  }

  private async call<T>(verb: string, resource: string, fn: (opts: ConfigurationOptions) => Promise<T>): Promise<T> {
    try {
      return await fn(this.deadline());
    } catch (err) {
      throw this.storeError(err, verb, resource);
    }
  }

  private storeError(err: unknown, verb: string, resource: string, timeoutMs = this.o.callTimeoutMs): KmqError {
    return toStoreError(err, { verb, resource, namespace: this.o.namespace, timeoutMs });
  }
}

function matches(current: StoredEntry | undefined, expected: number | 'absent' | undefined): boolean {
  if (expected === undefined) return true;
  if (expected === 'absent' || expected === 0) return current === undefined;
  return current?.version === expected;
}

/** A short, growing, jittered pause between compare-and-swap rounds that lost. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.min(200, 5 * 2 ** Math.min(attempt, 6)) * Math.random();
  return new Promise((r) => setTimeout(r, ms));
}
