import { AppsV1Api, CoreV1Api, CustomObjectsApi, KubernetesObjectApi, PolicyV1Api } from '@kubernetes/client-node';
import type { KubeConfig, KubernetesObject, V1StatefulSet } from '@kubernetes/client-node';
import { silentLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
import { API_VERSION, GROUP, VERSION } from '../api/v1alpha1/index.js';
import type { BrokerCluster, BrokerClusterStatus } from '../api/v1alpha1/index.js';
import { applyObject, apiError } from '../apply.js';
import type { ObjectClient } from '../apply.js';
import { buildBrokerClusterObjects } from '../builders/broker-cluster.js';
import { DEFAULT_BROKER_IMAGE, FIELD_MANAGER, bootstrapAddress } from '../builders/meta.js';
import { Controller, TerminalError, ownerKey } from '../runtime/controller.js';
import type { ReconcileResult, Reconciler } from '../runtime/controller.js';
import type { OperatorProbe } from '../probe.js';
import type { Informer } from '../runtime/informer.js';
import { apiListWatch, customObjectListWatch } from '../runtime/list-watch.js';
import type { Manager } from '../runtime/manager.js';
import { ConditionType, markDegraded, reasonOf, removeCondition, sameConditions, setCondition } from '../status.js';

/** Condition reasons of a BrokerCluster (besides the API error reasons of operator/apply.ts). */
export const BrokerClusterReason = {
  /** Every broker of the StatefulSet is ready and runs the current revision. */
  BrokersReady: 'BrokersReady',
  /** The StatefulSet is applied; some brokers are starting, rolling or failing (the pods say which). */
  BrokersNotReady: 'BrokersNotReady',
  /** The spec cannot be turned into objects (a builder refused it). */
  InvalidSpec: 'InvalidSpec',
} as const;

/** The label every child carries: the operator's informers select on it, so they cache only its own objects. */
export const MANAGED_BY_SELECTOR = `app.kubernetes.io/managed-by=${FIELD_MANAGER},app.kubernetes.io/component=broker`;

/** What the BrokerCluster reconciler reads and writes through. */
export interface BrokerClusterReconcilerOptions {
  /** The BrokerClusters, as the informer caches them. */
  brokerClusters: Pick<Informer<BrokerCluster>, 'get'>;
  /** Applies the children (server-side apply, field manager kmq-operator). */
  objects: ObjectClient;
  /** Writes `.status` of a BrokerCluster. */
  writeStatus: (bc: BrokerCluster, status: BrokerClusterStatus) => Promise<void>;
  /** Filled into a spec that names no image or pull policy. Default: the builders' own. */
  defaults?: BrokerClusterDefaults;
  now?: () => Date;
  logger?: Logger;
}

/**
 * BrokerCluster → ServiceAccount, Role, RoleBinding, ConfigMap, headless and client
 * Services, StatefulSet and PodDisruptionBudget, each applied server-side on every pass:
 * a hand edit of a field the operator sets is undone, a deleted child is recreated, and a
 * pass with nothing to change stores nothing. Children carry a controller owner reference,
 * so deleting the BrokerCluster removes them by garbage collection — no finalizer, nothing
 * to hang a namespace deletion. Volumes (PVCs of the volume claim templates) are retained.
 */
export class BrokerClusterReconciler {
  private readonly log: Logger;
  private readonly now: () => Date;

  constructor(private readonly options: BrokerClusterReconcilerOptions) {
    this.log = (options.logger ?? silentLogger()).child({ kind: 'BrokerCluster' });
    this.now = options.now ?? (() => new Date());
  }

  async reconcile(key: string, signal?: AbortSignal): Promise<ReconcileResult | void> {
    const bc = this.options.brokerClusters.get(key);
    // Gone: its children go by garbage collection.
    if (bc === undefined || bc.metadata.deletionTimestamp !== undefined) return;
    const generation = bc.metadata.generation;

    let desired: KubernetesObject[];
    try {
      desired = buildBrokerClusterObjects(withDefaults(bc, this.options.defaults));
    } catch (err) {
      await this.degrade(bc, BrokerClusterReason.InvalidSpec, err);
      throw new TerminalError(`BrokerCluster ${key}: ${(err as Error).message}`, { reason: BrokerClusterReason.InvalidSpec }, { cause: err });
    }

    let statefulSet: V1StatefulSet | undefined;
    for (const object of desired) {
      if (signal?.aborted) return;
      try {
        const { object: stored, created, changed } = await applyObject(this.options.objects, object);
        if (created) this.log.info({ key, child: `${object.kind}/${object.metadata?.name}` }, 'Child created');
        else if (changed) this.log.info({ key, child: `${object.kind}/${object.metadata?.name}` }, 'Child updated');
        if (object.kind === 'StatefulSet') statefulSet = stored as V1StatefulSet;
      } catch (err) {
        const e = apiError(err, 'apply', object);
        await this.degrade(bc, reasonOf(e), e);
        throw e;
      }
    }

    const status = brokerClusterStatus(withDefaults(bc, this.options.defaults), statefulSet, this.now());
    if (!sameStatus(bc.status, status)) await this.options.writeStatus(bc, status);
    this.log.debug({ key, generation, readyReplicas: status.readyReplicas }, 'Reconciled');
  }

  private async degrade(bc: BrokerCluster, reason: string, err: unknown): Promise<void> {
    const message = err instanceof Error ? err.message : String(err);
    const status: BrokerClusterStatus = {
      ...bc.status,
      observedGeneration: bc.metadata.generation,
      conditions: markDegraded(bc.status?.conditions, reason, message, bc.metadata.generation, this.now()),
    };
    if (sameStatus(bc.status, status)) return;
    try {
      await this.options.writeStatus(bc, status);
    } catch (writeErr) {
      this.log.warn({ err: writeErr, name: bc.metadata.name, namespace: bc.metadata.namespace }, 'Status write failed');
    }
  }
}

/** What the operator's flags fill into a BrokerCluster's spec when it names none. */
export interface BrokerClusterDefaults {
  /** `--broker-image`. */
  image?: string;
  /** `--image-pull-policy` (the CRD defaults the field, so this applies to objects stored without it). */
  imagePullPolicy?: NonNullable<BrokerCluster['spec']['imagePullPolicy']>;
}

/** `bc` with the operator's defaults filled into its spec (the objects are built from this copy; the stored spec is left alone). */
export function withDefaults(bc: BrokerCluster, defaults: BrokerClusterDefaults | undefined): BrokerCluster {
  const image = bc.spec.image ?? defaults?.image;
  const imagePullPolicy = bc.spec.imagePullPolicy ?? defaults?.imagePullPolicy;
  if (image === bc.spec.image && imagePullPolicy === bc.spec.imagePullPolicy) return bc;
  return { ...bc, spec: { ...bc.spec, ...(image === undefined ? {} : { image }), ...(imagePullPolicy === undefined ? {} : { imagePullPolicy }) } };
}

/**
 * The status of `bc` given its applied StatefulSet: Ready when every desired broker is
 * ready on the StatefulSet's current generation; otherwise Ready=False (BrokersNotReady),
 * which is not Degraded — brokers starting or rolling are progress, and the pods carry the
 * reasons of a broker that fails. Degraded is for what the operator itself cannot do.
 */
export function brokerClusterStatus(bc: BrokerCluster, statefulSet: V1StatefulSet | undefined, now: Date): BrokerClusterStatus {
  const generation = bc.metadata.generation;
  const desired = bc.spec.replicas ?? 1;
  const replicas = statefulSet?.status?.replicas ?? 0;
  const readyReplicas = statefulSet?.status?.readyReplicas ?? 0;
  const updatedReplicas = statefulSet?.status?.updatedReplicas ?? 0;
  const stsGeneration = statefulSet?.metadata?.generation;
  const observed = statefulSet?.status?.observedGeneration;
  const current = stsGeneration !== undefined && observed !== undefined && observed >= stsGeneration;
  const ready = current && readyReplicas >= desired && updatedReplicas >= desired && replicas === desired;

  let conditions = removeCondition(bc.status?.conditions, ConditionType.Degraded);
  conditions = ready
    ? setCondition(conditions, { type: ConditionType.Ready, status: 'True', reason: BrokerClusterReason.BrokersReady, message: `${readyReplicas}/${desired} brokers ready` }, generation, now)
    : setCondition(
        conditions,
        {
          type: ConditionType.Ready,
          status: 'False',
          reason: BrokerClusterReason.BrokersNotReady,
          message: current ? `${readyReplicas}/${desired} brokers ready, ${updatedReplicas}/${desired} updated` : `${readyReplicas}/${desired} brokers ready, StatefulSet rollout pending`,
        },
        generation,
        now,
      );
  return {
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    conditions,
    replicas,
    readyReplicas,
    bootstrap: bootstrapAddress(bc),
    image: bc.spec.image ?? DEFAULT_BROKER_IMAGE,
  };
}

/** True when writing `next` would change nothing (a pass with nothing new writes no status). */
export function sameStatus(current: BrokerClusterStatus | undefined, next: BrokerClusterStatus): boolean {
  if (current === undefined) return false;
  return (
    current.observedGeneration === next.observedGeneration &&
    current.replicas === next.replicas &&
    current.readyReplicas === next.readyReplicas &&
    current.bootstrap === next.bootstrap &&
    current.image === next.image &&
    sameConditions(current.conditions, next.conditions)
  );
}

/** Where a BrokerCluster controller runs. */
export interface BrokerClusterControllerOptions {
  kubeConfig: KubeConfig;
  manager: Manager;
  /** Watch one namespace; default every namespace. */
  namespace?: string;
  workers?: number;
  /** Filled into a spec that names no image or pull policy. */
  defaults?: BrokerClusterDefaults;
  /** Observes reconcile durations. */
  probe?: OperatorProbe;
  logger?: Logger;
}

/**
 * The BrokerCluster controller on `manager`'s shared informers: BrokerClusters, and the
 * StatefulSets, Services, ConfigMaps and PodDisruptionBudgets they own (selected by the
 * operator's labels), so a child edited or deleted by hand is repaired at once. The
 * ServiceAccount, Role and RoleBinding are repaired by the periodic resync.
 */
export function brokerClusterController(options: BrokerClusterControllerOptions): Controller {
  const { kubeConfig, manager, namespace } = options;
  const logger = options.logger ?? silentLogger();
  const brokerClusters = manager.informer(customObjectListWatch<BrokerCluster>(kubeConfig, { group: GROUP, version: VERSION, plural: 'brokerclusters', namespace }));
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const policy = kubeConfig.makeApiClient(PolicyV1Api);
  const labelSelector = MANAGED_BY_SELECTOR;
  const path = (group: string, plural: string): string => (namespace === undefined ? `${group}/${plural}` : `${group}/namespaces/${namespace}/${plural}`);
  const statefulSets = manager.informer(
    apiListWatch<V1StatefulSet>(kubeConfig, {
      path: path('/apis/apps/v1', 'statefulsets'),
      labelSelector,
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      list: () => (namespace === undefined ? apps.listStatefulSetForAllNamespaces({ labelSelector }) : apps.listNamespacedStatefulSet({ namespace, labelSelector })),
    }),
  );
  const services = manager.informer(
    apiListWatch(kubeConfig, {
      path: path('/api/v1', 'services'),
      labelSelector,
      apiVersion: 'v1',
      kind: 'Service',
      list: () => (namespace === undefined ? core.listServiceForAllNamespaces({ labelSelector }) : core.listNamespacedService({ namespace, labelSelector })),
    }),
  );
  const configMaps = manager.informer(
    apiListWatch(kubeConfig, {
      path: path('/api/v1', 'configmaps'),
      labelSelector,
      apiVersion: 'v1',
      kind: 'ConfigMap',
      list: () => (namespace === undefined ? core.listConfigMapForAllNamespaces({ labelSelector }) : core.listNamespacedConfigMap({ namespace, labelSelector })),
    }),
  );
  const budgets = manager.informer(
    apiListWatch(kubeConfig, {
      path: path('/apis/policy/v1', 'poddisruptionbudgets'),
      labelSelector,
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      list: () =>
        namespace === undefined ? policy.listPodDisruptionBudgetForAllNamespaces({ labelSelector }) : policy.listNamespacedPodDisruptionBudget({ namespace, labelSelector }),
    }),
  );
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const reconciler = new BrokerClusterReconciler({
    brokerClusters,
    objects: KubernetesObjectApi.makeApiClient(kubeConfig),
    writeStatus: (bc, status) => writeBrokerClusterStatus(custom, bc, status),
    ...(options.defaults === undefined ? {} : { defaults: options.defaults }),
    logger,
  });
  const reconcile: Reconciler = (key, signal) => reconciler.reconcile(key, signal);
  const owned = ownerKey<KubernetesObject>('BrokerCluster', API_VERSION);
  return new Controller({
    name: 'broker-cluster',
    workers: options.workers ?? 2,
    // Children the informers do not watch (ServiceAccount, Role, RoleBinding) are repaired at least this often.
    resyncMs: 10 * 60_000,
    reconcile: options.probe ? options.probe.timed('broker-cluster', reconcile) : reconcile,
    logger,
  })
    .watch(brokerClusters)
    .watch(statefulSets, owned)
    .watch(services, owned)
    .watch(configMaps, owned)
    .watch(budgets, owned);
}

/** Replaces `.status` of the BrokerCluster through its status subresource. */
async function writeBrokerClusterStatus(custom: CustomObjectsApi, bc: BrokerCluster, status: BrokerClusterStatus): Promise<void> {
  const namespace = bc.metadata.namespace ?? '';
  const name = bc.metadata.name ?? '';
  try {
    await custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural: 'brokerclusters', name, body: [{ op: 'add', path: '/status', value: status }] });
  } catch (err) {
    throw apiError(err, 'patch status of', bc);
  }
}
