import type { V1ObjectMeta } from '@kubernetes/client-node';

/** The API group of every kmq custom resource. */
export const GROUP = 'kmq.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
/** `kubectl get kmq` lists every kind. */
export const CATEGORY = 'kmq';

/** A kmq custom resource as the API server returns it. */
export interface KmqResource<Kind extends string, Spec, Status> {
  apiVersion: typeof API_VERSION;
  kind: Kind;
  metadata: V1ObjectMeta;
  spec: Spec;
  status?: Status;
}

/** metav1.Condition. */
export interface Condition {
  /** `Ready` or `Degraded`. */
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  /** RFC 3339. */
  lastTransitionTime: string;
  /** CamelCase, stable for programs. */
  reason: string;
  message: string;
}

/** The status fields every kind has. */
export interface CommonStatus {
  /** The metadata.generation this status describes. */
  observedGeneration?: number;
  conditions?: Condition[];
}

/** What happens to the broker-side object when its resource is deleted. */
export const DELETION_POLICIES = ['Retain', 'Delete', 'DeleteIfEmpty'] as const;

/**
 * What deleting a resource does to its broker-side object. `Retain` (the default)
 * never destroys messages; `DeleteIfEmpty` deletes only an object that holds none.
 */
export type DeletionPolicy = (typeof DELETION_POLICIES)[number];

/** The fields every spec but BrokerCluster's has. */
export interface ClusterScopedSpec {
  /** The BrokerCluster of the same namespace. Default: the namespace's only one. */
  brokerCluster?: string;
  /** Default Retain. */
  deletionPolicy?: DeletionPolicy;
}

/** Retention of a log: by age and by size per partition. */
export interface Retention {
  /** A duration ("7d", "12h") or "unlimited". Default: the broker's (7 days). */
  time?: string;
  /** Bytes per partition, a quantity ("20Gi") or "unlimited". Default: the broker's (unlimited). */
  bytes?: number | string;
}
