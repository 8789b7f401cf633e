import type { V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import type { BrokerCluster } from '../api/v1alpha1/index.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { API_VERSION } from '../api/v1alpha1/index.js';

/** The field manager of every object the operator applies. */
export const FIELD_MANAGER = 'kmq-operator';

/** The broker image when a BrokerCluster names none: the one released with this operator. */
export const DEFAULT_BROKER_IMAGE = 'ghcr.io/kmq-dev/kmq:0.1.0';

/** Ports and paths the broker pods serve (broker/options.ts: the HTTP port defaults to port + 1). */
export const BROKER_PORT = 9092;
export const BROKER_HTTP_PORT = 9093;
/** Where each broker's volume is mounted: its --data folder. */
export const BROKER_DATA_DIR = '/var/lib/kmq';

/** The image the brokers of a cluster run (status.image). */
export function brokerImage(bc: BrokerCluster): string {
  return bc.spec.image ?? DEFAULT_BROKER_IMAGE;
}

/** The names of a BrokerCluster's children; every one is derived from the cluster's name. */
export interface BrokerClusterNames {
  /** StatefulSet, headless Service, PodDisruptionBudget, ServiceAccount, Role, RoleBinding. */
  broker: string;
  /** The client Service: the bootstrap address. */
  client: string;
  /** The ConfigMap of broker settings. */
  config: string;
}

export function brokerClusterNames(bc: BrokerCluster): BrokerClusterNames {
  const name = requireString(bc.metadata.name, 'metadata.name');
  return { broker: `${name}-broker`, client: `${name}-client`, config: `${name}-broker-config` };
}

/** The address clients and sidecars connect to: `<name>-client.<namespace>.svc:9092`. */
export function bootstrapAddress(bc: BrokerCluster): string {
  return `${brokerClusterNames(bc).client}.${namespaceOf(bc)}.svc:${BROKER_PORT}`;
}

/** The labels that select a cluster's broker pods; fixed for the life of the StatefulSet. */
export function selectorLabels(bc: BrokerCluster): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'kmq',
    'app.kubernetes.io/instance': requireString(bc.metadata.name, 'metadata.name'),
    'app.kubernetes.io/component': 'broker',
  };
}

/** The labels of every child object and pod. */
export function brokerLabels(bc: BrokerCluster): Record<string, string> {
  return { ...selectorLabels(bc), 'app.kubernetes.io/managed-by': FIELD_MANAGER };
}

/** Makes the BrokerCluster the controller of a child, so garbage collection removes the child with it. */
export function ownerReference(bc: BrokerCluster): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: 'BrokerCluster',
    name: requireString(bc.metadata.name, 'metadata.name'),
    uid: requireString(bc.metadata.uid, 'metadata.uid'),
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The metadata of a child named `name`: namespace, labels and owner reference. */
export function childMeta(bc: BrokerCluster, name: string): V1ObjectMeta {
  return { name, namespace: namespaceOf(bc), labels: brokerLabels(bc), ownerReferences: [ownerReference(bc)] };
}

export function namespaceOf(bc: BrokerCluster): string {
  return requireString(bc.metadata.namespace, 'metadata.namespace');
}

function requireString(value: string | undefined, field: string): string {
  // A BrokerCluster read from the API server always has these; a missing one is a caller's bug.
  if (value === undefined || value === '') {
    throw new KmqError(ErrorCode.InvalidRequest, `BrokerCluster ${field} is required to build its objects`, { field }, { retriable: false });
  }
  return value;
}
