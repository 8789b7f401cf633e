import type { KubeConfig } from '@kubernetes/client-node';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../../api/v1alpha1/index.js';
import type { KmqResource } from '../../api/v1alpha1/index.js';
import { apiError, ApiErrorReason } from '../../apply.js';

/** One JSON patch (RFC 6902) operation. */
export interface JsonPatchOp {
  op: 'add' | 'remove' | 'replace' | 'test';
  path: string;
  value?: unknown;
}

/** A kmq object of any kind, as the API serves it. */
export type AnyKmqObject = KmqResource<string, unknown, unknown>;

/**
 * The Kubernetes calls the broker-backed controllers make besides reading their caches:
 * JSON patches of an object and of its status subresource, and whether a namespace is
 * going away. An interface so that unit tests can record the calls.
 */
export interface KmqObjectClient {
  /** JSON-patches the object's main resource (metadata, spec). */
  patch(plural: string, obj: AnyKmqObject, ops: JsonPatchOp[]): Promise<void>;
  /** JSON-patches the object's status subresource. */
  patchStatus(plural: string, obj: AnyKmqObject, ops: JsonPatchOp[]): Promise<void>;
  /** True when the namespace has a deletionTimestamp, is Terminating, or no longer exists. */
  namespaceTerminating(namespace: string): Promise<boolean>;
}

/** The KmqObjectClient of a real API server. */
export function kmqObjectClient(kubeConfig: KubeConfig): KmqObjectClient {
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const target = (plural: string, obj: AnyKmqObject) => ({
    group: GROUP,
    version: VERSION,
    plural,
    namespace: obj.metadata.namespace ?? '',
    name: obj.metadata.name ?? '',
  });
  return {
    async patch(plural, obj, ops) {
      try {
        await custom.patchNamespacedCustomObject({ ...target(plural, obj), body: ops });
      } catch (err) {
        throw apiError(err, 'patch', obj);
      }
    },
    async patchStatus(plural, obj, ops) {
      try {
        await custom.patchNamespacedCustomObjectStatus({ ...target(plural, obj), body: ops });
      } catch (err) {
        throw apiError(err, 'patch status of', obj);
      }
    },
    async namespaceTerminating(namespace) {
      try {
        const ns = await core.readNamespace({ name: namespace });
        return ns.metadata?.deletionTimestamp != null || ns.status?.phase === 'Terminating';
      } catch (err) {
        const e = apiError(err, 'read', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
        if (e.context.reason === ApiErrorReason.NotFound) return true;
        throw e;
      }
    },
  };
}
