import { CustomObjectsApi } from '@kubernetes/client-node';
import type { Admin, CommittedOffset, ResetStrategyName } from '../../client/admin.js';
import { ErrorCode } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import { GROUP, VERSION } from '../api/v1alpha1/index.js';
import type { BrokerCluster, DLQPolicy, Subscription, SubscriptionStatus } from '../api/v1alpha1/index.js';
import { apiError, ApiErrorReason } from '../apply.js';
import { Controller } from '../runtime/controller.js';
import type { Reconciler } from '../runtime/controller.js';
import { BrokerObjectReconciler, brokerSideName, errorMessage, hasCode, keysInNamespace, kmqInformer, reconcilerOptions } from './common/index.js';
import type { BrokerControllerOptions, BrokerObjectContext, BrokerObjectHandler, EnsureOutcome, ObjectCache, Problem } from './common/index.js';

/** Condition reasons of a Subscription (besides those of the common reconciler). */
export const SubscriptionReason = {
  /** The Topic or Queue it reads does not exist on the broker (yet). */
  SourceNotFound: 'SourceNotFound',
  /** spec.dlqPolicy names a DLQPolicy that does not exist. */
  DLQPolicyNotFound: 'DLQPolicyNotFound',
  /** A reset is requested but the group has members; it is applied once they have left. */
  GroupActive: 'GroupActive',
  /** spec.reset.to is not earliest, latest or an RFC 3339 timestamp. */
  InvalidReset: 'InvalidReset',
} as const;

/** How soon a Subscription waiting for its group to empty (a pending reset) is looked at again. */
export const GROUP_ACTIVE_RETRY_MS = 5_000;

/** The effective mode of a Subscription: spec.mode, else ordered on a topic and shared on a queue. */
export function subscriptionMode(sub: Subscription): 'ordered' | 'shared' {
  return sub.spec.mode ?? (sub.spec.topic !== undefined ? 'ordered' : 'shared');
}

/** The broker-side topic dead letters of an ordered Subscription go to (as the webhook configures the sidecar). */
export function deadLetterTopic(sub: Subscription): string {
  const namespace = sub.metadata.namespace ?? '';
  return sub.spec.deadLetterTopic !== undefined ? brokerSideName(namespace, sub.spec.deadLetterTopic) : `${brokerSideName(namespace, sub.metadata.name ?? '')}.dlq`;
}

/** A reset target as the admin API takes it. */
export type ResetTarget = { strategy: Extract<ResetStrategyName, 'earliest' | 'latest'> } | { strategy: 'timestamp'; value: number };

/** `spec.reset.to` as a reset target, or undefined when it is none of earliest, latest and an RFC 3339 timestamp. */
export function parseResetTarget(to: string): ResetTarget | undefined {
  if (to === 'earliest' || to === 'latest') return { strategy: to };
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(to)) return undefined;
  const ms = Date.parse(to);
  return Number.isFinite(ms) && ms >= 0 ? { strategy: 'timestamp', value: ms } : undefined;
}

/** The reset to apply now: spec.reset when its requestId differs from the last one applied. */
export function pendingReset(sub: Subscription, lastAppliedRequestId: string | undefined): { requestId: string; to: string } | undefined {
  const reset = sub.spec.reset;
  if (reset === undefined || reset.requestId === lastAppliedRequestId) return undefined;
  return { requestId: reset.requestId, to: reset.to };
}

/**
 * Records not yet consumed over the partitions of `committed`: the broker's lag of each
 * partition, except that a partition with nothing committed counts from where the group
 * will start (the whole log for startFrom earliest, nothing for latest).
 */
export function totalLag(committed: readonly CommittedOffset[], startFrom: 'earliest' | 'latest'): number {
  let lag = 0;
  for (const c of committed) {
    if (c.lag < 0) continue;
    if (c.offset < 0 && startFrom === 'latest') continue;
    lag += c.lag;
  }
  return lag;
}

/** The figures of a Subscription's status (conditions and observedGeneration aside). */
export type SubscriptionFigures = Omit<SubscriptionStatus, 'conditions' | 'observedGeneration'>;

/** What the Subscription handler reads besides the broker. */
export interface SubscriptionHandlerOptions {
  /** The DLQPolicies, to check that spec.dlqPolicy exists. */
  dlqPolicies: Pick<ObjectCache<DLQPolicy>, 'get'>;
  /**
   * The status as the API server has it now. A reset is applied only when the stored
   * lastReset differs: the informer cache may lag behind the status write of the last one.
   */
  readStatus: (sub: Subscription) => Promise<SubscriptionStatus | undefined>;
}

/**
 * Subscription → the consumer group `<namespace>.<name>`. The group itself is created by
 * the consumers (the sidecars) as they join; the operator checks that its Topic or Queue
 * exists, reports lag, consumers and dead letters, and applies declarative offset resets
 * (ordered subscriptions): each spec.reset.requestId once, recorded in status.lastReset,
 * and only while the group has no members (else Degraded, reason GroupActive, retried).
 * Deleting a Subscription with deletionPolicy Delete deletes the group's committed
 * offsets; Retain (the default) and DeleteIfEmpty keep them.
 */
export class SubscriptionHandler implements BrokerObjectHandler<Subscription, SubscriptionFigures> {
  readonly kind = 'Subscription';
  readonly plural = 'subscriptions';
  /** The reset applied last, per Subscription uid: what a cache that lags behind our own status write does not show yet. */
  private readonly applied = new Map<string, NonNullable<SubscriptionStatus['lastReset']>>();

  constructor(private readonly options: SubscriptionHandlerOptions) {}

  async ensure(ctx: BrokerObjectContext<Subscription>): Promise<EnsureOutcome<SubscriptionFigures>> {
    const { obj: sub, admin, brokerName: group } = ctx;
    const namespace = sub.metadata.namespace ?? '';
    const mode = subscriptionMode(sub);
    const base: SubscriptionFigures = { mode, brokerGroup: group, ...(sub.status?.lastReset === undefined ? {} : { lastReset: sub.status.lastReset }) };

    let problem: Problem | undefined;
    if (sub.spec.dlqPolicy !== undefined && this.options.dlqPolicies.get(`${namespace}/${sub.spec.dlqPolicy}`) === undefined) {
      problem = { reason: SubscriptionReason.DLQPolicyNotFound, message: `DLQPolicy ${sub.spec.dlqPolicy} does not exist in namespace ${namespace}`, degraded: true };
    }

    if (sub.spec.queue !== undefined) {
      const queue = brokerSideName(namespace, sub.spec.queue);
      try {
        const info = await admin.describeQueue(queue);
        const dlq = info.config?.deadLetterQueue ?? '';
        const figures: SubscriptionFigures = { ...base, lag: info.depth?.ready ?? 0, consumers: info.consumers, ...(dlq === '' ? {} : { dlqDepth: await queueDepth(admin, dlq) }) };
        return { status: figures, ...(problem === undefined ? {} : { problem }) };
      } catch (err) {
        if (!hasCode(err, ErrorCode.UnknownQueue)) throw err;
        return { status: base, problem: problem ?? { reason: SubscriptionReason.SourceNotFound, message: `Queue ${queue} does not exist on the broker`, degraded: false } };
      }
    }

    const topic = brokerSideName(namespace, sub.spec.topic ?? '');
    let partitions: number[];
    try {
      partitions = [...(await admin.listOffsets(topic, 'latest')).keys()].sort((a, b) => a - b);
    } catch (err) {
      if (!hasCode(err, ErrorCode.UnknownTopic)) throw err;
      return { status: base, problem: problem ?? { reason: SubscriptionReason.SourceNotFound, message: `Topic ${topic} does not exist on the broker`, degraded: false } };
    }

    const reset = await this.applyReset(ctx, topic, base);
    if (reset.problem !== undefined) problem ??= reset.problem;
    const figures: SubscriptionFigures = { ...base, ...(reset.lastReset === undefined ? {} : { lastReset: reset.lastReset }) };
    try {
      const group = await admin.describeGroup(ctx.brokerName);
      const committed = await admin.fetchOffsets(ctx.brokerName, partitions.map((partition) => ({ topic, partition })));
      figures.lag = totalLag(committed, mode === 'ordered' ? (sub.spec.startFrom ?? 'earliest') : 'earliest');
      figures.consumers = group.members.length;
      if (mode === 'ordered') figures.dlqDepth = await topicDepth(admin, deadLetterTopic(sub));
    } catch (err) {
      // A reset already applied must still be recorded: report the failure as a condition rather than throw.
      if (reset.lastReset === undefined || reset.lastReset === sub.status?.lastReset) throw err;
      problem ??= { reason: 'BrokerUnavailable', message: `Reading the group's figures failed: ${errorMessage(err)}`, degraded: false };
    }
    return {
      status: figures,
      ...(problem === undefined ? {} : { problem }),
      ...(reset.problem?.reason === SubscriptionReason.GroupActive ? { requeueAfterMs: GROUP_ACTIVE_RETRY_MS } : {}),
    };
  }

  readyMessage(ctx: BrokerObjectContext<Subscription>, status: SubscriptionFigures): string {
    const source = ctx.obj.spec.topic !== undefined ? `topic ${ctx.obj.spec.topic}` : `queue ${ctx.obj.spec.queue}`;
    return `Group ${ctx.brokerName} on ${source}: lag ${status.lag ?? 0}, ${status.consumers ?? 0} consumers`;
  }

  /** The group holds no broker object of its own; its committed offsets are its state. */
  async isEmpty(): Promise<boolean> {
    return true;
  }

  async deleteOnBroker(ctx: BrokerObjectContext<Subscription>): Promise<void> {
    try {
      await ctx.admin.deleteGroup(ctx.brokerName);
    } catch (err) {
      if (!hasCode(err, ErrorCode.UnknownGroup)) throw err;
    }
  }

  /** Applies spec.reset when its requestId is new and the group has no members. */
  private async applyReset(
    ctx: BrokerObjectContext<Subscription>,
    topic: string,
    base: SubscriptionFigures,
  ): Promise<{ lastReset?: SubscriptionStatus['lastReset']; problem?: Problem }> {
    const sub = ctx.obj;
    const uid = sub.metadata.uid ?? '';
    let last = base.lastReset;
    const mine = this.applied.get(uid);
    if (mine !== undefined && mine.requestId !== last?.requestId && mine.time >= (last?.time ?? '')) last = mine;
    let pending = pendingReset(sub, last?.requestId);
    if (pending === undefined) return { lastReset: last };
    // The cache may not have the status written after the previous reset yet: ask the API server.
    const stored = await this.options.readStatus(sub);
    if (stored?.lastReset !== undefined) last = stored.lastReset;
    pending = pendingReset(sub, last?.requestId);
    if (pending === undefined) return { lastReset: last };
    if (subscriptionMode(sub) !== 'ordered') {
      return { lastReset: last, problem: { reason: SubscriptionReason.InvalidReset, message: 'spec.reset applies to ordered subscriptions only', degraded: true } };
    }
    const target = parseResetTarget(pending.to);
    if (target === undefined) {
      return { lastReset: last, problem: { reason: SubscriptionReason.InvalidReset, message: `spec.reset.to must be earliest, latest or an RFC 3339 timestamp, got ${JSON.stringify(pending.to)}`, degraded: true } };
    }
    const group = await ctx.admin.describeGroup(ctx.brokerName);
    const active = { reason: SubscriptionReason.GroupActive, degraded: true };
    if (group.members.length > 0) {
      ctx.log.info({ requestId: pending.requestId, members: group.members.length }, 'Offset reset waits for the group to have no members');
      return { lastReset: last, problem: { ...active, message: `Reset ${pending.requestId} waits: group ${ctx.brokerName} has ${group.members.length} members; it is applied once they have left` } };
    }
    try {
      await ctx.admin.resetOffsets(ctx.brokerName, topic, target.strategy, target.strategy === 'timestamp' ? target.value : undefined);
    } catch (err) {
      if (!hasCode(err, ErrorCode.GroupNotEmpty)) throw err;
      return { lastReset: last, problem: { ...active, message: `Reset ${pending.requestId} waits: ${errorMessage(err)}` } };
    }
    const applied = { requestId: pending.requestId, to: pending.to, time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') };
    this.applied.set(uid, applied);
    ctx.log.info({ requestId: pending.requestId, to: pending.to, group: ctx.brokerName, topic }, 'Offsets reset');
    return { lastReset: applied };
  }
}

/** Records held in a topic: over its partitions, log end minus log start; 0 when the topic does not exist. */
export async function topicDepth(admin: Admin, topic: string): Promise<number> {
  try {
    const [start, end] = await Promise.all([admin.listOffsets(topic, 'earliest'), admin.listOffsets(topic, 'latest')]);
    let depth = 0;
    for (const [p, e] of end) depth += Math.max(0, e - (start.get(p) ?? 0));
    return depth;
  } catch (err) {
    if (hasCode(err, ErrorCode.UnknownTopic)) return 0;
    throw err;
  }
}

/** Messages held in a queue (ready, in flight and delayed); 0 when the queue does not exist. */
export async function queueDepth(admin: Admin, queue: string): Promise<number> {
  try {
    const d = (await admin.describeQueue(queue)).depth;
    return (d?.ready ?? 0) + (d?.inFlight ?? 0) + (d?.delayed ?? 0);
  } catch (err) {
    if (hasCode(err, ErrorCode.UnknownQueue)) return 0;
    throw err;
  }
}

/** The Subscription controller: Subscriptions, re-reconciled when a BrokerCluster or DLQPolicy of their namespace changes. */
export function subscriptionController(options: BrokerControllerOptions): Controller {
  const subscriptions = kmqInformer<Subscription>(options, 'subscriptions');
  const dlqPolicies = kmqInformer<DLQPolicy>(options, 'dlqpolicies');
  const custom = options.kubeConfig.makeApiClient(CustomObjectsApi);
  const handler = new SubscriptionHandler({ dlqPolicies, readStatus: (sub) => readSubscriptionStatus(custom, sub) });
  const reconciler = new BrokerObjectReconciler<Subscription, SubscriptionFigures>(handler, reconcilerOptions(options, subscriptions));
  const reconcile: Reconciler = options.probe ? options.probe.timed('subscription', reconciler.reconcile) : reconciler.reconcile;
  const toSubscriptions = keysInNamespace(subscriptions);
  return new Controller({ name: 'subscription', workers: options.workers ?? 2, reconcile, logger: options.logger ?? silentLogger(), ...(options.rateLimiter === undefined ? {} : { rateLimiter: options.rateLimiter }) })
    .watch(subscriptions)
    .watch(kmqInformer<BrokerCluster>(options, 'brokerclusters'), toSubscriptions)
    .watch(dlqPolicies, toSubscriptions);
}

async function readSubscriptionStatus(custom: CustomObjectsApi, sub: Subscription): Promise<SubscriptionStatus | undefined> {
  try {
    const stored = (await custom.getNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace: sub.metadata.namespace ?? '', plural: 'subscriptions', name: sub.metadata.name ?? '' })) as Subscription;
    return stored.status;
  } catch (err) {
    const e = apiError(err, 'read', sub);
    if (e.context.reason === ApiErrorReason.NotFound) return undefined;
    throw e;
  }
}
