import type { V1PolicyRule, V1Role } from '@kubernetes/client-node';
import type { BrokerCluster } from '../api/v1alpha1/index.js';
import { brokerClusterNames, childMeta } from './meta.js';

/**
 * What a broker may do in its namespace, and nothing more: Leases for the coordination
 * store (controller election among the brokers). No list or watch, no wildcards.
 */
export const BROKER_RULES: readonly V1PolicyRule[] = [
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create', 'get', 'update'] },
];

export function buildRole(bc: BrokerCluster): V1Role {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: childMeta(bc, brokerClusterNames(bc).broker),
    rules: BROKER_RULES.map((r) => ({ apiGroups: [...r.apiGroups!], resources: [...r.resources!], verbs: [...r.verbs] })),
  };
}
