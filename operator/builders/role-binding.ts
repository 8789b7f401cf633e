import type { V1RoleBinding } from '@kubernetes/client-node';
import type { BrokerCluster } from '../api/v1alpha1/index.js';
import { brokerClusterNames, childMeta, namespaceOf } from './meta.js';

/** Binds the brokers' Role to their ServiceAccount. */
export function buildRoleBinding(bc: BrokerCluster): V1RoleBinding {
  const name = brokerClusterNames(bc).broker;
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: childMeta(bc, name),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name, namespace: namespaceOf(bc) }],
  };
}
