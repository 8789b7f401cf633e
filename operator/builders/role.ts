import type { V1PolicyRule, V1Role } from '@kubernetes/client-node';
import type { BrokerCluster } from '../api/v1alpha1/index.js';
import { brokerClusterNames, childMeta } from './meta.js';

/**
 * What a broker may do in its namespace, and nothing more: what the kubernetes
 * coordination store needs (its ConfigMap of cluster metadata and the Leases of brokers
 * and controller), as KUBERNETES_COORDINATION_STORE_RBAC_RULES in
 * broker/cluster/kubernetes-coordination-store.ts lists them; a test keeps the two equal
 * (operator/ does not import broker/). No wildcards, no resourceNames: the store's
 * Leases have random names, and create cannot be limited by name.
 */
export const BROKER_RULES: readonly V1PolicyRule[] = [
  { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create', 'update'] },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'create', 'update', 'delete'] },
];

export function buildRole(bc: BrokerCluster): V1Role {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: childMeta(bc, brokerClusterNames(bc).broker),
    rules: BROKER_RULES.map((r) => ({ apiGroups: [...r.apiGroups!], resources: [...r.resources!], verbs: [...r.verbs] })),
  };
}
