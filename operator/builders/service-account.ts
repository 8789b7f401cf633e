import type { V1ServiceAccount } from '@kubernetes/client-node';
import type { BrokerCluster } from '../api/v1alpha1/index.js';
import { brokerClusterNames, childMeta } from './meta.js';

/** The identity of a cluster's broker pods; the Role of role.ts is bound to it. */
export function buildServiceAccount(bc: BrokerCluster): V1ServiceAccount {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: childMeta(bc, brokerClusterNames(bc).broker),
  };
}
