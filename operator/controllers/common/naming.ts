import type { KubernetesObject } from '@kubernetes/client-node';
import { ErrorCode, KmqError } from '../../../lib/errors.js';

/**
 * The broker-side name of a namespaced kmq object: `<namespace>.<name>`. Kubernetes names
 * carry no `_` and namespaces no `.`, so the mapping is one-to-one and two namespaces never
 * share a broker object by accident.
 */
export function brokerSideName(namespace: string, name: string): string {
  return `${namespace}.${name}`;
}

/** The broker-side name of `obj` (see brokerSideName). */
export function brokerSideNameOf(obj: KubernetesObject): string {
  const namespace = obj.metadata?.namespace;
  const name = obj.metadata?.name;
  if (namespace === undefined || name === undefined) {
    throw new KmqError(ErrorCode.InvalidRequest, `${obj.kind ?? 'object'} without metadata.namespace or metadata.name`, {}, { retriable: false });
  }
  return brokerSideName(namespace, name);
}
