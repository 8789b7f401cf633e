import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import type { BrokerCluster } from '../api/v1alpha1/index.js';
import { brokerClusterNames, childMeta, selectorLabels } from './meta.js';

/** At most one broker down at a time through voluntary disruptions (drains, upgrades). */
export function buildPodDisruptionBudget(bc: BrokerCluster): V1PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: childMeta(bc, brokerClusterNames(bc).broker),
    spec: {
      maxUnavailable: 1,
      selector: { matchLabels: selectorLabels(bc) },
    },
  };
}
