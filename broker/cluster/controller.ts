import { EventEmitter } from 'node:events';
import { backoffDelay, sleep } from '../../lib/backoff.js';
import type { BackoffOptions } from '../../lib/backoff.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
import { DEFAULT_RETRY_BACKOFF } from './broker-registry.js';
import type { BrokerRegistry } from './broker-registry.js';
import { CONTROLLER_EPOCH_KEY, CONTROLLER_KEY, encodeJson, topicKey } from './cluster-metadata.js';
import type { ClusterTopic, ControllerRecord, PartitionState } from './cluster-metadata.js';
import type { ClusterView, VersionedTopic } from './cluster-view.js';
import type { CoordinationLease, CoordinationStore } from './coordination-store.js';
import { decodeClusterTopic, decodeControllerEpoch, decodeControllerRecord } from './metadata-codec.js';
import { eligibleBrokers, proposeRebalance, readSnapshot } from './cluster-rebalance.js';
import { QUEUE_ANCHOR_TOPIC, queueAnchor } from './queue-alignment.js';
import { decideTopic, isReassigning } from './reassignment.js';

/**
 * Options of Controller. Timing: a controller that dies is replaced once its
 * lease expires (the registry's `leaseTtlMs`, 6 s by default) and the others
 * see `controller` deleted; the new one reconciles at once, so partitions led
 * by a dead broker get a new leader within about the lease TTL.
 */
export interface ControllerOptions {
  store: CoordinationStore;
  /** This broker's registry: its lease also holds the controller record. */
  registry: BrokerRegistry;
  /** The cluster as this broker sees it (started by the controller if needed). */
  view: ClusterView;
  brokerId: number;
  /** Delays between retries of failed campaigns and reconciles (default 200 ms doubling to 2 s, ±20 %). */
  retryBackoff?: BackoffOptions;
  /** Compare-and-swap attempts on one topic within one reconcile before retrying it later (default 16). */
  maxWriteAttempts?: number;
  /** At most this many partitions copy data for a reassignment at once, over the whole cluster (default 8); the rest wait. */
  maxConcurrentReassignments?: number;
  /** A broker that joins holding no replica gets some: the controller proposes a rebalance (default true). */
  autoRebalanceOnJoin?: boolean;
  /** The topic whose partition 0 every queue topic follows (queue-alignment.ts; default `__share_state`). */
  queueAnchorTopic?: string;
  logger?: Logger;
}

/** What a Controller reports. */
export interface ControllerEvents {
  /** This broker became the controller at `epoch`. */
  elected: [epoch: number];
  /** This broker stopped being the controller (lease lost, record gone, or stopped); it makes no further write. */
  deposed: [epoch: number, reason: string];
}

interface Term {
  epoch: number;
  lease: CoordinationLease;
  /** The version of our `controller` record. */
  version: number;
}

/**
 * The cluster controller. Every broker runs one; they campaign for the
 * `controller` key (bound to the broker's lease, after bumping
 * `controller-epoch` by compare-and-swap) and the winner acts until its lease
 * is lost, while the others wait for the key to be deleted and campaign again.
 *
 * Acting is reconciling: on election and whenever brokers or topics change,
 * every partition of every topic gets `electPartition`'s decision, written as
 * one compare-and-swap per topic on the version read (on conflict: re-read,
 * decide again). Before every write it checks that its term holds (the lease
 * has not ended): once the lease is lost it writes nothing more. The queue
 * anchor's topic goes first, so that queue topics follow the anchor as this
 * pass left it.
 */
export class Controller extends EventEmitter<ControllerEvents> {
  private readonly store: CoordinationStore;
  private readonly registry: BrokerRegistry;
  private readonly view: ClusterView;
  private readonly brokerId: number;
  private readonly backoff: BackoffOptions;
  private readonly maxWriteAttempts: number;
  private readonly maxReassigning: number;
  private readonly autoRebalanceOnJoin: boolean;
  private readonly queueAnchorTopic: string;
  private readonly log: Logger;
  /** Our own writes per topic: the view may not show them yet when the next reconcile starts. */
  private readonly written = new Map<string, VersionedTopic>();
  /** Brokers seen live in this term, and those that joined without replicas and wait for a rebalance. */
  private knownBrokers = new Set<number>();
  private readonly joined = new Set<number>();
  private term: Term | undefined;
  /** Our last claim, to recognise our own record if the claim's reply was lost (only under the same lease). */
  private claimed: { epoch: number; lease: CoordinationLease } | undefined;
  private campaigning: Promise<void> | undefined;
  private campaignAgain = false;
  private reconciling: Promise<void> | undefined;
  private reconcileAgain = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;

  private readonly onLost = (): void => this.depose('lease lost');
  private readonly onRegistered = (): void => this.campaign();
  private readonly onControllerChanged = (record: ControllerRecord | undefined): void => {
    if (this.term !== undefined && (record?.brokerId !== this.brokerId || record.epoch !== this.term.epoch)) void this.verifyTerm();
    if (record === undefined) this.campaign();
  };
  private readonly onClusterChanged = (): void => this.reconcile();

  constructor(options: ControllerOptions) {
    super();
    this.store = options.store;
    this.registry = options.registry;
    this.view = options.view;
    this.brokerId = options.brokerId;
    this.backoff = options.retryBackoff ?? DEFAULT_RETRY_BACKOFF;
    this.maxWriteAttempts = options.maxWriteAttempts ?? 16;
    if (!(Number.isSafeInteger(this.maxWriteAttempts) && this.maxWriteAttempts > 0)) {
      throw new KmqError(ErrorCode.InvalidConfig, `maxWriteAttempts must be a positive integer, got ${this.maxWriteAttempts}`);
    }
    this.maxReassigning = options.maxConcurrentReassignments ?? 8;
    if (!(Number.isSafeInteger(this.maxReassigning) && this.maxReassigning > 0)) {
      throw new KmqError(ErrorCode.InvalidConfig, `maxConcurrentReassignments must be a positive integer, got ${this.maxReassigning}`);
    }
    this.autoRebalanceOnJoin = options.autoRebalanceOnJoin ?? true;
    this.queueAnchorTopic = options.queueAnchorTopic ?? QUEUE_ANCHOR_TOPIC;
    this.log = (options.logger ?? silentLogger()).child({ component: 'controller', broker: options.brokerId });
  }

  /** True while this broker acts as controller (its term's lease holds). */
  get isController(): boolean {
    return this.holds(this.term);
  }

  /** The controller epoch of the current term; undefined when not controller. */
  get epoch(): number | undefined {
    return this.isController ? this.term!.epoch : undefined;
  }

  /** Starts campaigning (waits for the view's first listing). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.registry.on('lost', this.onLost);
    this.registry.on('registered', this.onRegistered);
    this.view.on('controllerChanged', this.onControllerChanged);
    this.view.on('brokersChanged', this.onClusterChanged);
    this.view.on('topicChanged', this.onClusterChanged);
    await this.view.start();
    this.campaign();
  }

  /** Stops acting and campaigning; a controller resigns (deletes its record) so another takes over at once. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.registry.off('lost', this.onLost);
    this.registry.off('registered', this.onRegistered);
    this.view.off('controllerChanged', this.onControllerChanged);
    this.view.off('brokersChanged', this.onClusterChanged);
    this.view.off('topicChanged', this.onClusterChanged);
    const term = this.term;
    this.depose('stopped');
    await Promise.all([this.campaigning, this.reconciling]);
    if (term !== undefined && !term.lease.ended) {
      await this.store.delete(CONTROLLER_KEY, { ifVersion: term.version }).catch((err: unknown) => {
        this.log.warn({ err }, 'Resigning as controller failed; the record goes with the lease');
      });
    }
  }

  private holds(term: Term | undefined): term is Term {
    return term !== undefined && term === this.term && !term.lease.ended && !this.stopped;
  }

  private depose(reason: string): void {
    const term = this.term;
    if (term === undefined) return;
    this.term = undefined;
    clearTimeout(this.retryTimer);
    this.log.warn({ epoch: term.epoch, reason }, 'No longer the controller');
    this.emit('deposed', term.epoch, reason);
  }

  /** The view shows another record than ours: check the store, and stop acting if it is not ours any more. */
  private async verifyTerm(): Promise<void> {
    const term = this.term;
    if (term === undefined) return;
    try {
      const current = await this.store.get(CONTROLLER_KEY);
      if (term !== this.term) return;
      if (current === undefined || current.version !== term.version) this.depose('controller record replaced or deleted');
    } catch (err) {
      this.log.warn({ err }, 'Checking the controller record failed');
    }
  }

  private campaign(): void {
    if (this.stopped || !this.started) return;
    if (this.campaigning !== undefined) {
      this.campaignAgain = true;
      return;
    }
    this.campaigning = (async () => {
      do {
        this.campaignAgain = false;
        await this.campaignOnce();
      } while (this.campaignAgain && !this.stopped);
    })().finally(() => {
      this.campaigning = undefined;
      if (this.campaignAgain) this.campaign();
    });
  }

  /** Tries until this broker is controller, someone else is, or this broker is not registered. */
  private async campaignOnce(): Promise<void> {
    for (let attempt = 0; !this.stopped && !this.isController; attempt++) {
      // A term whose lease ended without being reported lost (revoked, released) is over too.
      this.depose('lease ended');
      const lease = this.registry.lease;
      if (lease === undefined) return; // Campaigns again once registered.
      try {
        const current = await this.store.get(CONTROLLER_KEY);
        if (current !== undefined) {
          const record = decodeOrUndefined(() => decodeControllerRecord(CONTROLLER_KEY, current.value));
          // Our own claim whose reply was lost: it is bound to our lease. (A claim under an earlier lease goes with that lease.)
          if (record?.brokerId === this.brokerId && record.epoch === this.claimed?.epoch && this.claimed.lease === lease && !lease.ended) {
            return this.elected(record.epoch, lease, current.version);
          }
          if (record === undefined) this.log.error({ key: CONTROLLER_KEY }, 'The controller record does not decode; campaigning again once it is deleted');
          return; // Someone else's (or a stale one of ours): campaign again when it is deleted.
        }
        const counter = await this.store.get(CONTROLLER_EPOCH_KEY);
        const epoch = (counter === undefined ? 0 : decodeControllerEpoch(CONTROLLER_EPOCH_KEY, counter.value)) + 1;
        const bumped = await this.store.put(CONTROLLER_EPOCH_KEY, String(epoch), { ifVersion: counter?.version ?? 'absent' });
        if (!bumped.ok || lease.ended) continue;
        this.claimed = { epoch, lease };
        const claimed = await this.store.put(CONTROLLER_KEY, encodeJson({ brokerId: this.brokerId, epoch }), { ifVersion: 'absent', lease });
        if (claimed.ok) return this.elected(epoch, lease, claimed.version);
      } catch (err) {
        this.log.warn({ err }, 'Campaigning for controller failed, retrying');
        await sleep(backoffDelay(attempt, this.backoff));
      }
    }
  }

  private elected(epoch: number, lease: CoordinationLease, version: number): void {
    if (lease.ended || lease !== this.registry.lease || this.stopped) return;
    this.term = { epoch, lease, version };
    this.written.clear();
    this.knownBrokers = new Set();
    this.joined.clear();
    this.log.info({ epoch }, 'Elected controller');
    this.emit('elected', epoch);
    this.reconcile();
  }

  private reconcile(): void {
    if (!this.holds(this.term)) return;
    if (this.reconciling !== undefined) {
      this.reconcileAgain = true;
      return;
    }
    this.reconciling = (async () => {
      do {
        this.reconcileAgain = false;
        await this.reconcileAll();
      } while (this.reconcileAgain && this.holds(this.term));
    })().finally(() => {
      this.reconciling = undefined;
      // A change reported after the loop's last check, before this ran, is not lost.
      if (this.reconcileAgain) this.reconcile();
    });
  }

  private async reconcileAll(): Promise<void> {
    const term = this.term;
    if (!this.holds(term)) return;
    const live = new Set(this.view.live().keys());
    const topics = this.view.topics();
    for (const [name, own] of this.written) {
      const seen = topics.get(name);
      if (seen === undefined || seen.version >= own.version) this.written.delete(name);
      else topics.set(name, own);
    }
    // The throttle: partitions reassigning over the whole cluster, counted per topic.
    const reassigning = new Map([...topics].map(([name, t]) => [name, t.value.partitions.filter(isReassigning).length]));
    let failed = false;
    // The anchor first: queue topics follow it as decided in this pass.
    const order = [...topics.keys()].sort((a, b) => Number(b === this.queueAnchorTopic) - Number(a === this.queueAnchorTopic));
    const states = new Map([...topics].map(([name, t]) => [name, t.value]));
    for (const name of order) {
      if (!this.holds(term)) return;
      try {
        const anchor = name === this.queueAnchorTopic ? undefined : queueAnchor(states, this.queueAnchorTopic);
        const res = await this.reconcileTopic(term, name, topics.get(name)!, live, reassigning, anchor);
        if (res.state === undefined) states.delete(name);
        else states.set(name, res.state);
        if (!res.done) failed = true;
      } catch (err) {
        failed = true;
        this.log.warn({ err, topic: name }, 'Reconciling a topic failed, retrying');
      }
    }
    if (!(await this.rebalanceJoined(term, live, topics))) failed = true;
    if (failed && this.holds(term)) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.reconcile(), backoffDelay(0, this.backoff));
      this.retryTimer.unref();
    }
  }

  /**
   * Writes the topic's decisions (a queue topic aligned with `anchor`). `done`
   * is false when it gave up for now (too many conflicts); `state` is the
   * topic as last read or written (undefined: deleted).
   */
  private async reconcileTopic(
    term: Term,
    name: string,
    read: VersionedTopic,
    live: ReadonlySet<number>,
    reassigning: Map<string, number>,
    anchor: PartitionState | undefined,
  ): Promise<{ done: boolean; state: ClusterTopic | undefined }> {
    const key = topicKey(name);
    let current: VersionedTopic = read;
    for (let attempt = 0; attempt < this.maxWriteAttempts; attempt++) {
      let elsewhere = 0;
      for (const [n, count] of reassigning) if (n !== name) elsewhere += count;
      const { next, reassigning: after } = decideTopic(current.value, live, this.maxReassigning - elsewhere, anchor);
      if (next === undefined || !this.holds(term)) return { done: true, state: current.value };
      const res = await this.store.put(key, encodeJson(next), { ifVersion: current.version });
      if (res.ok) {
        reassigning.set(name, after);
        this.written.set(name, { value: next, version: res.version });
        this.logDecisions(name, current.value, next, term.epoch);
        return { done: true, state: next };
      }
      if (!this.holds(term)) return { done: true, state: current.value };
      const stored = await this.store.get(key);
      if (stored === undefined) return { done: true, state: undefined };
      try {
        current = { value: decodeClusterTopic(key, stored.value), version: stored.version };
      } catch (err) {
        this.log.error({ err, topic: name }, 'Cannot reconcile a topic whose state does not decode');
        return { done: true, state: undefined };
      }
    }
    return { done: false, state: current.value };
  }

  /**
   * A broker that joined (or was live at election) holding no replica, and may
   * hold some, gets a rebalance. Not while a broker holding replicas is down:
   * its replicas would move away for what may be a restart. False when
   * proposing failed (retried with the reconcile).
   */
  private async rebalanceJoined(term: Term, live: ReadonlySet<number>, topics: Map<string, VersionedTopic>): Promise<boolean> {
    if (!this.autoRebalanceOnJoin) return true;
    for (const b of live) if (!this.knownBrokers.has(b)) this.joined.add(b);
    this.knownBrokers = new Set(live);
    const holders = new Set<number>();
    for (const t of topics.values()) for (const p of t.value.partitions) for (const b of [...p.replicas, ...(p.targetReplicas ?? [])]) holders.add(b);
    for (const b of [...this.joined]) if (!live.has(b) || holders.has(b)) this.joined.delete(b);
    if (this.joined.size === 0 || topics.size === 0) return true;
    if ([...holders].some((b) => !live.has(b))) return true;
    try {
      const snap = await readSnapshot(this.store);
      const eligible = new Set(eligibleBrokers(snap));
      const joined = [...this.joined].filter((b) => eligible.has(b));
      if (joined.length === 0 || !this.holds(term)) {
        this.joined.clear();
        return true;
      }
      const moves = await proposeRebalance(this.store, { mayWrite: () => this.holds(term), queueAnchorTopic: this.queueAnchorTopic });
      this.joined.clear();
      this.log.info({ joined, moves: moves.length, controllerEpoch: term.epoch }, 'Brokers joined without replicas; proposed a rebalance');
      return true;
    } catch (err) {
      this.log.warn({ err }, 'Proposing a rebalance for joined brokers failed');
      return false;
    }
  }

  private logDecisions(name: string, before: ClusterTopic, after: ClusterTopic, epoch: number): void {
    after.partitions.forEach((p, partition) => {
      const b = before.partitions[partition]!;
      if (p === b) return;
      const fields = { topic: name, partition, controllerEpoch: epoch, leader: p.leader, leaderEpoch: p.leaderEpoch, isr: p.isr, previousLeader: b.leader };
      if (b.targetReplicas !== undefined && p.targetReplicas === undefined) {
        this.log.info({ ...fields, replicas: p.replicas, previousReplicas: b.replicas }, 'Partition reassignment completed');
      } else if (p.targetReplicas !== undefined && p.replicas.length !== b.replicas.length) {
        this.log.info({ ...fields, replicas: p.replicas, targetReplicas: p.targetReplicas }, 'Partition reassignment started');
      } else if (p.targetReplicas !== undefined && b.targetReplicas === undefined) {
        // Only queue alignment sets targets here.
        this.log.info({ ...fields, replicas: p.replicas, targetReplicas: p.targetReplicas }, 'Queue partition reassigned to follow the queue anchor');
      } else if (p.replicas.join() !== b.replicas.join()) {
        this.log.info({ ...fields, replicas: p.replicas, previousReplicas: b.replicas }, 'Queue partition moved to the queue anchor\'s replicas');
      } else if (p.leader !== b.leader) {
        if (p.leader === -1) this.log.warn(fields, 'Partition has no live in-sync replica; it stays without a leader until one returns');
        else this.log.info(fields, 'Partition leader elected');
      } else {
        this.log.info({ ...fields, previousIsr: b.isr }, 'Removed dead brokers from the in-sync replicas');
      }
    });
  }
}

function decodeOrUndefined<T>(decode: () => T): T | undefined {
  try {
    return decode();
  } catch {
    return undefined;
  }
}
