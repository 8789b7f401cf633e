import type { KubernetesObject } from '@kubernetes/client-node';
import type { BrokerCluster } from '../api/v1alpha1/index.js';
import { buildConfigMap } from './config-map.js';
import { buildPodDisruptionBudget } from './pod-disruption-budget.js';
import { buildRoleBinding } from './role-binding.js';
import { buildRole } from './role.js';
import { buildServiceAccount } from './service-account.js';
import { buildClientService, buildHeadlessService } from './service.js';
import { buildStatefulSet } from './stateful-set.js';

/**
 * Every object a BrokerCluster owns, in the order to apply them: identity and
 * permissions, settings and Services before the pods that use them.
 */
export function buildBrokerClusterObjects(bc: BrokerCluster): KubernetesObject[] {
  return [
    buildServiceAccount(bc),
    buildRole(bc),
    buildRoleBinding(bc),
    buildConfigMap(bc),
    buildHeadlessService(bc),
    buildClientService(bc),
    buildStatefulSet(bc),
    buildPodDisruptionBudget(bc),
  ];
}
