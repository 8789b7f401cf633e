import type { Command } from 'commander';
import { runBroker } from '../../broker/main.js';
import type { BrokerOptions } from '../../broker/main.js';
import { intArg } from '../args.js';
import { EnvVar, readEnv } from '../../lib/env.js';

export interface BrokerFlags {
  data?: string;
  port?: string;
  host?: string;
  httpPort?: string;
  advertisedHost?: string;
  advertisedPort?: string;
  nodeId?: string;
  nodeIdFromHostname?: boolean;
  flush?: string;
  flushIntervalMs?: string;
  maxMessageBytes?: string;
  segmentBytes?: string;
  retentionMs?: string;
  retentionBytes?: string;
  retentionCheckMs?: string;
  defaultPartitions?: string;
  dedupeWindowMs?: string;
  dedupeMaxKeys?: string;
  clusterStore?: string;
  etcdEndpoints?: string;
  clusterName?: string;
  clusterNamespace?: string;
  kubeconfig?: string;
  brokerLeaseMs?: string;
  replicaLagTimeMs?: string;
  defaultReplicationFactor?: string;
  minInsyncReplicas?: string;
  maxConcurrentReassignments?: string;
  /** false with --no-auto-rebalance-on-join. */
  autoRebalanceOnJoin?: boolean;
}

export function addBrokerFlags(cmd: Command): Command {
  return cmd
    .option('--data <dir>', 'data folder (env KMQ_DATA_DIR)')
    .option('--port <n>', 'broker protocol port (env KMQ_PORT)', undefined)
    .option('--host <addr>', 'address to listen on', undefined)
    .option('--http-port <n>', 'port for /metrics, /healthz, /readyz (default port+1; -1 disables)')
    .option('--advertised-host <host>', 'host clients are told to connect to')
    .option('--advertised-port <n>', 'port clients and brokers are told to connect to (a proxy in front; default: the listening port)')
    .option('--node-id <n>', 'broker id')
    .option('--node-id-from-hostname', 'broker id = the ordinal of the hostname <name>-<ordinal> (a StatefulSet pod)')
    .option('--flush <mode>', 'fsync policy: every-batch | interval | none')
    .option('--flush-interval-ms <n>', 'fsync interval for --flush interval')
    .option('--max-message-bytes <n>', 'largest record batch accepted')
    .option('--segment-bytes <n>', 'segment file size before roll')
    .option('--retention-ms <n>', 'default topic retention by time (-1 forever)')
    .option('--retention-bytes <n>', 'default partition size limit (-1 unlimited)')
    .option('--retention-check-ms <n>', 'how often retention runs')
    .option('--default-partitions <n>', 'partitions of a topic created without a count')
    .option('--dedupe-window-ms <n>', 'how long published idempotency keys are remembered (0 disables)')
    .option('--dedupe-max-keys <n>', 'most idempotency keys remembered for publish dedupe')
    .option('--cluster-store <store>', 'coordination store that makes brokers a cluster: none | local (one broker, in its data folder) | etcd | kubernetes (env KMQ_CLUSTER_STORE)')
    .option('--etcd-endpoints <urls>', 'comma-separated etcd URLs for --cluster-store etcd (env KMQ_ETCD_ENDPOINTS)')
    .option('--cluster-name <name>', 'cluster name: its keys live under /kmq/<name>/ in the store (env KMQ_CLUSTER_NAME)')
    .option('--cluster-namespace <ns>', 'namespace of the kubernetes store\'s ConfigMap and Leases (env POD_NAMESPACE, else the pod\'s own)')
    .option('--kubeconfig <file>', 'kubeconfig for the kubernetes store outside a pod (env KUBECONFIG; default: the pod\'s service account)')
    .option('--broker-lease-ms <n>', "broker lease TTL: a dead broker's partitions move after about this long")
    .option('--replica-lag-time-ms <n>', 'a follower behind its leader for this long leaves the in-sync set')
    .option('--default-replication-factor <n>', 'replication factor of topics created without one (0: min(3, brokers))')
    .option('--min-insync-replicas <n>', 'in-sync replicas acks=all needs (capped at the replication factor)')
    .option('--max-concurrent-reassignments <n>', 'partitions copying data for a reassignment at once, over the cluster (default 8)')
    .option('--no-auto-rebalance-on-join', 'do not give a broker that joins without replicas a share of them');
}

export function brokerOptionsFrom(f: BrokerFlags): BrokerOptions {
  const o: BrokerOptions = {};
  if (f.data !== undefined) o.dataDir = f.data;
  if (f.port !== undefined) o.port = intArg('--port', f.port);
  if (f.host !== undefined) o.host = f.host;
  if (f.httpPort !== undefined) o.httpPort = intArg('--http-port', f.httpPort);
  if (f.advertisedHost !== undefined) o.advertisedHost = f.advertisedHost;
  if (f.advertisedPort !== undefined) o.advertisedPort = intArg('--advertised-port', f.advertisedPort);
  if (f.nodeId !== undefined) o.nodeId = intArg('--node-id', f.nodeId);
  if (f.nodeIdFromHostname === true) o.nodeIdFromHostname = true;
  if (f.flush !== undefined) o.flush = f.flush as BrokerOptions['flush'];
  if (f.flushIntervalMs !== undefined) o.flushIntervalMs = intArg('--flush-interval-ms', f.flushIntervalMs);
  if (f.maxMessageBytes !== undefined) o.maxMessageBytes = intArg('--max-message-bytes', f.maxMessageBytes);
  if (f.segmentBytes !== undefined) o.segmentBytes = intArg('--segment-bytes', f.segmentBytes);
  if (f.retentionMs !== undefined) o.retentionMs = intArg('--retention-ms', f.retentionMs);
  if (f.retentionBytes !== undefined) o.retentionBytes = intArg('--retention-bytes', f.retentionBytes);
  if (f.retentionCheckMs !== undefined) o.retentionCheckMs = intArg('--retention-check-ms', f.retentionCheckMs);
  if (f.defaultPartitions !== undefined) o.defaultPartitions = intArg('--default-partitions', f.defaultPartitions);
  if (f.dedupeWindowMs !== undefined) o.dedupeWindowMs = intArg('--dedupe-window-ms', f.dedupeWindowMs);
  if (f.dedupeMaxKeys !== undefined) o.dedupeMaxKeys = intArg('--dedupe-max-keys', f.dedupeMaxKeys);
  const store = f.clusterStore ?? readEnv(EnvVar.clusterStore);
  if (store !== undefined) o.clusterStore = store as BrokerOptions['clusterStore'];
  const endpoints = f.etcdEndpoints ?? readEnv(EnvVar.etcdEndpoints);
  if (endpoints !== undefined) o.etcdEndpoints = endpoints.split(',').map((e) => e.trim()).filter((e) => e !== '');
  const clusterName = f.clusterName ?? readEnv(EnvVar.clusterName);
  if (clusterName !== undefined) o.clusterName = clusterName;
  if (f.clusterNamespace !== undefined) o.clusterNamespace = f.clusterNamespace;
  if (f.kubeconfig !== undefined) o.kubeconfig = f.kubeconfig;
  if (f.brokerLeaseMs !== undefined) o.brokerLeaseMs = intArg('--broker-lease-ms', f.brokerLeaseMs);
  if (f.replicaLagTimeMs !== undefined) o.replicaLagTimeMs = intArg('--replica-lag-time-ms', f.replicaLagTimeMs);
  if (f.defaultReplicationFactor !== undefined) o.defaultReplicationFactor = intArg('--default-replication-factor', f.defaultReplicationFactor);
  if (f.minInsyncReplicas !== undefined) o.minInSyncReplicas = intArg('--min-insync-replicas', f.minInsyncReplicas);
  if (f.maxConcurrentReassignments !== undefined) o.maxConcurrentReassignments = intArg('--max-concurrent-reassignments', f.maxConcurrentReassignments);
  if (f.autoRebalanceOnJoin === false) o.autoRebalanceOnJoin = false;
  return o;
}

/** Registers `kmq broker`. `kmq dev` (cli/commands/dev.ts) takes the same flags. */
export function registerBrokerCommands(program: Command): void {
  addBrokerFlags(program.command('broker').description('run one broker process')).action(async (flags: BrokerFlags) => {
    await runBroker(brokerOptionsFrom(flags));
  });
}
