import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode, KmqError } from '../lib/errors.js';
import { EnvVar, readEnv } from '../lib/env.js';

export type FlushMode = 'every-batch' | 'interval' | 'none';

/** Settings of one broker process. Every field is optional here; see compileBrokerOptions for defaults. */
export interface BrokerOptions {
  /** Broker id, unique in a cluster. Default 0, or the ordinal of the hostname with nodeIdFromHostname. */
  nodeId?: number;
  /**
   * Take the broker id from the hostname's ordinal: a StatefulSet pod is named, and has the
   * hostname, `<statefulset>-<ordinal>`, so `kmq-broker-2` is broker 2. Excludes nodeId. Default false.
   */
  nodeIdFromHostname?: boolean;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** Broker protocol port. Default KMQ_PORT, else 9092; 0 picks a free port. */
  port?: number;
  /** Host advertised to clients in metadata. Default: host, or the machine's hostname when host is a wildcard. */
  advertisedHost?: string;
  /** Port advertised to clients and other brokers (a proxy or NAT in front of the broker); 0 = the port it listens on. Default 0. */
  advertisedPort?: number;
  /** HTTP port for /metrics, /healthz, /readyz. Default KMQ_HTTP_PORT, else port + 1 (0 when port is 0); -1 disables it. */
  httpPort?: number;
  /** Data folder. Default KMQ_DATA_DIR, else ./kmq-data. */
  dataDir?: string;
  /** Largest record batch accepted, in bytes (topics may lower or raise it). Default 1 MiB. */
  maxMessageBytes?: number;
  /** Largest protocol frame, in bytes. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Partitions of a topic created without a count. Default 1. */
  defaultPartitions?: number;
  /** Default retention of topics, ms; -1 keeps forever. Default 7 days. */
  retentionMs?: number;
  /** Default size limit per partition, bytes; -1 unlimited. Default -1. */
  retentionBytes?: number;
  /** Segment size, bytes. Default 128 MiB. */
  segmentBytes?: number;
  /** Segment age before roll, ms. Default 7 days. */
  segmentMs?: number;
  /** When appended data is fsynced: every batch before the ack, every flushIntervalMs, or left to the OS. Default every-batch. */
  flush?: FlushMode;
  /** Interval for flush=interval, ms. Default 1000. */
  flushIntervalMs?: number;
  /** How often retention and compaction run, ms. Default 30 s. */
  retentionCheckMs?: number;
  /** Upper bound of a consumer group member's session timeout, ms. Default 30 min. */
  maxSessionTimeoutMs?: number;
  /** Lower bound of a consumer group member's session timeout, ms. Default 1000. */
  minSessionTimeoutMs?: number;
  /** How long a published record's idempotency key is remembered per destination, ms; 0 disables publish dedupe. Default 10 min. */
  dedupeWindowMs?: number;
  /** Most idempotency keys remembered for publish dedupe, over every destination. Default 1,000,000. */
  dedupeMaxKeys?: number;
  /**
   * The coordination store that makes brokers a cluster: 'none' (a single node, the default),
   * 'etcd', or 'kubernetes' (a ConfigMap and Leases in clusterNamespace, the in-cluster default).
   */
  clusterStore?: ClusterStoreKind;
  /** etcd endpoints (URLs) for clusterStore 'etcd'. Default http://127.0.0.1:2379. */
  etcdEndpoints?: string[];
  /**
   * The cluster's name: its keys in the store live under /kmq/<name>/ (with clusterStore
   * 'kubernetes', in the ConfigMap that prefix names). Default "kmq".
   */
  clusterName?: string;
  /**
   * Namespace of the kubernetes store's ConfigMap and Leases. Default POD_NAMESPACE, else the
   * namespace of the pod's service account (/var/run/secrets/kubernetes.io/serviceaccount/namespace).
   */
  clusterNamespace?: string;
  /**
   * A kubeconfig file through which the kubernetes store reaches the API server, for a broker
   * outside a pod. Default KUBECONFIG (of a list, the first file); unset, the pod's service
   * account (in-cluster) is used.
   */
  kubeconfig?: string;
  /** TTL of the broker's lease in the store, ms: a dead broker's partitions get new leaders about this long after it died. Default 6000. */
  brokerLeaseMs?: number;
  /** A follower that has not caught up with its leader for this long leaves the in-sync set, ms. Default 10000. */
  replicaLagTimeMs?: number;
  /** Replication factor of topics created without one, in a cluster; 0 = min(3, live brokers). Default 0. */
  defaultReplicationFactor?: number;
  /** acks=all produce needs this many in-sync replicas (a topic may set its own; capped at its replication factor). Default 2. */
  minInSyncReplicas?: number;
  /** Partitions copying data for a reassignment at once, over the whole cluster (the controller's throttle). Default 8. */
  maxConcurrentReassignments?: number;
  /** A broker that joins holding no replica gets some: the controller proposes a rebalance. Default true. */
  autoRebalanceOnJoin?: boolean;
}

export type ClusterStoreKind = 'none' | 'etcd' | 'kubernetes' | 'local';

/** Compiled settings; kubeconfig is '' for the in-cluster service account, clusterNamespace '' without the kubernetes store. */
export type CompiledBrokerOptions = Required<BrokerOptions>;

/** Where a pod's service account namespace is mounted. */
export const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function intSetting(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new KmqError(ErrorCode.InvalidConfig, `${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

function envInt(name: EnvVar): number | undefined {
  const v = readEnv(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new KmqError(ErrorCode.InvalidConfig, `${name} must be an integer, got "${v}"`);
  return n;
}

function clusterStoreSetting(v: string): ClusterStoreKind {
  if (v !== 'none' && v !== 'etcd' && v !== 'kubernetes' && v !== 'local') throw new KmqError(ErrorCode.InvalidConfig, `clusterStore must be none, local, etcd or kubernetes, got "${v}"`);
  return v;
}

/** The ordinal of a StatefulSet pod's hostname (`<name>-<ordinal>`, maybe followed by a domain). */
export function ordinalOfHostname(hostname: string): number {
  const m = /-(0|[1-9][0-9]{0,8})$/.exec(hostname.split('.')[0]!);
  if (m === null) throw new KmqError(ErrorCode.InvalidConfig, `nodeIdFromHostname: the hostname "${hostname}" does not end in -<ordinal> as a StatefulSet pod's does`);
  return Number(m[1]);
}

function nodeIdSetting(o: BrokerOptions, hostname: () => string): number {
  if (!o.nodeIdFromHostname) return intSetting('nodeId', o.nodeId ?? 0, 0, 2 ** 31 - 1);
  if (o.nodeId !== undefined) throw new KmqError(ErrorCode.InvalidConfig, 'nodeId and nodeIdFromHostname exclude each other');
  return ordinalOfHostname(hostname());
}

function clusterNamespaceSetting(o: BrokerOptions, store: ClusterStoreKind, namespaceFile: string): string {
  if (store !== 'kubernetes') return o.clusterNamespace ?? '';
  let ns = o.clusterNamespace ?? readEnv(EnvVar.podNamespace);
  if (ns === undefined) {
    try {
      ns = fs.readFileSync(namespaceFile, 'utf8').trim();
    } catch {
      throw new KmqError(ErrorCode.InvalidConfig, `clusterNamespace: the kubernetes store needs a namespace (set it, or ${EnvVar.podNamespace}; ${namespaceFile} is not readable)`);
    }
  }
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns)) throw new KmqError(ErrorCode.InvalidConfig, `clusterNamespace must be a namespace name, got "${ns}"`);
  return ns;
}

/** What compileBrokerOptions reads of the machine; tests replace it. */
export interface BrokerHost {
  hostname(): string;
  serviceAccountNamespaceFile: string;
}

const realHost: BrokerHost = { hostname: () => os.hostname(), serviceAccountNamespaceFile: SERVICE_ACCOUNT_NAMESPACE_FILE };

function clusterNameSetting(v: string): string {
  if (!/^[a-zA-Z0-9._-]{1,100}$/.test(v)) throw new KmqError(ErrorCode.InvalidConfig, `clusterName must be 1-100 letters, digits, '.', '_' or '-', got "${v}"`);
  return v;
}

/** Applies defaults and validates every setting once; an invalid one stops start-up naming the setting. */
export function compileBrokerOptions(o: BrokerOptions = {}, machine: BrokerHost = realHost): CompiledBrokerOptions {
  const port = intSetting('port', o.port ?? envInt(EnvVar.port) ?? 9092, 0, 65535);
  const httpDefault = port === 0 ? 0 : port + 1;
  const httpPort = intSetting('httpPort', o.httpPort ?? envInt(EnvVar.httpPort) ?? httpDefault, -1, 65535);
  const host = o.host ?? '127.0.0.1';
  const flush = o.flush ?? 'every-batch';
  if (!['every-batch', 'interval', 'none'].includes(flush)) {
    throw new KmqError(ErrorCode.InvalidConfig, `flush must be every-batch, interval or none, got "${flush}"`);
  }
  const clusterStore = clusterStoreSetting(o.clusterStore ?? 'none');
  const c: CompiledBrokerOptions = {
    nodeId: nodeIdSetting(o, machine.hostname),
    nodeIdFromHostname: o.nodeIdFromHostname ?? false,
    host,
    port,
    advertisedHost: o.advertisedHost ?? (host === '0.0.0.0' || host === '::' ? os.hostname() : host),
    advertisedPort: intSetting('advertisedPort', o.advertisedPort ?? 0, 0, 65535),
    httpPort,
    dataDir: path.resolve(o.dataDir ?? readEnv(EnvVar.dataDir) ?? 'kmq-data'),
    maxMessageBytes: intSetting('maxMessageBytes', o.maxMessageBytes ?? 1024 * 1024, 64, 512 * 1024 * 1024),
    maxFrameBytes: intSetting('maxFrameBytes', o.maxFrameBytes ?? 64 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    defaultPartitions: intSetting('defaultPartitions', o.defaultPartitions ?? 1, 1, 10_000),
    retentionMs: intSetting('retentionMs', o.retentionMs ?? 7 * 86_400_000, -1),
    retentionBytes: intSetting('retentionBytes', o.retentionBytes ?? -1, -1),
    segmentBytes: intSetting('segmentBytes', o.segmentBytes ?? 128 * 1024 * 1024, 1024, 2 ** 31 - 1),
    segmentMs: intSetting('segmentMs', o.segmentMs ?? 7 * 86_400_000, 1),
    flush,
    flushIntervalMs: intSetting('flushIntervalMs', o.flushIntervalMs ?? 1000, 1),
    retentionCheckMs: intSetting('retentionCheckMs', o.retentionCheckMs ?? 30_000, 10),
    maxSessionTimeoutMs: intSetting('maxSessionTimeoutMs', o.maxSessionTimeoutMs ?? 1_800_000, 1),
    minSessionTimeoutMs: intSetting('minSessionTimeoutMs', o.minSessionTimeoutMs ?? 1000, 1),
    dedupeWindowMs: intSetting('dedupeWindowMs', o.dedupeWindowMs ?? 600_000, 0, 7 * 86_400_000),
    dedupeMaxKeys: intSetting('dedupeMaxKeys', o.dedupeMaxKeys ?? 1_000_000, 1, 100_000_000),
    clusterStore,
    etcdEndpoints: o.etcdEndpoints ?? ['http://127.0.0.1:2379'],
    clusterName: clusterNameSetting(o.clusterName ?? 'kmq'),
    clusterNamespace: clusterNamespaceSetting(o, clusterStore, machine.serviceAccountNamespaceFile),
    // KUBECONFIG may list several files; the store reads one.
    kubeconfig: o.kubeconfig ?? readEnv(EnvVar.kubeconfig)?.split(path.delimiter).find((f) => f !== '') ?? '',
    brokerLeaseMs: intSetting('brokerLeaseMs', o.brokerLeaseMs ?? 6000, 1000, 600_000),
    replicaLagTimeMs: intSetting('replicaLagTimeMs', o.replicaLagTimeMs ?? 10_000, 100, 3_600_000),
    defaultReplicationFactor: intSetting('defaultReplicationFactor', o.defaultReplicationFactor ?? 0, 0, 100),
    minInSyncReplicas: intSetting('minInSyncReplicas', o.minInSyncReplicas ?? 2, 1, 100),
    maxConcurrentReassignments: intSetting('maxConcurrentReassignments', o.maxConcurrentReassignments ?? 8, 1, 100_000),
    autoRebalanceOnJoin: o.autoRebalanceOnJoin ?? true,
  };
  if (c.clusterStore === 'etcd' && c.etcdEndpoints.length === 0) throw new KmqError(ErrorCode.InvalidConfig, 'etcdEndpoints must name at least one etcd URL');
  if (c.maxFrameBytes < c.maxMessageBytes + 1024) {
    throw new KmqError(ErrorCode.InvalidConfig, `maxFrameBytes (${c.maxFrameBytes}) must exceed maxMessageBytes (${c.maxMessageBytes}) by at least 1 KiB`);
  }
  return c;
}
