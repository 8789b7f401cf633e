import type { KubernetesObject } from '@kubernetes/client-node';
import type { Admin } from '../../../client/admin.js';
import { ErrorCode, KmqError } from '../../../lib/errors.js';
import { silentLogger } from '../../../lib/logger.js';
import type { Logger } from '../../../lib/logger.js';
import type { ClusterScopedSpec, CommonStatus, Condition, DeletionPolicy, KmqResource } from '../../api/v1alpha1/index.js';
import type { ReconcileResult } from '../../runtime/controller.js';
import { objectKey } from '../../runtime/informer.js';
import { ConditionType, markDegraded, markReady, reasonOf, removeCondition, setCondition } from '../../status.js';
import type { BrokerClientPool } from './broker-clients.js';
import { resolveBrokerCluster } from './broker-cluster-ref.js';
import type { BrokerClusterCache, BrokerClusterResolution } from './broker-cluster-ref.js';
import { BrokerReason, errorMessage, isBrokerUnavailable } from './broker-errors.js';
import { addFinalizer, hasFinalizer, isBeingDeleted, removeFinalizer } from './finalizer.js';
import type { KmqObjectClient } from './kube.js';
import { brokerSideNameOf } from './naming.js';
import { writeStatus } from './status-writer.js';

/** A broker-backed kmq object: a Topic, Queue, Exchange or Subscription. */
export type BrokerBackedObject = KmqResource<string, ClusterScopedSpec, CommonStatus>;

/** The part of an informer cache a reconciler reads its objects from. */
export interface ObjectCache<T> {
  get(key: string): T | undefined;
  list(namespace?: string): T[];
}

/** What a handler works with in one reconcile. */
export interface BrokerObjectContext<T extends BrokerBackedObject> {
  obj: T;
  /** `<namespace>.<name>`. */
  brokerName: string;
  cluster: Extract<BrokerClusterResolution, { ok: true }>;
  admin: Admin;
  log: Logger;
  signal: AbortSignal;
}

/** Why an object is not Ready although its reconcile ran through. */
export interface Problem {
  reason: string;
  message: string;
  /** Degraded=True as well (something needs attention), not only Ready=False (waiting for something). */
  degraded: boolean;
}

/** What ensuring the broker object found. */
export interface EnsureOutcome<S> {
  /** The kind's status fields (figures), without observedGeneration and conditions. */
  status: S;
  problem?: Problem;
  /** Reconcile again after this many ms rather than after the resync period. */
  requeueAfterMs?: number;
}

/** The kind-specific steps of a broker-backed reconcile. */
export interface BrokerObjectHandler<T extends BrokerBackedObject, S> {
  kind: string;
  /** The resource's plural, for its API paths. */
  plural: string;
  /** Creates the broker object when it is missing, compares and applies settings, binds; reads the figures. */
  ensure(ctx: BrokerObjectContext<T>): Promise<EnsureOutcome<S>>;
  /** The message of Ready=True. */
  readyMessage(ctx: BrokerObjectContext<T>, status: S): string;
  /** What goes whatever the deletionPolicy (the object's bindings). Must succeed when the broker object is gone. */
  detach?(ctx: BrokerObjectContext<T>): Promise<void>;
  /** True when the broker object holds nothing (DeleteIfEmpty); true when it is gone. */
  isEmpty(ctx: BrokerObjectContext<T>): Promise<boolean>;
  /** Deletes the broker object; succeeds when it is gone already. */
  deleteOnBroker(ctx: BrokerObjectContext<T>): Promise<void>;
}

/** Options of a BrokerObjectReconciler. */
export interface BrokerObjectReconcilerOptions<T extends BrokerBackedObject> {
  objects: ObjectCache<T>;
  brokerClusters: BrokerClusterCache;
  clients: BrokerClientPool;
  kube: KmqObjectClient;
  /** Reconcile a settled object again after this many ms, to refresh figures and repair drift. Default 30000. */
  resyncMs?: number;
  logger?: Logger;
  now?: () => Date;
}

const DEFAULT_RESYNC_MS = 30_000;

/**
 * The reconcile of a broker-backed kind, as a table of contents:
 * fetch (from the cache) → gone is done → deletion (finalizer) → finalizer → BrokerCluster →
 * ensure on the broker → status → requeue after the resync period.
 *
 * Deletion never hangs: the finalizer is released when the BrokerCluster is gone (or
 * ambiguous), and when the namespace is terminating and the broker is unreachable or
 * refuses the clean-up (the broker object is then left, and logged). DeleteIfEmpty in a
 * terminating namespace acts as Retain. Outside a terminating namespace, a DeleteIfEmpty
 * object that is not empty stays, Degraded with reason NotEmpty, retried with backoff; a
 * broker that is down is Ready=False BrokerUnavailable, retried with backoff.
 */
export class BrokerObjectReconciler<T extends BrokerBackedObject, S extends object> {
  private readonly log: Logger;
  private readonly resyncMs: number;
  private readonly now: () => Date;

  constructor(
    private readonly handler: BrokerObjectHandler<T, S>,
    private readonly options: BrokerObjectReconcilerOptions<T>,
  ) {
    this.log = (options.logger ?? silentLogger()).child({ kind: handler.kind });
    this.resyncMs = options.resyncMs ?? DEFAULT_RESYNC_MS;
    this.now = options.now ?? (() => new Date());
  }

  /** The Reconciler of a Controller. */
  readonly reconcile = async (key: string, signal: AbortSignal): Promise<ReconcileResult> => {
    const cached = this.options.objects.get(key);
    if (cached === undefined) return {};
    // Status writes update the copy, never the cache's object.
    const obj = structuredClone(cached);
    if (isBeingDeleted(obj)) {
      if (hasFinalizer(obj)) await this.finalize(obj, signal);
      return {};
    }
    await addFinalizer(this.options.kube, this.handler.plural, obj);

    const cluster = resolveBrokerCluster(obj, this.options.brokerClusters);
    if (!cluster.ok) {
      await this.writeConditions(obj, {}, { reason: cluster.reason, message: cluster.message, degraded: false });
      return { requeueAfterMs: this.resyncMs };
    }
    const ctx = this.context(obj, cluster, signal);
    let outcome: EnsureOutcome<S>;
    try {
      outcome = await this.handler.ensure(ctx);
    } catch (err) {
      await this.recordFailure(obj, err);
      throw err;
    }
    await this.writeConditions(obj, outcome.status, outcome.problem, this.handler.readyMessage(ctx, outcome.status));
    return { requeueAfterMs: outcome.requeueAfterMs ?? this.resyncMs };
  };

  private context(obj: T, cluster: Extract<BrokerClusterResolution, { ok: true }>, signal: AbortSignal): BrokerObjectContext<T> {
    const brokerName = brokerSideNameOf(obj);
    return {
      obj,
      brokerName,
      cluster,
      admin: this.options.clients.admin(cluster.ref),
      log: this.log.child({ namespace: obj.metadata.namespace, name: obj.metadata.name, brokerCluster: cluster.ref.name }),
      signal,
    };
  }

  private async finalize(obj: T, signal: AbortSignal): Promise<void> {
    const log = this.log.child({ namespace: obj.metadata.namespace, name: obj.metadata.name });
    const cluster = resolveBrokerCluster(obj, this.options.brokerClusters);
    if (!cluster.ok) {
      log.info({ reason: cluster.reason }, 'No BrokerCluster to clean up on, releasing the finalizer');
      await removeFinalizer(this.options.kube, this.handler.plural, obj);
      return;
    }
    const namespaceTerminating = await this.options.kube.namespaceTerminating(obj.metadata.namespace ?? '');
    const declared: DeletionPolicy = obj.spec.deletionPolicy ?? 'Retain';
    const policy: DeletionPolicy = declared === 'DeleteIfEmpty' && namespaceTerminating ? 'Retain' : declared;
    const ctx = this.context(obj, cluster, signal);
    try {
      await this.handler.detach?.(ctx);
      if (policy === 'Delete') {
        await this.handler.deleteOnBroker(ctx);
      } else if (policy === 'DeleteIfEmpty') {
        if (!(await this.handler.isEmpty(ctx))) {
          const message = `deletionPolicy is DeleteIfEmpty and ${ctx.brokerName} still holds messages; the resource stays until it is empty`;
          await this.writeConditions(obj, obj.status ?? {}, { reason: BrokerReason.NotEmpty, message, degraded: true });
          throw new KmqError(ErrorCode.Unknown, message, { reason: BrokerReason.NotEmpty, namespace: obj.metadata.namespace, name: obj.metadata.name }, { retriable: true });
        }
        await this.handler.deleteOnBroker(ctx);
      }
    } catch (err) {
      // A terminating namespace must not wait on the broker: unreachable, or refusing (a queue
      // still named as another's dead-letter queue, say), the broker object is left and logged.
      if (namespaceTerminating) {
        log.warn({ err: errorMessage(err), policy: declared, brokerName: ctx.brokerName }, 'Namespace terminating and the broker object could not be cleaned up, releasing the finalizer and leaving it');
        await removeFinalizer(this.options.kube, this.handler.plural, obj);
        return;
      }
      if (!(err instanceof KmqError && err.context.reason === BrokerReason.NotEmpty)) await this.recordFailure(obj, err);
      throw err;
    }
    log.info({ policy, brokerName: ctx.brokerName }, policy === 'Retain' ? 'Broker object retained, releasing the finalizer' : 'Broker object deleted, releasing the finalizer');
    await removeFinalizer(this.options.kube, this.handler.plural, obj);
  }

  /** Records a failed step in the conditions; a write that fails in turn is only logged (the error is rethrown anyway). */
  private async recordFailure(obj: T, err: unknown): Promise<void> {
    const problem: Problem = isBrokerUnavailable(err)
      ? { reason: BrokerReason.BrokerUnavailable, message: `Broker unreachable: ${errorMessage(err)}`, degraded: false }
      : { reason: reasonOf(err), message: errorMessage(err), degraded: true };
    try {
      await this.writeConditions(obj, obj.status ?? {}, problem);
    } catch (writeErr) {
      this.log.warn({ err: writeErr, namespace: obj.metadata.namespace, name: obj.metadata.name }, 'Status write failed');
    }
  }

  /** Writes figures and conditions (Ready, or the problem) with observedGeneration, when they changed. */
  private async writeConditions(obj: T, figures: object, problem?: Problem, readyMessage = 'Ready'): Promise<void> {
    const generation = obj.metadata.generation;
    const now = this.now();
    const current = obj.status?.conditions;
    let conditions: Condition[];
    if (problem === undefined) conditions = markReady(current, BrokerReason.Ready, readyMessage, generation, now);
    else if (problem.degraded) conditions = markDegraded(current, problem.reason, problem.message, generation, now);
    else conditions = removeCondition(setCondition(current, { type: ConditionType.Ready, status: 'False', reason: problem.reason, message: problem.message }, generation, now), ConditionType.Degraded);
    const { observedGeneration: _o, conditions: _c, ...rest } = figures as CommonStatus & Record<string, unknown>;
    const next = { ...rest, ...(generation === undefined ? {} : { observedGeneration: generation }), conditions };
    await writeStatus(this.options.kube, this.handler.plural, obj, next);
  }
}

/** Maps a BrokerCluster (or any object) to the keys of every object of `objects` in its namespace. */
export function keysInNamespace<T extends KubernetesObject>(objects: ObjectCache<T>): (other: { metadata?: { namespace?: string } }) => string[] {
  return (other) => {
    const namespace = other.metadata?.namespace;
    return namespace === undefined ? [] : objects.list(namespace).map((o) => objectKey(o));
  };
}
