import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { ErrorCode, KmqError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { compileBrokerOptions } from './options.js';
import type { BrokerOptions, CompiledBrokerOptions } from './options.js';
import { LocalMetadataStore } from './cluster/local-metadata-store.js';
import { TopicManager } from './topics/topic-manager.js';
import { GroupCoordinator } from './groups/group-coordinator.js';
import { HostedService } from './partition/hosted-service.js';
import type { JournaledService } from './partition/hosted-service.js';
import { BrokerProbe } from './metrics/broker-probe.js';
import type { ReplicationSnapshot } from './metrics/broker-probe.js';
import { HealthServer } from '../lib/health-server.js';
import { RequestHandlers } from './server/request-handlers.js';
import { ClientConnection } from './server/client-connection.js';
import { ProducerIdAllocator } from './server/producer-id-allocator.js';
import { QueueHandlers } from './server/queue-handlers.js';
import { QueueHost } from './queues/queue-host.js';
import { clusterRoutingStore } from './cluster/cluster-routing-store.js';
import { ProcessedKeys } from './idempotency/processed-keys.js';
import { IdempotencyHandlers } from './server/idempotency-handlers.js';
import { ClusterMember } from './cluster/cluster-member.js';
import { EtcdCoordinationStore } from './cluster/etcd-coordination-store.js';
import { LocalCoordinationStore } from './cluster/local-coordination-store.js';
import type { CoordinationStore } from './cluster/coordination-store.js';

import { OFFSETS_TOPIC, OFFSETS_TOPIC_CONFIG, PROCESSED_KEYS_TOPIC, PROCESSED_KEYS_TOPIC_CONFIG, SHARE_STATE_TOPIC, SHARE_STATE_TOPIC_CONFIG } from './topics/internal-topics.js';


/**
 * A single broker: storage, topics, consumer groups, the protocol listener and
 * the HTTP health/metrics listener. `Broker.start` returns once it serves.
 */
export class Broker {
  private readonly connections = new Set<ClientConnection>();
  private readonly timers: NodeJS.Timeout[] = [];
  private stopping: Promise<void> | undefined;
  private ready = false;
  private port = 0;
  private httpPort = -1;
  private dedupeEvictedLogged = 0;
  private dedupeWarnAt = 0;

  private constructor(
    readonly options: CompiledBrokerOptions,
    private readonly logger: Logger,
    private readonly lock: DataDirLock,
    private readonly topics: TopicManager,
    private readonly groups: HostedService<GroupCoordinator>,
    private readonly queueHost: HostedService<QueueHost>,
    private readonly processedKeys: HostedService<ProcessedKeys>,
    private readonly probe: BrokerProbe,
    private readonly server: net.Server,
    private readonly health: HealthServer | undefined,
    private readonly cluster: { member: ClusterMember | undefined; store: CoordinationStore | undefined },
  ) {}

  static async start(opts: BrokerOptions, logger: Logger): Promise<Broker> {
    const options = compileBrokerOptions(opts);
    fs.mkdirSync(options.dataDir, { recursive: true });
    const lock = DataDirLock.acquire(options.dataDir);
    try {
      const store = LocalMetadataStore.open(options.dataDir);
      const topics = new TopicManager(options, store, logger);
      await topics.start();
      const cluster: { member: ClusterMember | undefined; store: CoordinationStore | undefined } = { member: undefined, store: undefined };
      // In a cluster, a request for a hosted service nobody hosts yet creates its internal topic.
      const wanted = (topic: string) => () => cluster.member?.internalTopicWanted(topic);
      const groups = new HostedService(
        'group coordinator',
        (offsetsStore) =>
          new GroupCoordinator({
            logger: logger.child({ component: 'groups' }),
            store: offsetsStore,
            options: { minSessionTimeoutMs: options.minSessionTimeoutMs, maxSessionTimeoutMs: options.maxSessionTimeoutMs },
            topics: {
              partitionCount: (t) => (topics.has(t) ? topics.get(t).partitions.length : undefined),
              logStartOffset: (t, p) => topics.partition(t, p).logStartOffset,
              logEndOffset: (t, p) => topics.partition(t, p).highWatermark,
              offsetForTimestamp: (t, p, ts) => topics.partition(t, p).offsetForTimestamp(ts),
            },
          }),
        options.maxMessageBytes,
        logger.child({ component: 'groups' }),
        wanted(OFFSETS_TOPIC),
      );
      // In a cluster the offsets topic is a replicated cluster topic: the coordinator follows its leader (ClusterMember).
      if (options.clusterStore === 'none') {
        const offsetsTopic = await topics.ensureInternalTopic(OFFSETS_TOPIC, 1, OFFSETS_TOPIC_CONFIG);
        await groups.lead(offsetsTopic.partitions[0]!);
      }

      // Queues, shared groups and exchanges: one service on the leader of __share_state
      // partition 0 (always here on a single node); in a cluster its queues are cluster topics.
      const queueHost = new HostedService(
        'queue host',
        (journal) =>
          new QueueHost(journal, {
            topics,
            routing: cluster.store === undefined ? store.routing : clusterRoutingStore(cluster.store),
            dedupe: { windowMs: options.dedupeWindowMs, maxEntries: options.dedupeMaxKeys },
            ...(cluster.store === undefined
              ? {}
              : {
                  catalog: {
                    create: (name, partitions, settings, overrides) => member().createQueue(name, partitions, settings, overrides),
                    delete: (name) => member().deleteTopic(name),
                    holdsReplica: (topic, partition) => member().partitionState(topic, partition)?.replicas.includes(options.nodeId) ?? false,
                  },
                }),
            logger,
          }),
        options.maxMessageBytes,
        logger.child({ component: 'queues' }),
        wanted(SHARE_STATE_TOPIC),
      );
      const member = (): ClusterMember => {
        if (cluster.member === undefined) throw joining();
        return cluster.member;
      };
      if (options.clusterStore === 'none') {
        const shareTopic = await topics.ensureInternalTopic(SHARE_STATE_TOPIC, 1, SHARE_STATE_TOPIC_CONFIG);
        await queueHost.lead(shareTopic.partitions[0]!);
      }
      const processedKeys = new HostedService(
        'processed-key store',
        (keysStore) =>
          new ProcessedKeys({
            journal: { append: (entries) => keysStore.appendMany(entries), load: () => keysStore.load() },
            logger: logger.child({ component: 'processed-keys' }),
          }),
        options.maxMessageBytes,
        logger.child({ component: 'processed-keys' }),
        wanted(PROCESSED_KEYS_TOPIC),
      );
      if (options.clusterStore === 'none') {
        const keysTopic = await topics.ensureInternalTopic(PROCESSED_KEYS_TOPIC, 1, PROCESSED_KEYS_TOPIC_CONFIG);
        await processedKeys.lead(keysTopic.partitions[0]!);
      }
      // In a cluster these follow the leaders of their (replicated) topics: ClusterMember moves them.
      const hosted = new Map<string, HostedService<JournaledService>>([
        [OFFSETS_TOPIC, groups],
        [PROCESSED_KEYS_TOPIC, processedKeys],
        [SHARE_STATE_TOPIC, queueHost],
      ]);
      const probe = new BrokerProbe({
        *partitions() {
          for (const t of topics.list(true)) for (const p of t.partitions) yield { topic: t.record.name, partition: p.index, logStartOffset: p.logStartOffset, logEndOffset: p.logEndOffset };
        },
        groupLag: () => groups.current()?.lagSnapshot() ?? [],
        queues: () => queueHost.current()?.queues.metrics() ?? [],
        exchanges: () => queueHost.current()?.queues.exchangeCounters() ?? { routed: new Map(), unroutable: new Map() },
        duplicatesDropped: () => queueHost.current()?.queues.duplicateCounters() ?? new Map(),
        replication: () => replicationSnapshot(cluster.member, queueHost.current() !== undefined),
      });
      const server = net.createServer();
      const readiness = { broker: undefined as Broker | undefined };
      const health = options.httpPort >= 0 ? new HealthServer(probe.registry, () => readiness.broker?.ready === true) : undefined;
      if (options.clusterStore === 'etcd') cluster.store = new EtcdCoordinationStore({ endpoints: options.etcdEndpoints, prefix: `/kmq/${options.clusterName}/` });
      if (options.clusterStore === 'kubernetes') cluster.store = await kubernetesStore(options, logger);
      // A one-broker cluster whose metadata lives in its data folder: replication roles, internal topics and all.
      if (options.clusterStore === 'local') cluster.store = LocalCoordinationStore.open(path.join(options.dataDir, 'cluster-store.json'));
      const broker = new Broker(options, logger, lock, topics, groups, queueHost, processedKeys, probe, server, health, cluster);
      readiness.broker = broker;
      const queueHandlers = new QueueHandlers(options, () => queueHost.get(), () => queueHost.current(), logger.child({ component: 'queues' }));
      const producerIds = new ProducerIdAllocator(
        cluster.store === undefined
          ? store
          : { reserveProducerIds: (n) => (cluster.member === undefined ? Promise.reject(joining()) : cluster.member.reserveProducerIds(n)) },
      );
      const handlers = new RequestHandlers(options, topics, () => groups.get(), queueHandlers, producerIds, probe, logger, store.clusterId, () => ({
        host: options.advertisedHost,
        port: options.advertisedPort > 0 ? options.advertisedPort : broker.port,
      }), new IdempotencyHandlers(() => processedKeys.get()), () => {
        if (cluster.store !== undefined && cluster.member === undefined) throw joining();
        return cluster.member;
      });
      server.on('connection', (socket) => broker.accept(socket, handlers));
      await broker.listen();
      if (cluster.store !== undefined) {
        try {
          cluster.member = await ClusterMember.start(options, cluster.store, topics, { host: options.advertisedHost, port: options.advertisedPort > 0 ? options.advertisedPort : broker.port, httpPort: broker.httpPort }, logger, hosted);
        } catch (err) {
          await broker.stop();
          throw err;
        }
      }
      broker.startTimers();
      broker.ready = true;
      logger.info({ port: broker.port, httpPort: broker.httpPort, dataDir: options.dataDir, flush: options.flush }, 'Broker started');
      return broker;
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  get address(): { host: string; port: number; httpPort: number } {
    return { host: this.options.host, port: this.port, httpPort: this.httpPort };
  }

  private async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    }).catch((err: NodeJS.ErrnoException) => {
      throw new KmqError(ErrorCode.InvalidConfig, `Cannot listen on ${this.options.host}:${this.options.port}: ${err.message}`, {}, { cause: err });
    });
    this.port = (this.server.address() as AddressInfo).port;
    if (this.health !== undefined) {
      const wanted = this.options.port === 0 ? 0 : this.options.httpPort;
      this.httpPort = await this.health.listen(this.options.host, wanted).catch((err: NodeJS.ErrnoException) => {
        throw new KmqError(ErrorCode.InvalidConfig, `Cannot listen for HTTP on ${this.options.host}:${wanted}: ${err.message}`, {}, { cause: err });
      });
    }
  }

  private accept(socket: net.Socket, handlers: RequestHandlers): void {
    if (this.stopping !== undefined) {
      socket.destroy();
      return;
    }
    const conn = new ClientConnection(socket, handlers.dispatch, this.probe, this.logger, this.options.maxFrameBytes);
    this.connections.add(conn);
    this.probe.connectionOpened();
    conn.onClose(() => {
      this.connections.delete(conn);
      this.probe.connectionClosed();
    });
  }

  private startTimers(): void {
    const retention = setInterval(() => {
      void this.enforceRetention().then((n) => {
        if (n > 0) this.logger.info({ segments: n }, 'Retention removed segments');
      });
    }, this.options.retentionCheckMs);
    const groups = setInterval(() => {
      this.groups.current()?.tick();
      this.queueHost.current()?.tick();
      this.processedKeys.current()?.tick();
      this.warnDedupeEvictions();
    }, 100);
    retention.unref();
    groups.unref();
    this.timers.push(retention, groups);
  }

  /** Keys evicted before their window ended shorten the dedupe window: say so, at most once a minute. */
  private warnDedupeEvictions(): void {
    const evicted = this.queueHost.current()?.dedupe.evictedCount ?? this.dedupeEvictedLogged;
    const now = Date.now();
    // A new queue host counts from zero again.
    if (evicted < this.dedupeEvictedLogged) this.dedupeEvictedLogged = evicted;
    if (evicted === this.dedupeEvictedLogged || now < this.dedupeWarnAt) return;
    this.logger.warn({ evicted: evicted - this.dedupeEvictedLogged, maxKeys: this.options.dedupeMaxKeys, windowMs: this.options.dedupeWindowMs }, 'Publish dedupe keys evicted before their window ended; raise dedupeMaxKeys');
    this.dedupeEvictedLogged = evicted;
    this.dedupeWarnAt = now + 60_000;
  }

  /** Runs retention, and reclaims fully acknowledged queue segments. */
  async enforceRetention(): Promise<number> {
    return (await this.topics.enforceRetention()) + (this.queueHost.current()?.queues.reclaim() ?? 0);
  }

  /** Stops accepting, closes connections, flushes and closes every log. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.ready = false;
      for (const t of this.timers) clearInterval(t);
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const c of this.connections) c.socket.destroy();
      await closed;
      await this.health?.close();
      await this.cluster.member?.stop();
      await this.cluster.store?.close().catch(() => undefined);
      await this.topics.close();
      this.lock.release();
      this.logger.info('Broker stopped');
    })();
    return this.stopping;
  }
}

function replicationSnapshot(member: ClusterMember | undefined, queueHost: boolean): ReplicationSnapshot | undefined {
  if (member === undefined) return undefined;
  const isController = member.controller.isController;
  let reassigning: ReplicationSnapshot['reassigning'];
  if (isController) {
    reassigning = { copying: 0, waiting: 0 };
    for (const move of member.reassignments()) {
      // Started once every target broker is a replica (reassignment.ts).
      if (move.targetReplicas.every((b) => move.replicas.includes(b))) reassigning.copying++;
      else reassigning.waiting++;
    }
  }
  return { isController, led: member.replicas.led(), queueHost, ...(reassigning === undefined ? {} : { reassigning }) };
}

/**
 * The kubernetes coordination store of options (ConfigMap and Leases in clusterNamespace).
 * Loaded on demand: the API client takes a second to import, which single-node brokers skip.
 */
async function kubernetesStore(options: CompiledBrokerOptions, logger: Logger): Promise<CoordinationStore> {
  const [{ KubeConfig }, { KubernetesCoordinationStore }] = await Promise.all([import('@kubernetes/client-node'), import('./cluster/kubernetes-coordination-store.js')]);
  const kubeConfig = new KubeConfig();
  if (options.kubeconfig !== '') {
    try {
      kubeConfig.loadFromFile(options.kubeconfig);
    } catch (err) {
      throw new KmqError(ErrorCode.InvalidConfig, `kubeconfig: cannot load ${options.kubeconfig}: ${err instanceof Error ? err.message : String(err)}`, { setting: 'kubeconfig' });
    }
  } else {
    if (process.env.KUBERNETES_SERVICE_HOST === undefined) {
      throw new KmqError(ErrorCode.InvalidConfig, 'clusterStore kubernetes: not in a pod (KUBERNETES_SERVICE_HOST is unset) and no kubeconfig given', { setting: 'kubeconfig' });
    }
    kubeConfig.loadFromCluster();
  }
  return new KubernetesCoordinationStore({
    kubeConfig,
    namespace: options.clusterNamespace,
    prefix: `/kmq/${options.clusterName}/`,
    identity: `${options.clusterName}-broker-${options.nodeId}-${process.pid}`,
    logger: logger.child({ component: 'cluster' }),
  });
}

function joining(): KmqError {
  return new KmqError(ErrorCode.BrokerNotAvailable, 'The broker is joining its cluster');
}


/** Keeps two brokers off one data folder: a lock file holding the owner's pid. */
class DataDirLock {
  private constructor(private readonly file: string) {}

  static acquire(dataDir: string): DataDirLock {
    const file = path.join(dataDir, '.lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
        return new DataDirLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new KmqError(ErrorCode.StorageError, `Cannot lock ${dataDir}: ${(err as Error).message}`);
        const pid = Number(fs.readFileSync(file, 'utf8'));
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
          throw new KmqError(ErrorCode.InvalidConfig, `Data folder ${dataDir} is in use by process ${pid}`);
        }
        // A lock left by a process that died (kill -9): take it over.
        fs.rmSync(file, { force: true });
      }
    }
    throw new KmqError(ErrorCode.StorageError, `Cannot lock ${dataDir}`);
  }

  release(): void {
    fs.rmSync(this.file, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
