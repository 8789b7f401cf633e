import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { silentLogger } from '../../../lib/logger.js';
import type { Logger } from '../../../lib/logger.js';
import { GROUP, VERSION } from '../../api/v1alpha1/index.js';
import type { BrokerCluster } from '../../api/v1alpha1/index.js';
import type { Reconciler } from '../../runtime/controller.js';
import type { Informer } from '../../runtime/informer.js';
import { customObjectListWatch } from '../../runtime/list-watch.js';
import type { Manager } from '../../runtime/manager.js';
import type { RateLimiterOptions } from '../../runtime/rate-limiter.js';
import { BrokerClientPool } from './broker-clients.js';
import type { BrokerAddressResolver } from './broker-clients.js';
import type { BrokerObjectReconcilerOptions, BrokerBackedObject } from './broker-object-reconciler.js';
import { kmqObjectClient } from './kube.js';

/** Wraps a reconciler to time it (the operator's metrics probe). */
export interface ReconcileTimer {
  timed(controller: string, reconcile: Reconciler): Reconciler;
}

/** Where a broker-backed controller (Topic, Queue, Exchange) runs. */
export interface BrokerControllerOptions {
  kubeConfig: KubeConfig;
  manager: Manager;
  /** The broker clients, shared by the broker-backed controllers. */
  clients?: BrokerClientPool;
  /** Used when no pool is given: how a BrokerCluster's brokers are reached. */
  resolveAddress?: BrokerAddressResolver;
  /** Watch one namespace only. Default: every namespace. */
  namespace?: string;
  kube?: BrokerObjectReconcilerOptions<BrokerBackedObject>['kube'];
  /** Reconcile a settled object again after this many ms (figures, drift). Default 30000. */
  resyncMs?: number;
  /** Reconciles run at once (each waits mostly on the apiserver and the broker). Default BROKER_CONTROLLER_WORKERS. */
  workers?: number;
  /** Backoff after failed reconciles. Default: the controller's (5 ms doubling to 5 min). */
  rateLimiter?: RateLimiterOptions;
  probe?: ReconcileTimer;
  logger?: Logger;
}

/** The manager's shared informer of a kmq kind. */
export function kmqInformer<T extends KubernetesObject>(options: Pick<BrokerControllerOptions, 'kubeConfig' | 'manager' | 'namespace'>, plural: string): Informer<T> {
  return options.manager.informer(customObjectListWatch<T>(options.kubeConfig, { group: GROUP, version: VERSION, plural, ...(options.namespace === undefined ? {} : { namespace: options.namespace }) }));
}

/** The reconciler options every broker-backed controller shares, defaults filled in. */
export function reconcilerOptions<T extends BrokerBackedObject>(options: BrokerControllerOptions, objects: Informer<T>): BrokerObjectReconcilerOptions<T> {
  const logger = options.logger ?? silentLogger();
  return {
    objects,
    brokerClusters: kmqInformer<BrokerCluster>(options, 'brokerclusters'),
    clients: options.clients ?? new BrokerClientPool({ ...(options.resolveAddress === undefined ? {} : { resolveAddress: options.resolveAddress }), logger }),
    kube: options.kube ?? kmqObjectClient(options.kubeConfig),
    ...(options.resyncMs === undefined ? {} : { resyncMs: options.resyncMs }),
    logger,
  };
}

/** Default concurrent reconciles of a broker-backed controller: enough to keep 1,000 objects applied at once moving. */
export const BROKER_CONTROLLER_WORKERS = 8;
