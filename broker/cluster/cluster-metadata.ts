import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { TopicRecord } from './metadata-store.js';

/**
 * Cluster metadata as it lives in the coordination store (DESIGN.md §4
 * "Cluster"). Every value is JSON; every change is a compare-and-swap on the
 * key's version, so concurrent writers (the controller, partition leaders,
 * brokers creating topics) never overwrite each other blindly.
 *
 * Keys, relative to the cluster's prefix:
 * - `brokers/<id>`    BrokerRegistration, bound to the broker's lease.
 * - `controller`      ControllerRecord, bound to the controller's lease.
 * - `controller-epoch` the last controller epoch handed out (a counter, CAS).
 * - `decommissioned/<id>` DecommissionRecord: keeps replicas off a broker on its way out.
 * - `topics/<name>`   ClusterTopic: the topic's settings and every partition's
 *                     state. One key per topic, so a topic appears with its whole
 *                     assignment at once; writers of different partitions of one
 *                     topic retry on a version conflict.
 *
 * Who writes what:
 * - a broker creating or deleting a topic writes `topics/<name>` (create: `ifVersion: 'absent'`);
 * - the controller changes `leader` and `leaderEpoch` (always bumping the epoch)
 *   and removes brokers that are gone from `isr`;
 * - rebalance and decommission write `targetReplicas` only (the controller carries
 *   a reassignment out: `replicas`, `isr`, `leader`);
 * - a partition's leader changes `isr` only (shrink on lag, expand on catch-up), and
 *   only while the stored state still names it leader at its epoch.
 * - Leaders are only ever chosen from `isr`; when no member of `isr` is alive the
 *   partition has no leader (`leader: -1`) and `isr` keeps its last members, so
 *   that one of them becomes leader when it returns (no unclean election).
 */

/** The key prefix of broker registrations. */
export const BROKERS_PREFIX = 'brokers/';
/** The key of the controller record. */
export const CONTROLLER_KEY = 'controller';
/** The key of the controller-epoch counter. */
export const CONTROLLER_EPOCH_KEY = 'controller-epoch';
/** The key prefix of topics. */
export const TOPICS_PREFIX = 'topics/';
/** The key prefix of decommission records. */
export const DECOMMISSIONED_PREFIX = 'decommissioned/';

export function brokerKey(id: number): string {
  return `${BROKERS_PREFIX}${id}`;
}

export function topicKey(name: string): string {
  return `${TOPICS_PREFIX}${name}`;
}

export function decommissionedKey(id: number): string {
  return `${DECOMMISSIONED_PREFIX}${id}`;
}

/** A live broker, as it registers itself (key bound to its lease). */
export interface BrokerRegistration {
  id: number;
  /** Where clients and other brokers reach its protocol listener. */
  host: string;
  port: number;
  /** Its HTTP (health, metrics) port; -1 when it has none. */
  httpPort: number;
  /** A fresh id per process start: tells a restarted broker from one that stayed. */
  incarnation: string;
}

/** The elected controller. */
export interface ControllerRecord {
  brokerId: number;
  /** Grows with every election; writes carry it so a deposed controller's late writes are recognisable. */
  epoch: number;
}

/**
 * A broker being decommissioned: no replica is placed on it while it runs as
 * `incarnation` (empty when it was not live at the time). A restarted broker
 * (another incarnation) takes replicas again.
 */
export interface DecommissionRecord {
  brokerId: number;
  incarnation: string;
  at: number;
}

/** The replication state of one partition. */
export interface PartitionState {
  /**
   * Broker ids holding a copy, in preference order (the first is the preferred
   * leader). While a reassignment runs it is the union of the old and the target set.
   */
  replicas: number[];
  /** The leader's broker id, or -1 when the partition has no leader. */
  leader: number;
  /** Grows with every leader change; stamped into the batches the leader appends. */
  leaderEpoch: number;
  /** The in-sync replicas (the leader included): those with every acknowledged record. */
  isr: number[];
  /**
   * A reassignment in progress: the replica set the partition moves to (absent
   * when none). Written by rebalance and decommission; the controller adds the
   * target's brokers to `replicas`, waits until all of them are in `isr`, then
   * makes `replicas` the target and removes this field (reassignment.ts).
   */
  targetReplicas?: number[];
}

/** A topic in the cluster: its record (as single-node brokers keep it) and its partitions' state. */
export interface ClusterTopic {
  topic: TopicRecord;
  /** partitions[i] is partition i. */
  partitions: PartitionState[];
}

export function encodeJson(value: BrokerRegistration | ControllerRecord | ClusterTopic | DecommissionRecord): string {
  return JSON.stringify(value);
}

/** Parses a stored value; a value that does not parse is a store fault, never silently ignored. */
export function decodeJson<T>(key: string, value: string): T {
  try {
    return JSON.parse(value) as T;
  } catch (err) {
    throw new KmqError(ErrorCode.StorageError, `Cluster metadata at ${key} is not valid JSON: ${(err as Error).message}`, { key }, { cause: err });
  }
}
