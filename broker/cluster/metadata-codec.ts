import { ErrorCode, KmqError } from '../../lib/errors.js';
import { decodeJson } from './cluster-metadata.js';
import type { BrokerRegistration, ClusterTopic, ControllerRecord, DecommissionRecord, PartitionState } from './cluster-metadata.js';

/**
 * Decoders of the values in cluster-metadata.ts that check their shape, not
 * only their JSON: a value another version (or a broken writer) stored must be
 * refused here, never acted on. Each throws a StorageError naming the key.
 */

export function decodeBrokerRegistration(key: string, value: string): BrokerRegistration {
  const v = decodeJson<BrokerRegistration>(key, value);
  if (!isObject(v) || !isBrokerId(v.id) || typeof v.host !== 'string' || !isInt(v.port) || !isInt(v.httpPort) || typeof v.incarnation !== 'string') {
    throw malformed(key, 'a broker registration');
  }
  return v;
}

export function decodeControllerRecord(key: string, value: string): ControllerRecord {
  const v = decodeJson<ControllerRecord>(key, value);
  if (!isObject(v) || !isBrokerId(v.brokerId) || !isInt(v.epoch) || v.epoch < 1) throw malformed(key, 'a controller record');
  return v;
}

/** The controller epoch counter: a positive integer. */
export function decodeControllerEpoch(key: string, value: string): number {
  const v = decodeJson<unknown>(key, value);
  if (!isInt(v) || v < 0) throw malformed(key, 'a controller epoch');
  return v;
}

export function decodeClusterTopic(key: string, value: string): ClusterTopic {
  const v = decodeJson<ClusterTopic>(key, value);
  if (!isObject(v) || !isObject(v.topic) || typeof v.topic.name !== 'string' || !Array.isArray(v.partitions)) {
    throw malformed(key, 'a cluster topic');
  }
  v.partitions.forEach((p, i) => {
    if (!isPartitionState(p)) throw malformed(key, `a cluster topic (partition ${i})`);
  });
  return v;
}

export function decodeDecommissionRecord(key: string, value: string): DecommissionRecord {
  const v = decodeJson<DecommissionRecord>(key, value);
  if (!isObject(v) || !isBrokerId(v.brokerId) || typeof v.incarnation !== 'string' || !isInt(v.at)) throw malformed(key, 'a decommission record');
  return v;
}

/** `targetReplicas` is optional (values written before reassignment existed have none); when present it is a non-empty set of broker ids. */
function isPartitionState(p: unknown): p is PartitionState {
  if (!isObject(p)) return false;
  const s = p as Partial<PartitionState>;
  return (
    Array.isArray(s.replicas) &&
    s.replicas.every(isBrokerId) &&
    Array.isArray(s.isr) &&
    s.isr.every(isBrokerId) &&
    isInt(s.leader) &&
    s.leader >= -1 &&
    isInt(s.leaderEpoch) &&
    s.leaderEpoch >= 0 &&
    (s.targetReplicas === undefined || (Array.isArray(s.targetReplicas) && s.targetReplicas.length > 0 && s.targetReplicas.every(isBrokerId) && new Set(s.targetReplicas).size === s.targetReplicas.length))
  );
}

function isObject(v: unknown): v is Record<string, unknown> & object {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function isBrokerId(v: unknown): v is number {
  return isInt(v) && v >= 0;
}

function malformed(key: string, what: string): KmqError {
  return new KmqError(ErrorCode.StorageError, `Cluster metadata at ${key} is not ${what}`, { key });
}
