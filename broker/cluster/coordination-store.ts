import type { KmqError } from '../../lib/errors.js';

/**
 * The coordination store (DESIGN.md §4 "Cluster"): versioned keys with
 * compare-and-swap, leases, and watches. Controller election, broker
 * registration and cluster metadata are built on it; consensus itself is the
 * store's (etcd, the Kubernetes API, or one process for a single node).
 *
 * Contract, shared by every implementation (coordination-store.contract.ts):
 * - Keys are strings relative to the store's namespace; values are strings.
 * - A version is a positive integer that grows with every write to the store;
 *   a key's version changes on every put. Version 0 means "no such key".
 * - A conditional write (`ifVersion`) succeeds only if the key's current version
 *   equals the expected one (`'absent'`: the key does not exist). Of concurrent
 *   writers with the same expectation, exactly one wins.
 * - A key put with a lease is deleted when the lease expires or is revoked.
 * - A watch delivers the events of its prefix in version order, each once. If
 *   it cannot guarantee that (its history was compacted while disconnected), it
 *   delivers one `resync` event, after which the watcher must re-read with `list`.
 * - Failures are KmqErrors: unreachable or timed-out stores are retriable
 *   (BrokerNotAvailable, RequestTimedOut); invalid arguments are InvalidRequest;
 *   a closed store is ConnectionClosed.
 */

/** A key's value and the version it was written at. */
export interface VersionedValue {
  value: string;
  version: number;
}

/** A key, its value and version, as `list` returns them. */
export interface VersionedEntry extends VersionedValue {
  key: string;
}

/** The version a conditional write expects: a version, or `'absent'` for "the key does not exist". */
export type ExpectedVersion = number | 'absent';

export interface PutOptions {
  /** Write only if the key is at this version (or absent). Omitted: write unconditionally. */
  ifVersion?: ExpectedVersion;
  /** Bind the key to this lease: the key is deleted when the lease ends. */
  lease?: CoordinationLease;
}

export interface DeleteOptions {
  /** Delete only if the key is at this version. Omitted: delete unconditionally. */
  ifVersion?: number;
}

/**
 * The outcome of a write. `ok: false` means the condition did not hold; nothing
 * was written, and `version` is the key's current version (0 when absent).
 * `ok: true`: for a put, `version` is the key's new version; for a delete, the
 * store's version at which the key was deleted (0 if there was no key).
 */
export interface WriteResult {
  ok: boolean;
  version: number;
}

/**
 * A lease kept alive in the background until revoked or lost. A lease is lost
 * when it expires at the store, or when keep-alives have not succeeded for its
 * TTL (the holder must then assume its leased keys are gone).
 */
export interface CoordinationLease {
  /** The store's id of the lease. */
  readonly id: string;
  /** The TTL granted by the store (at least the one asked for), ms. */
  readonly ttlMs: number;
  /** True once the lease is lost or revoked. */
  readonly ended: boolean;
  /** Resolves once, with the reason, when the lease is lost (never when revoked). */
  readonly lost: Promise<KmqError>;
  /** Ends the lease now: its keys are deleted. Idempotent. */
  revoke(): Promise<void>;
}

export interface GrantLeaseOptions {
  /** Keep the lease alive in the background (default true); false: it expires after its TTL. */
  keepAlive?: boolean;
}

/** What a watch reports: a put or delete at a version, or `resync` (events may be missing: re-read). */
export type WatchEvent =
  | { type: 'put'; key: string; value: string; version: number }
  | { type: 'delete'; key: string; version: number }
  | { type: 'resync' };

/** Stops a watch. */
export type StopWatch = () => Promise<void>;

export interface CoordinationStore {
  get(key: string): Promise<VersionedValue | undefined>;
  put(key: string, value: string, options?: PutOptions): Promise<WriteResult>;
  delete(key: string, options?: DeleteOptions): Promise<WriteResult>;
  /** Every key starting with `prefix`, in key order. */
  list(prefix: string): Promise<VersionedEntry[]>;
  /** Grants a lease of at least `ttlMs` and keeps it alive until revoked or lost. */
  grantLease(ttlMs: number, options?: GrantLeaseOptions): Promise<CoordinationLease>;
  /** Delivers events of keys starting with `prefix` made after the watch is established. */
  watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<StopWatch>;
  /** Stops watches and keep-alives (without revoking leases) and releases connections. */
  close(): Promise<void>;
}
