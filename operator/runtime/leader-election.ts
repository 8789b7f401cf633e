/**
 * Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection:
 * - a candidate takes the Lease when it has no holder, or when its record has not changed
 *   for leaseDurationSeconds as measured on the candidate's own clock since it last saw a
 *   change (so clocks need not agree, only run at the same rate);
 * - every write is an update carrying the resourceVersion read (compare-and-swap): of two
 *   candidates racing for the same record, one gets 409 Conflict;
 * - the leader renews every retryPeriod; if no renewal succeeded for renewDeadline since the
 *   last successful one was *sent*, it stops leading. renewDeadline < leaseDuration, so it
 *   stops before any other candidate may consider the Lease expired;
 * - on stop, the leader first ends its work (signal aborted, onStoppedLeading awaited),
 *   then releases the Lease (empty holder) so a successor takes over at its next retry.
 */
import { CoordinationV1Api, V1MicroTime } from '@kubernetes/client-node';
import type { KubeConfig, V1Lease } from '@kubernetes/client-node';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
import type { Clock } from './clock.js';
import { delay, systemClock } from './clock.js';

/** The Lease calls leader election makes; injectable for tests. */
export interface LeaseStore {
  /** The Lease, or undefined when it does not exist. */
  get(namespace: string, name: string): Promise<V1Lease | undefined>;
  /** Creates the Lease; rejects with status 409 when it exists. */
  create(namespace: string, lease: V1Lease): Promise<V1Lease>;
  /** Replaces the Lease; rejects with status 409 when metadata.resourceVersion is not the current one. */
  replace(namespace: string, lease: V1Lease): Promise<V1Lease>;
}

/** A LeaseStore over client-node's CoordinationV1Api. */
export function apiLeaseStore(kubeConfig: KubeConfig): LeaseStore {
  const api = kubeConfig.makeApiClient(CoordinationV1Api);
  return {
    async get(namespace, name) {
      try {
        return await api.readNamespacedLease({ namespace, name });
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw err;
      }
    },
    create: (namespace, body) => api.createNamespacedLease({ namespace, body }),
    replace: (namespace, body) => api.replaceNamespacedLease({ namespace, name: body.metadata!.name!, body }),
  };
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

/** Options of a LeaderElector. */
export interface LeaderElectionOptions {
  /** Where the Lease lives. */
  namespace: string;
  /** The Lease's name, one per set of candidates. */
  name: string;
  /** This candidate's identity, unique among candidates (e.g. pod name plus a random suffix). */
  identity: string;
  /** How long others wait for an unrenewed Lease before taking it, ms (default 15,000; whole seconds are stored, rounded up). */
  leaseDurationMs?: number;
  /** How long the leader keeps trying to renew before it stops leading, ms (default 10,000; < leaseDurationMs). */
  renewDeadlineMs?: number;
  /** Interval between acquire or renew attempts, ms (default 2,000; < renewDeadlineMs). */
  retryPeriodMs?: number;
  /** Release the Lease when stopped while leading (default true). False leaves it to expire, as a crash would. */
  releaseOnStop?: boolean;
  /** Called on becoming leader; `signal` aborts when leadership ends. Work started here must stop on that signal. */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called after leadership ends, before the Lease is released; awaited. */
  onStoppedLeading?: () => void | Promise<void>;
  /** Called when a different holder is observed. */
  onNewLeader?: (identity: string) => void;
  /** The Lease calls, e.g. apiLeaseStore(kubeConfig). */
  store: LeaseStore;
  clock?: Clock;
  logger?: Logger;
  random?: () => number;
}

interface CompiledLeaderElectionOptions {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  releaseOnStop: boolean;
}

export function compileLeaderElectionOptions(o: LeaderElectionOptions): CompiledLeaderElectionOptions {
  const c = {
    leaseDurationMs: o.leaseDurationMs ?? 15_000,
    renewDeadlineMs: o.renewDeadlineMs ?? 10_000,
    retryPeriodMs: o.retryPeriodMs ?? 2_000,
    releaseOnStop: o.releaseOnStop ?? true,
  };
  const invalid = (setting: string, why: string): KmqError =>
    new KmqError(ErrorCode.InvalidConfig, `Leader election: ${setting} ${why}`, { setting, ...c }, { retriable: false });
  if (!o.namespace || !o.name) throw invalid('namespace/name', 'must name the Lease');
  if (!o.identity) throw invalid('identity', 'must not be empty');
  if (!(c.retryPeriodMs > 0)) throw invalid('retryPeriodMs', 'must be > 0');
  if (!(c.renewDeadlineMs > c.retryPeriodMs)) throw invalid('renewDeadlineMs', 'must be greater than retryPeriodMs');
  if (!(c.leaseDurationMs > c.renewDeadlineMs)) throw invalid('leaseDurationMs', 'must be greater than renewDeadlineMs');
  return c;
}

/** Campaigns for a Lease and runs the caller's work while it holds it. */
export class LeaderElector {
  private readonly options: CompiledLeaderElectionOptions;
  private readonly store: LeaseStore;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly stopping = new AbortController();
  private observedVersion: string | undefined;
  private observedTime = 0;
  private observedHolder = '';
  private lastAttemptSent = 0;
  private leading = false;
  private running: Promise<void> | undefined;

  constructor(private readonly config: LeaderElectionOptions) {
    this.options = compileLeaderElectionOptions(config);
    this.store = config.store;
    this.clock = config.clock ?? systemClock;
    this.random = config.random ?? Math.random;
    this.log = (config.logger ?? silentLogger()).child({ lease: `${config.namespace}/${config.name}`, identity: config.identity });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The holder last seen in the Lease ('' when none). */
  get leader(): string {
    return this.observedHolder;
  }

  /**
   * Campaigns until leading, leads until stop() or until renewal fails for renewDeadline,
   * then resolves. A LeaderElector runs once; after it resolves, make a new one to campaign again.
   */
  run(): Promise<void> {
    this.running ??= this.campaign();
    return this.running;
  }

  /** Stops campaigning or leading; resolves once the work has stopped and the Lease is released. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  private async campaign(): Promise<void> {
    const stop = this.stopping.signal;
    this.log.info('Campaigning for the lease');
    while (!stop.aborted) {
      if (await this.attempt()) break;
      await delay(this.clock, this.jittered(), stop);
    }
    if (stop.aborted) return;

    this.leading = true;
    this.log.info('Started leading');
    const lead = new AbortController();
    const work = Promise.resolve()
      .then(() => this.config.onStartedLeading(lead.signal))
      .catch((err: unknown) => this.log.error({ err }, 'Leader work failed'));

    let lastRenewSent = this.lastAttemptSent;
    let lost = false;
    while (!stop.aborted) {
      await delay(this.clock, this.options.retryPeriodMs, stop);
      if (stop.aborted) break;
      const remaining = lastRenewSent + this.options.renewDeadlineMs - this.clock.now();
      const renewed = remaining > 0 && (await this.attempt(remaining));
      if (renewed) {
        lastRenewSent = this.lastAttemptSent;
      } else if (this.clock.now() - lastRenewSent >= this.options.renewDeadlineMs || this.observedHolder !== this.config.identity) {
        lost = true;
        break;
      }
    }

    this.leading = false;
    lead.abort();
    this.log.info({ lost }, lost ? 'Lost the lease, stopped leading' : 'Stopped leading');
    try {
      await this.config.onStoppedLeading?.();
    } catch (err) {
      this.log.error({ err }, 'onStoppedLeading failed');
    }
    await work;
    if (!lost && this.options.releaseOnStop) await this.release();
  }

  /** One acquire-or-renew; true when this candidate holds the Lease afterwards. Never throws. */
  private async attempt(timeoutMs = this.options.renewDeadlineMs): Promise<boolean> {
    this.lastAttemptSent = this.clock.now();
    let timer: unknown;
    const timeout = new Promise<boolean>((resolve) => {
      timer = this.clock.setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([this.tryAcquireOrRenew(), timeout]);
    } catch (err) {
      if (statusOf(err) === 409) this.log.debug('Lease changed under us');
      else this.log.warn({ err }, 'Lease update failed');
      return false;
    } finally {
      this.clock.clearTimeout(timer);
    }
  }

  private leaseSeconds(): number {
    return Math.max(1, Math.ceil(this.options.leaseDurationMs / 1000));
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.config;
    const now = this.clock.now();
    const existing = await this.store.get(namespace, name);
    if (!existing) {
      const created = await this.store.create(namespace, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: this.leaseSeconds(),
          acquireTime: new V1MicroTime(now),
          renewTime: new V1MicroTime(now),
          leaseTransitions: 0,
        },
      });
      this.observe(created);
      return true;
    }
    this.observe(existing);
    const spec = existing.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const ttlMs = (spec.leaseDurationSeconds ?? this.leaseSeconds()) * 1000;
    if (holder !== '' && holder !== identity && this.observedTime + ttlMs > this.clock.now()) return false;
    const mine = holder === identity;
    const updated = await this.store.replace(namespace, {
      ...existing,
      metadata: { ...existing.metadata, name, namespace, resourceVersion: existing.metadata?.resourceVersion },
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: this.leaseSeconds(),
        acquireTime: mine && spec.acquireTime ? spec.acquireTime : new V1MicroTime(now),
        renewTime: new V1MicroTime(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    });
    this.observe(updated);
    return true;
  }

  private observe(lease: V1Lease): void {
    const version = lease.metadata?.resourceVersion;
    if (version === this.observedVersion) return;
    this.observedVersion = version;
    this.observedTime = this.clock.now();
    const holder = lease.spec?.holderIdentity ?? '';
    if (holder !== this.observedHolder) {
      this.observedHolder = holder;
      if (holder !== '' && holder !== this.config.identity) {
        this.log.info({ leader: holder }, 'New leader observed');
        this.config.onNewLeader?.(holder);
      }
    }
  }

  /** Gives the Lease up if this candidate still holds it: empty holder, 1 s duration. */
  private async release(): Promise<void> {
    const { namespace, name, identity } = this.config;
    try {
      const existing = await this.store.get(namespace, name);
      if (!existing || existing.spec?.holderIdentity !== identity) return;
      const now = this.clock.now();
      await this.store.replace(namespace, {
        ...existing,
        spec: { ...existing.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: new V1MicroTime(now), acquireTime: new V1MicroTime(now) },
      });
      this.observedHolder = '';
      this.log.info('Released the lease');
    } catch (err) {
      this.log.warn({ err }, 'Could not release the lease; it expires on its own');
    }
  }

  /** retryPeriod spread up to +20 %, so candidates do not move in lockstep. */
  private jittered(): number {
    return Math.round(this.options.retryPeriodMs * (1 + 0.2 * this.random()));
  }
}
