import { CustomObjectsApi } from '@kubernetes/client-node';
import type { KubeConfig, V1ResourceRequirements } from '@kubernetes/client-node';
import type { BrokerCluster, ContainerResources, DLQPolicy, Subscription } from '../api/v1alpha1/index.js';
import { GROUP, VERSION } from '../api/v1alpha1/meta.js';
import type { InjectionRequest, SidecarContext } from './inject.js';

/** The client port of a BrokerCluster's `<name>-client` Service. */
export const BROKER_CLIENT_PORT = 9092;

/** The sidecar's settings for a pod, or why the pod cannot get a sidecar (a message for its creator). */
export type Resolution = { ok: true; context: SidecarContext } | { ok: false; message: string };

/** Turns what a pod asks for into the sidecar's settings, from the namespace's kmq objects. */
export type SidecarResolver = (namespace: string, request: InjectionRequest, signal: AbortSignal) => Promise<Resolution>;

/** The client Service address of BrokerCluster `cluster` in `namespace`. */
export function brokerAddress(cluster: string, namespace: string): string {
  return `${cluster}-client.${namespace}.svc:${BROKER_CLIENT_PORT}`;
}

function drop<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}

/**
 * A Subscription (and its DLQPolicy) as the sidecar's SubscriptionConfig (sidecar/config.ts).
 * Broker-side names are `<namespace>.<name>`: the subscription (the consumer group the app
 * names in Consume), its topic or queue, and its dead-letter and retry topics.
 */
export function sidecarSubscription(namespace: string, sub: Subscription, dlq?: DLQPolicy): Record<string, unknown> {
  const s = sub.spec;
  const scoped = (name: string | undefined): string | undefined => (name === undefined ? undefined : `${namespace}.${name}`);
  const d = dlq?.spec;
  return drop({
    name: `${namespace}.${sub.metadata.name!}`,
    topic: scoped(s.topic),
    queue: scoped(s.queue),
    mode: s.mode,
    maxInFlight: s.maxInFlight,
    startFrom: s.startFrom,
    dlqPolicy: d === undefined ? undefined : drop({ maxAttempts: d.maxAttempts, backoff: d.backoff === undefined ? undefined : drop({ ...d.backoff }), handlerTimeoutMs: d.handlerTimeout }),
    deadLetterTopic: scoped(s.deadLetterTopic),
    retry: s.retry === undefined ? undefined : drop({ mode: s.retry.mode, topic: scoped(s.retry.topic) }),
    guarantee: s.guarantee,
    idempotencyKeyHeader: s.idempotency?.keyHeader,
    processedKeyTtlMs: s.idempotency?.processedKeyTtl,
    delivery: s.delivery,
    commit: s.commit === undefined ? undefined : drop({ maxCount: s.commit.maxCount, intervalMs: s.commit.interval }),
  });
}

/** Settings of the resolver that reads kmq objects through the API server. */
export interface KubeResolverOptions {
  /** The sidecar image when the BrokerCluster names none. */
  defaultImage: string;
  /** The kmq.dev/injected annotation's value: the operator's version. */
  version: string;
}

/** Quantities as strings, as core/v1 has them (the CRD also takes plain numbers). */
function quantities(r: ContainerResources): V1ResourceRequirements {
  const str = (m: Record<string, number | string> | undefined): Record<string, string> | undefined => (m === undefined ? undefined : Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)])));
  return drop({ requests: str(r.requests), limits: str(r.limits) });
}

function statusOf(err: unknown): number | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'number' ? c : undefined;
}

/**
 * A SidecarResolver that reads the namespace's BrokerClusters, and the Subscriptions and
 * DLQPolicies a pod names, from the API server. A missing object refuses the pod with a
 * message naming it; the pod's controller (a ReplicaSet...) retries, so the pod is created
 * once the object exists, whatever order they were applied in.
 */
export function kubeSidecarResolver(kubeConfig: KubeConfig, o: KubeResolverOptions): SidecarResolver {
  return sidecarResolver(kubeConfig.makeApiClient(CustomObjectsApi), o);
}

/** The calls of CustomObjectsApi the resolver makes. */
export type KmqObjectsApi = Pick<CustomObjectsApi, 'getNamespacedCustomObject' | 'listNamespacedCustomObject'>;

/** kubeSidecarResolver on a given API client. */
export function sidecarResolver(api: KmqObjectsApi, o: KubeResolverOptions): SidecarResolver {
  const get = async <T>(namespace: string, plural: string, name: string): Promise<T | undefined> => {
    try {
      return (await api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, name })) as T;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  };
  return async (namespace, request, signal) => {
    const subscriptions: Subscription[] = [];
    for (const name of request.subscriptions) {
      const sub = await get<Subscription>(namespace, 'subscriptions', name);
      if (sub === undefined) return { ok: false, message: `Subscription ${JSON.stringify(name)} (annotation kmq.dev/subscriptions) does not exist in namespace ${namespace}` };
      subscriptions.push(sub);
    }
    signal.throwIfAborted();
    const clusters = ((await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'brokerclusters' })) as { items: BrokerCluster[] }).items;
    const named = [...new Set(subscriptions.map((s) => s.spec.brokerCluster).filter((c): c is string => c !== undefined))];
    let cluster: BrokerCluster | undefined;
    if (named.length > 1) return { ok: false, message: `the subscriptions of the pod are on different BrokerClusters (${named.join(', ')}); a sidecar serves one` };
    if (named.length === 1) {
      cluster = clusters.find((c) => c.metadata.name === named[0]);
      if (cluster === undefined) return { ok: false, message: `BrokerCluster ${JSON.stringify(named[0])} does not exist in namespace ${namespace}` };
    } else if (clusters.length === 1) {
      cluster = clusters[0];
    } else {
      return { ok: false, message: clusters.length === 0 ? `namespace ${namespace} has no BrokerCluster` : `namespace ${namespace} has several BrokerClusters; name one in the pod's Subscriptions (spec.brokerCluster)` };
    }
    const configs: Record<string, unknown>[] = [];
    for (const sub of subscriptions) {
      let dlq: DLQPolicy | undefined;
      if (sub.spec.dlqPolicy !== undefined) {
        dlq = await get<DLQPolicy>(namespace, 'dlqpolicies', sub.spec.dlqPolicy);
        if (dlq === undefined) return { ok: false, message: `DLQPolicy ${JSON.stringify(sub.spec.dlqPolicy)} of Subscription ${sub.metadata.name!} does not exist in namespace ${namespace}` };
      }
      if (sub.spec.delivery?.push !== undefined && sub.spec.delivery.push.port === undefined && request.appPort === undefined) {
        return { ok: false, message: `Subscription ${sub.metadata.name!} pushes to the app: set the annotation kmq.dev/app-port (or spec.delivery.push.port)` };
      }
      configs.push(sidecarSubscription(namespace, sub, dlq));
    }
    const spec = cluster!.spec ?? {};
    const context: SidecarContext = {
      namespace,
      brokerAddress: brokerAddress(cluster!.metadata.name!, namespace),
      image: spec.sidecar?.image ?? o.defaultImage,
      subscriptions: configs,
      version: o.version,
    };
    if (spec.imagePullPolicy !== undefined) context.imagePullPolicy = spec.imagePullPolicy;
    if (spec.sidecar?.resources !== undefined) context.resources = quantities(spec.sidecar.resources);
    if (request.appPort !== undefined) context.appPort = request.appPort;
    return { ok: true, context };
  };
}
