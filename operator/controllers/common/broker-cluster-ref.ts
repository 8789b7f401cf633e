import type { BrokerCluster, ClusterScopedSpec, KmqResource } from '../../api/v1alpha1/index.js';

/** A BrokerCluster by namespace and name. */
export interface BrokerClusterRef {
  namespace: string;
  name: string;
}

/** The condition reasons of a BrokerCluster that cannot be resolved (operator/api/README.md). */
export const BrokerClusterReason = {
  NotFound: 'BrokerClusterNotFound',
  Ambiguous: 'BrokerClusterAmbiguous',
} as const;
export type BrokerClusterReason = (typeof BrokerClusterReason)[keyof typeof BrokerClusterReason];

/** What resolving gives: the BrokerCluster, or why there is none to use. */
export type BrokerClusterResolution =
  | { ok: true; ref: BrokerClusterRef; cluster: BrokerCluster }
  | { ok: false; reason: BrokerClusterReason; message: string };

/** The part of an informer cache that resolving reads. */
export interface BrokerClusterCache {
  get(key: string): BrokerCluster | undefined;
  list(namespace?: string): BrokerCluster[];
}

/**
 * The BrokerCluster an object belongs to: `spec.brokerCluster` when set, else the
 * namespace's only one. A BrokerCluster being deleted still counts: its objects are
 * cleaned up while it goes.
 */
export function resolveBrokerCluster(obj: KmqResource<string, ClusterScopedSpec, unknown>, cache: BrokerClusterCache): BrokerClusterResolution {
  const namespace = obj.metadata.namespace ?? '';
  const named = obj.spec?.brokerCluster;
  if (named !== undefined && named !== '') {
    const cluster = cache.get(`${namespace}/${named}`);
    if (cluster === undefined) {
      return { ok: false, reason: BrokerClusterReason.NotFound, message: `BrokerCluster ${named} does not exist in namespace ${namespace}` };
    }
    return { ok: true, ref: { namespace, name: named }, cluster };
  }
  const candidates = cache.list(namespace);
  if (candidates.length === 0) {
    return { ok: false, reason: BrokerClusterReason.NotFound, message: `No BrokerCluster in namespace ${namespace}; create one or set spec.brokerCluster` };
  }
  if (candidates.length > 1) {
    const names = candidates.map((c) => c.metadata.name ?? '').sort();
    return { ok: false, reason: BrokerClusterReason.Ambiguous, message: `Namespace ${namespace} has ${candidates.length} BrokerClusters (${names.join(', ')}); set spec.brokerCluster` };
  }
  const cluster = candidates[0]!;
  return { ok: true, ref: { namespace, name: cluster.metadata.name ?? '' }, cluster };
}
