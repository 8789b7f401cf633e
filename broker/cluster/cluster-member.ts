import { randomUUID } from 'node:crypto';
import { ErrorCode, KmqError, toKmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { CompiledBrokerOptions } from '../options.js';
import type { Topic, TopicManager } from '../topics/topic-manager.js';
import type { QueueSettings, TopicOverrides, TopicRecord } from './metadata-store.js';
import { ReplicaManager } from '../partition/replica-manager.js';
import { BrokerRegistry } from './broker-registry.js';
import { ClusterView } from './cluster-view.js';
import { Controller } from './controller.js';
import { createClusterTopic, deleteClusterTopic } from './cluster-topics.js';
import { updateIsr } from './partition-leadership.js';
import { decommissionBroker, proposeRebalance, reassignments } from './cluster-rebalance.js';
import type { PartitionMove } from './cluster-rebalance.js';
import type { BrokerRegistration, ClusterTopic, PartitionState } from './cluster-metadata.js';
import type { CoordinationStore } from './coordination-store.js';
import type { HostedService, JournaledService } from '../partition/hosted-service.js';
import { OFFSETS_TOPIC, OFFSETS_TOPIC_CONFIG, PROCESSED_KEYS_TOPIC, PROCESSED_KEYS_TOPIC_CONFIG, SHARE_STATE_TOPIC, SHARE_STATE_TOPIC_CONFIG } from '../topics/internal-topics.js';

/** Internal topics that become replicated cluster topics on first use, and their settings. */
const CLUSTER_INTERNAL_TOPICS: ReadonlyMap<string, TopicOverrides> = new Map([
  [OFFSETS_TOPIC, OFFSETS_TOPIC_CONFIG],
  [PROCESSED_KEYS_TOPIC, PROCESSED_KEYS_TOPIC_CONFIG],
  [SHARE_STATE_TOPIC, SHARE_STATE_TOPIC_CONFIG],
]);

/** How long a topic change made here may take to reach this broker's view before the request fails, ms. */
const VIEW_WAIT_MS = 15_000;
const PRODUCER_IDS_KEY = 'producer-ids';
const CLUSTER_ID_KEY = 'cluster-id';

/** Where this broker serves, as it registers itself. */
export interface Advertised {
  host: string;
  port: number;
  httpPort: number;
}

/**
 * A broker's membership in a cluster: it registers itself (lease), keeps the
 * cluster view, runs for controller, and turns every topic's stored state into
 * local partitions with their replication roles (ReplicaManager). Topic
 * creation and deletion go through the store, so every broker learns of them
 * the same way. Services kept in internal topics (consumer groups, processed
 * keys, queues) run on the leader of their topic's partition 0 (HostedService).
 */
export class ClusterMember {
  private readonly chains = new Map<string, Promise<void>>();
  private stopped = false;

  private constructor(
    private readonly options: CompiledBrokerOptions,
    private readonly store: CoordinationStore,
    private readonly topics: TopicManager,
    private readonly registry: BrokerRegistry,
    readonly view: ClusterView,
    readonly controller: Controller,
    readonly replicas: ReplicaManager,
    private readonly logger: Logger,
    /** The cluster's id, the same on every broker (made by the first one). */
    readonly clusterId: string,
    /** Services that run on the leader of their internal topic's partition 0, by topic. */
    private readonly hosted: ReadonlyMap<string, HostedService<JournaledService>>,
  ) {}

  private readonly creating = new Set<string>();

  static async start(
    options: CompiledBrokerOptions,
    store: CoordinationStore,
    topics: TopicManager,
    advertised: Advertised,
    logger: Logger,
    hosted: ReadonlyMap<string, HostedService<JournaledService>>,
  ): Promise<ClusterMember> {
    const log = logger.child({ component: 'cluster' });
    const registry = new BrokerRegistry({ store, leaseTtlMs: options.brokerLeaseMs, logger: log });
    const view = new ClusterView({ store, registry, logger: log });
    const replicas = new ReplicaManager({
      brokerId: options.nodeId,
      cluster: {
        brokerAddress: (id) => {
          const b = view.live().get(id);
          return b === undefined ? undefined : { host: b.host, port: b.port };
        },
        updateIsr: async (topic, partition, leaderEpoch, isr) => {
          const r = await updateIsr(store, topic, partition, { leader: options.nodeId, leaderEpoch }, isr);
          return r.ok ? 'ok' : 'fenced';
        },
      },
      partition: (topic, index) => (topics.has(topic) ? topics.get(topic).partitions[index] : undefined),
      replicaLagTimeMs: options.replicaLagTimeMs,
      fetchMaxWaitMs: 500,
      fetchMaxBytes: 8 * 1024 * 1024,
      logger: log,
    });
    const controller = new Controller({
      store,
      registry,
      view,
      brokerId: options.nodeId,
      maxConcurrentReassignments: options.maxConcurrentReassignments,
      autoRebalanceOnJoin: options.autoRebalanceOnJoin,
      logger: log,
    });
    const member = new ClusterMember(options, store, topics, registry, view, controller, replicas, log, await clusterIdOf(store), hosted);
    view.on('topicChanged', (name, topic) => member.enqueue(name, topic));
    await view.start();
    // Topics this broker holds that the cluster no longer has were deleted while it was away.
    for (const t of topics.list(false)) {
      if (view.topic(t.record.name) === undefined) member.enqueue(t.record.name, undefined);
    }
    for (const [name, t] of view.topics()) member.enqueue(name, t.value);
    await Promise.all([...member.chains.values()]);
    const registration: BrokerRegistration = { id: options.nodeId, host: advertised.host, port: advertised.port, httpPort: advertised.httpPort, incarnation: randomUUID() };
    await registry.register(registration);
    await controller.start();
    log.info({ brokerId: options.nodeId, brokers: [...view.live().keys()], topics: view.topics().size }, 'Joined the cluster');
    return member;
  }

  get brokerId(): number {
    return this.options.nodeId;
  }

  /** Live brokers, by id. */
  brokers(): Map<number, BrokerRegistration> {
    return this.view.live();
  }

  partitionState(topic: string, index: number): PartitionState | undefined {
    return this.view.partitionState(topic, index);
  }

  /** Creates a topic in the cluster and waits until this broker holds it. */
  async createTopic(name: string, partitions: number, replicationFactor: number, config: TopicOverrides): Promise<void> {
    this.topics.validateNew(name, partitions, config);
    const live = [...this.view.live().keys()];
    const rf = replicationFactor > 0 ? replicationFactor : this.options.defaultReplicationFactor > 0 ? this.options.defaultReplicationFactor : Math.min(3, live.length);
    const record: TopicRecord = { name, id: randomUUID(), partitions, replicationFactor: rf, config, internal: false, createdAt: Date.now() };
    await createClusterTopic(this.store, record, live);
    await this.untilView(`topic "${name}" to appear`, () => this.topics.has(name) && this.topics.get(name).record.id === record.id);
  }

  /**
   * Creates a queue in the cluster: its partitions are placed on the replicas of
   * `__share_state` partition 0 and led by its leader (the queue host, which the
   * controller keeps them following), and waits until this broker holds it.
   */
  async createQueue(name: string, partitions: number, settings: QueueSettings, overrides: TopicOverrides): Promise<void> {
    this.topics.validateNew(name, partitions, overrides);
    const anchor = this.view.partitionState(SHARE_STATE_TOPIC, 0);
    if (anchor === undefined || anchor.leader < 0) {
      this.internalTopicWanted(SHARE_STATE_TOPIC);
      throw new KmqError(ErrorCode.NotLeader, `No broker hosts the queues right now (${SHARE_STATE_TOPIC} has no leader)`, { topic: SHARE_STATE_TOPIC });
    }
    const record: TopicRecord = { name, id: randomUUID(), partitions, replicationFactor: anchor.replicas.length, config: overrides, internal: false, createdAt: Date.now(), queue: settings };
    await createClusterTopic(this.store, record, [...this.view.live().keys()], { anchor });
    await this.untilView(`queue "${name}" to appear`, () => this.topics.has(name) && this.topics.get(name).record.id === record.id);
  }

  async deleteTopic(name: string): Promise<void> {
    const t = this.topics.get(name);
    if (t.record.internal) throw new KmqError(ErrorCode.InvalidTopic, `Internal topic "${name}" cannot be deleted`, { topic: name });
    await deleteClusterTopic(this.store, name);
    await this.untilView(`topic "${name}" to go`, () => !this.topics.has(name));
  }

  /** Writes balanced reassignment targets over the live brokers (cluster-rebalance.ts); the controller carries them out. */
  rebalance(dryRun: boolean): Promise<PartitionMove[]> {
    return proposeRebalance(this.store, { dryRun });
  }

  /** Moves every replica off `brokerId` and keeps new ones off it while it runs. */
  decommission(brokerId: number, dryRun: boolean): Promise<PartitionMove[]> {
    return decommissionBroker(this.store, brokerId, { dryRun });
  }

  /** Partitions with a reassignment in progress or waiting, as this broker's view has them. */
  reassignments(): PartitionMove[] {
    return reassignments([...this.view.topics()].map(([name, t]) => [name, t.value]));
  }

  /** Reserves a block of producer ids no broker of the cluster hands out again. */
  async reserveProducerIds(count: number): Promise<number> {
    for (let attempt = 0; attempt < 64; attempt++) {
      const cur = await this.store.get(PRODUCER_IDS_KEY);
      const first = cur === undefined ? 0 : Number(cur.value);
      const r = await this.store.put(PRODUCER_IDS_KEY, String(first + count), { ifVersion: cur === undefined ? 'absent' : cur.version });
      if (r.ok) return first;
    }
    throw new KmqError(ErrorCode.RequestTimedOut, 'Could not reserve producer ids: too many concurrent reservations');
  }

  /**
   * A request for a service kept in internal topic `name` arrived: the topic is created
   * on first use, as a cluster topic replicated over min(3, live brokers); its
   * partition 0 leader will host the service.
   */
  internalTopicWanted(name: string): void {
    const config = CLUSTER_INTERNAL_TOPICS.get(name);
    if (config === undefined || this.view.topic(name) !== undefined || this.creating.has(name)) return;
    const live = [...this.view.live().keys()];
    const record: TopicRecord = { name, id: randomUUID(), partitions: 1, replicationFactor: Math.min(3, live.length), config, internal: true, createdAt: Date.now() };
    this.creating.add(name);
    createClusterTopic(this.store, record, live)
      .then(() => this.logger.info({ topic: name, replicationFactor: record.replicationFactor }, 'Created an internal topic'))
      .catch((err: unknown) => {
        const e = toKmqError(err);
        if (e.code !== ErrorCode.TopicExists) this.logger.warn({ topic: name, err: e.message }, 'Creating an internal topic failed');
      })
      .finally(() => this.creating.delete(name));
  }

  /** The acks=all threshold of a topic: its setting or the broker's, capped at its replication factor. */
  minInSync(record: TopicRecord): number {
    return Math.min(record.config.minInSyncReplicas ?? this.options.minInSyncReplicas, record.replicationFactor);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.controller.stop().catch(() => undefined);
    await this.replicas.stop();
    await this.view.stop().catch(() => undefined);
    await this.registry.deregister().catch(() => undefined);
  }

  /** Applies topic changes one at a time per topic, in the order the view saw them. */
  private enqueue(name: string, topic: ClusterTopic | undefined): void {
    const prev = this.chains.get(name) ?? Promise.resolve();
    const next = prev
      .then(() => (this.stopped ? undefined : this.apply(name, topic)))
      .catch((err: unknown) => this.logger.error({ topic: name, err: toKmqError(err).message }, 'Applying a topic change failed'));
    this.chains.set(name, next);
    void next.finally(() => {
      if (this.chains.get(name) === next) this.chains.delete(name);
    });
  }

  private async apply(name: string, ct: ClusterTopic | undefined): Promise<void> {
    if (ct === undefined) {
      if (!this.topics.has(name) || this.topics.get(name).record.internal) return;
      for (const p of this.topics.get(name).partitions) this.replicas.forget(p);
      await this.topics.delete(name);
      return;
    }
    const held = this.topics.has(name) ? this.topics.get(name) : undefined;
    if (held !== undefined && held.record.id !== ct.topic.id) for (const p of held.partitions) this.replicas.forget(p);
    const topic: Topic = await this.topics.adopt(ct.topic);
    const minIsr = this.minInSync(ct.topic);
    for (let i = 0; i < topic.partitions.length; i++) {
      const state = ct.partitions[i];
      if (state !== undefined) this.replicas.applyState(topic.partitions[i]!, state, minIsr);
    }
    const service = this.hosted.get(name);
    if (service !== undefined) {
      const state = ct.partitions[0];
      if (state?.leader === this.options.nodeId) await service.lead(topic.partitions[0]!);
      else service.resign(state === undefined || state.leader < 0 ? `no broker leads ${name} right now` : `broker ${state.leader} hosts it`);
    }
  }

  private async untilView(what: string, check: () => boolean): Promise<void> {
    const deadline = Date.now() + VIEW_WAIT_MS;
    while (!check()) {
      if (Date.now() > deadline) throw new KmqError(ErrorCode.RequestTimedOut, `Timed out waiting for ${what} in this broker's cluster view`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await Promise.all([...this.chains.values()]);
  }
}

/** The cluster id kept in the store: written once, by whichever broker gets there first. */
async function clusterIdOf(store: CoordinationStore): Promise<string> {
  for (;;) {
    const cur = await store.get(CLUSTER_ID_KEY);
    if (cur !== undefined) return cur.value;
    // Of brokers racing here one write wins; each reads the winner's id on the next pass.
    await store.put(CLUSTER_ID_KEY, randomUUID(), { ifVersion: 'absent' });
  }
}
