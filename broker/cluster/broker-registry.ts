import { EventEmitter } from 'node:events';
import { backoffDelay, sleep } from '../../lib/backoff.js';
import type { BackoffOptions } from '../../lib/backoff.js';
import { ErrorCode, KmqError, isRetriable, toKmqError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
import { BROKERS_PREFIX, brokerKey, encodeJson } from './cluster-metadata.js';
import type { BrokerRegistration } from './cluster-metadata.js';
import type { CoordinationLease, CoordinationStore } from './coordination-store.js';
import { decodeBrokerRegistration } from './metadata-codec.js';
import { PrefixInformer } from './prefix-informer.js';
import type { KeyChange } from './prefix-informer.js';

/**
 * Options of BrokerRegistry. Timing: a broker that dies (kill -9) stays
 * registered until its lease expires at the store, at most `leaseTtlMs` after
 * its last keep-alive (etcd rounds TTLs up to whole seconds); the controller
 * sees the deletion through its watch at once. With the default 6 s, a dead
 * leader is replaced within about 6 s, inside the 10 s the design asks for.
 */
export interface BrokerRegistryOptions {
  store: CoordinationStore;
  /** TTL of the broker's lease, ms (default 6000). */
  leaseTtlMs?: number;
  /**
   * How long `register` waits for the registration of an earlier process with
   * the same broker id (killed, its lease not yet expired) to go, ms
   * (default 3 × leaseTtlMs). A registration that stays longer belongs to a live
   * broker: two brokers have the same id.
   */
  registerTimeoutMs?: number;
  /** Delays between retries of store calls and registration attempts (default 200 ms doubling to 2 s, ±20 %). */
  retryBackoff?: BackoffOptions;
  logger?: Logger;
}

/** BrokerRegistryOptions with every default applied. */
export interface CompiledBrokerRegistryOptions {
  store: CoordinationStore;
  leaseTtlMs: number;
  registerTimeoutMs: number;
  retryBackoff: BackoffOptions;
  logger: Logger;
}

export const DEFAULT_LEASE_TTL_MS = 6000;
export const DEFAULT_RETRY_BACKOFF: BackoffOptions = { initialMs: 200, maxMs: 2000, multiplier: 2, jitter: 0.2 };

export function compileBrokerRegistryOptions(options: BrokerRegistryOptions): CompiledBrokerRegistryOptions {
  const leaseTtlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  if (!(Number.isFinite(leaseTtlMs) && leaseTtlMs > 0)) throw new KmqError(ErrorCode.InvalidConfig, `leaseTtlMs must be a positive number of ms, got ${leaseTtlMs}`);
  const registerTimeoutMs = options.registerTimeoutMs ?? 3 * leaseTtlMs;
  if (!(Number.isFinite(registerTimeoutMs) && registerTimeoutMs >= 0)) {
    throw new KmqError(ErrorCode.InvalidConfig, `registerTimeoutMs must be a non-negative number of ms, got ${registerTimeoutMs}`);
  }
  return {
    store: options.store,
    leaseTtlMs,
    registerTimeoutMs,
    retryBackoff: options.retryBackoff ?? DEFAULT_RETRY_BACKOFF,
    logger: options.logger ?? silentLogger(),
  };
}

/** What a BrokerRegistry reports. */
export interface BrokerRegistryEvents {
  /** This broker is registered (first, and again after its lease was lost); `lease` holds its key. */
  registered: [registration: BrokerRegistration, lease: CoordinationLease];
  /**
   * This broker's lease is lost: the store has (or will have) deleted its
   * registration and every key bound to the lease, and other brokers treat it
   * as gone. It registers again as soon as the store lets it.
   */
  lost: [err: KmqError];
  /** The set of live brokers changed. */
  brokersChanged: [live: ReadonlyMap<number, BrokerRegistration>];
}

/**
 * A broker's registration in the coordination store (`brokers/<id>`, bound to
 * its lease), and every broker's view of which brokers are live (a
 * PrefixInformer on `brokers/`: listed on start and on every resync). The
 * lease it holds is the broker's one lease: other keys that must vanish with
 * the broker (the controller record) are bound to it.
 */
export class BrokerRegistry extends EventEmitter<BrokerRegistryEvents> {
  private readonly options: CompiledBrokerRegistryOptions;
  private readonly log: Logger;
  private readonly informer: PrefixInformer;
  private readonly brokers = new Map<number, BrokerRegistration>();
  private started: Promise<void> | undefined;
  private registration: BrokerRegistration | undefined;
  private currentLease: CoordinationLease | undefined;
  private reacquiring: Promise<void> | undefined;
  private stopped = false;

  constructor(options: BrokerRegistryOptions) {
    super();
    this.options = compileBrokerRegistryOptions(options);
    this.log = this.options.logger.child({ component: 'broker-registry' });
    this.informer = new PrefixInformer({
      store: this.options.store,
      prefix: BROKERS_PREFIX,
      backoff: this.options.retryBackoff,
      onChange: (changes) => this.onBrokersChange(changes),
      onError: (err) => this.log.warn({ err }, 'Watching broker registrations failed, retrying'),
    });
  }

  /** Starts watching registrations; resolves once the live set has been listed. Idempotent. */
  start(): Promise<void> {
    this.started ??= this.informer.start();
    return this.started;
  }

  /**
   * Registers this broker: a lease of `leaseTtlMs`, and `brokers/<id>` put only
   * if absent, bound to it. A registration of an earlier incarnation (a killed
   * process whose lease has not expired yet) is waited out, up to
   * `registerTimeoutMs`; then it fails with InvalidConfig naming the broker id.
   * After a lost lease the registry registers again by itself (event `lost`,
   * then `registered`).
   */
  async register(registration: BrokerRegistration): Promise<void> {
    if (this.stopped) throw new KmqError(ErrorCode.ShuttingDown, 'The broker registry is stopped', { broker: String(registration.id) });
    if (this.registration !== undefined) throw new KmqError(ErrorCode.InvalidRequest, `Broker ${this.registration.id} is already registered`, { broker: String(registration.id) });
    this.registration = registration;
    try {
      await this.acquire(Date.now() + this.options.registerTimeoutMs);
    } catch (err) {
      this.registration = undefined;
      throw err;
    }
    await this.start();
  }

  /** The lease of the current registration; undefined while not registered. */
  get lease(): CoordinationLease | undefined {
    return this.currentLease !== undefined && !this.currentLease.ended ? this.currentLease : undefined;
  }

  /** True while this broker's registration holds (its lease has not been lost). */
  get registered(): boolean {
    return this.lease !== undefined;
  }

  /** The brokers registered now, by id. */
  live(): Map<number, BrokerRegistration> {
    return new Map(this.brokers);
  }

  /** Revokes the lease (the registration and every key bound to it go at once) and stops watching. */
  async deregister(): Promise<void> {
    this.stopped = true;
    const lease = this.currentLease;
    this.currentLease = undefined;
    await this.informer.stop();
    if (lease !== undefined) {
      try {
        await lease.revoke();
      } catch (err) {
        // Unreachable store: the lease expires by itself within its TTL.
        this.log.warn({ err }, 'Revoking the broker lease failed; it expires within its TTL');
      }
    }
  }

  private async acquire(deadline: number | undefined): Promise<void> {
    const registration = this.registration!;
    const key = brokerKey(registration.id);
    const value = encodeJson(registration);
    let lease: CoordinationLease | undefined;
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) {
        await lease?.revoke().catch(() => undefined);
        throw new KmqError(ErrorCode.ShuttingDown, 'The broker registry is stopped', { broker: String(registration.id) });
      }
      let waitingFor: string | undefined;
      try {
        if (lease === undefined || lease.ended) lease = await this.options.store.grantLease(this.options.leaseTtlMs);
        const created = await this.options.store.put(key, value, { ifVersion: 'absent', lease });
        if (created.ok) return this.acquired(registration, lease);
        const existing = await this.options.store.get(key);
        if (existing !== undefined) {
          const holder = incarnationOf(key, existing.value);
          // Our own key (a put whose reply was lost, or a lease lost and not yet expired): take it over.
          if (holder === registration.incarnation) {
            const taken = await this.options.store.put(key, value, { ifVersion: existing.version, lease });
            if (taken.ok) return this.acquired(registration, lease);
          } else {
            waitingFor = holder;
          }
        }
      } catch (err) {
        if (!isRetriable(err)) {
          await lease?.revoke().catch(() => undefined);
          throw err;
        }
        this.log.warn({ err }, 'Registering the broker failed, retrying');
        if (deadline !== undefined && Date.now() >= deadline) {
          await lease?.revoke().catch(() => undefined);
          throw new KmqError(ErrorCode.BrokerNotAvailable, `Broker ${registration.id} could not register: ${toKmqError(err).message}`, { broker: String(registration.id) }, { cause: err });
        }
      }
      if (waitingFor !== undefined) {
        if (deadline !== undefined && Date.now() >= deadline) {
          await lease?.revoke().catch(() => undefined);
          throw new KmqError(
            ErrorCode.InvalidConfig,
            `Broker id ${registration.id} is registered by another process (incarnation ${waitingFor}) that did not go within ${this.options.registerTimeoutMs} ms: is another broker running with id ${registration.id}?`,
            { broker: String(registration.id), incarnation: waitingFor },
          );
        }
        if (attempt === 0) this.log.info({ incarnation: waitingFor }, 'Waiting for the registration of an earlier process to expire');
      }
      await sleep(backoffDelay(attempt, this.options.retryBackoff));
    }
  }

  private acquired(registration: BrokerRegistration, lease: CoordinationLease): void {
    if (this.stopped) {
      // Deregistered meanwhile: leave no registration behind.
      void lease.revoke().catch(() => undefined);
      throw new KmqError(ErrorCode.ShuttingDown, 'The broker registry is stopped', { broker: String(registration.id) });
    }
    this.currentLease = lease;
    void lease.lost.then((err) => this.onLeaseLost(lease, err));
    this.log.info({ broker: registration.id, lease: lease.id, ttlMs: lease.ttlMs }, 'Broker registered');
    this.emit('registered', registration, lease);
  }

  private onLeaseLost(lease: CoordinationLease, err: KmqError): void {
    if (this.currentLease !== lease || this.stopped) return;
    this.currentLease = undefined;
    this.log.warn({ err }, 'Broker lease lost; the cluster treats this broker as gone until it registers again');
    this.emit('lost', err);
    this.reacquiring ??= this.acquire(undefined)
      .catch((e: unknown) => {
        if (!this.stopped) this.log.error({ err: e }, 'Registering the broker again failed');
      })
      .finally(() => (this.reacquiring = undefined));
  }

  private onBrokersChange(changes: KeyChange[]): void {
    let changed = false;
    for (const { key, after } of changes) {
      const id = Number(key.slice(BROKERS_PREFIX.length));
      if (!Number.isSafeInteger(id) || id < 0 || String(id) !== key.slice(BROKERS_PREFIX.length)) {
        this.log.error({ key }, 'Ignoring a broker registration under a key that is not a broker id');
        continue;
      }
      if (after === undefined) {
        changed = this.brokers.delete(id) || changed;
        continue;
      }
      try {
        const registration = decodeBrokerRegistration(key, after.value);
        if (registration.id !== id) throw new KmqError(ErrorCode.StorageError, `Cluster metadata at ${key} registers broker ${registration.id}`, { key });
        this.brokers.set(id, registration);
        changed = true;
      } catch (err) {
        this.log.error({ err, key }, 'Ignoring a broker registration that does not decode; keeping the last good one');
      }
    }
    if (changed) this.emit('brokersChanged', this.live());
  }
}

/** The incarnation a stored registration names ('' if it does not decode: someone else's, waited out like one). */
function incarnationOf(key: string, value: string): string {
  try {
    return decodeBrokerRegistration(key, value).incarnation;
  } catch {
    return '';
  }
}
