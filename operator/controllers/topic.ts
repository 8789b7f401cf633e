import type { TopicConfig, TopicDescription } from '../../client/admin.js';
import type { DestinationRef } from '../../client/queue-admin.js';
import { parseDurationMs } from '../../lib/duration.js';
import { ErrorCode } from '../../lib/errors.js';
import type { Exchange, Topic, TopicStatus } from '../api/v1alpha1/index.js';
import { quantityBytes } from '../builders/broker-settings.js';
import { silentLogger } from '../../lib/logger.js';
import { Controller } from '../runtime/controller.js';
import type { Reconciler } from '../runtime/controller.js';
import type { BrokerControllerOptions } from './common/broker-controller.js';
import { BROKER_CONTROLLER_WORKERS, kmqInformer, reconcilerOptions } from './common/broker-controller.js';
import { desiredBindings, keysBindingTo, removeBindings, syncBindings } from './common/bindings.js';
import { BrokerReason, hasCode } from './common/broker-errors.js';
import { BrokerObjectReconciler, keysInNamespace } from './common/broker-object-reconciler.js';
import type { BrokerObjectContext, BrokerObjectHandler, EnsureOutcome, Problem } from './common/broker-object-reconciler.js';

/** The status figures of a Topic. */
export type TopicFigures = Omit<TopicStatus, 'observedGeneration' | 'conditions'>;

/** Reconcile again this soon while a binding waits for its Exchange. */
const WAITING_REQUEUE_MS = 5_000;

/** The broker config a Topic's spec asks for; fields the spec leaves out are absent (the broker's defaults). */
export function desiredTopicConfig(spec: Topic['spec']): TopicConfig {
  const config: TopicConfig = {};
  const r = spec.retention;
  if (r?.time !== undefined) config.retentionMs = r.time === 'unlimited' ? -1 : parseDurationMs(r.time, 'spec.retention.time');
  if (r?.bytes !== undefined) config.retentionBytes = r.bytes === 'unlimited' ? -1 : quantityBytes(r.bytes, 'spec.retention.bytes');
  if (spec.segment?.bytes !== undefined) config.segmentBytes = quantityBytes(spec.segment.bytes, 'spec.segment.bytes');
  if (spec.segment?.time !== undefined) config.segmentMs = parseDurationMs(spec.segment.time, 'spec.segment.time');
  if (spec.maxMessageBytes !== undefined) config.maxMessageBytes = quantityBytes(spec.maxMessageBytes, 'spec.maxMessageBytes');
  if (spec.cleanupPolicy !== undefined) config.cleanupPolicy = spec.cleanupPolicy;
  return config;
}

/** The fields of `desired` that the effective config does not have yet. */
export function topicConfigChanges(desired: TopicConfig, effective: TopicConfig | undefined): TopicConfig {
  const changes: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(desired)) {
    if (value !== undefined && (effective as Record<string, unknown> | undefined)?.[field] !== value) changes[field] = value;
  }
  return changes as TopicConfig;
}

/** The replication factor the broker reports (replicas of the first partition), or undefined when it reports none. */
export function actualReplicationFactor(d: TopicDescription): number | undefined {
  const n = d.topic.partitions[0]?.replicas.length;
  return n === undefined || n === 0 ? undefined : n;
}

/**
 * What in the spec the broker has not applied and cannot be made to: partitions (the
 * broker has no call that adds partitions) and the replication factor (fixed at creation).
 */
export function topicDrift(spec: Topic['spec'], d: TopicDescription): string[] {
  const out: string[] = [];
  const partitions = spec.partitions ?? 1;
  const actual = d.topic.partitions.length;
  if (partitions > actual) out.push(`spec.partitions is ${partitions} but the topic has ${actual}: the broker cannot add partitions to an existing topic`);
  else if (partitions < actual) out.push(`spec.partitions is ${partitions} but the topic has ${actual}: partitions cannot be removed`);
  const rf = spec.replicationFactor ?? 1;
  const actualRf = actualReplicationFactor(d);
  if (actualRf !== undefined && actualRf !== rf) out.push(`spec.replicationFactor is ${rf} but the topic has ${actualRf}: the replication factor is fixed when a topic is created`);
  return out;
}

/** Status figures from a description: messages are the sum of the log end offsets. */
export function topicFigures(brokerName: string, d: TopicDescription, bindings: number): TopicFigures {
  return {
    brokerName,
    partitions: d.topic.partitions.length,
    ...(actualReplicationFactor(d) === undefined ? {} : { replicationFactor: actualReplicationFactor(d) }),
    messages: d.topic.partitions.reduce((sum, p) => sum + p.logEndOffset, 0),
    sizeBytes: d.sizeBytes,
    bindings,
  };
}

/** A topic holds nothing when every partition's log start offset has reached its log end offset. */
export function topicIsEmpty(d: TopicDescription): boolean {
  return d.topic.partitions.every((p) => p.logStartOffset >= p.logEndOffset);
}

function destination(brokerName: string): DestinationRef {
  return { kind: 'topic', name: brokerName };
}

async function describeIfExists(ctx: BrokerObjectContext<Topic>): Promise<TopicDescription | undefined> {
  try {
    return await ctx.admin.describeTopic(ctx.brokerName);
  } catch (err) {
    if (hasCode(err, ErrorCode.UnknownTopic)) return undefined;
    throw err;
  }
}

/** Queues are topics on the broker: a Queue of the same name must not pass for this Topic. */
async function isQueue(ctx: BrokerObjectContext<Topic>): Promise<boolean> {
  try {
    await ctx.admin.describeQueue(ctx.brokerName);
    return true;
  } catch (err) {
    if (hasCode(err, ErrorCode.UnknownQueue)) return false;
    throw err;
  }
}

/** The Topic's steps: `<namespace>.<name>` on the broker, its config and its bindings. */
export const topicHandler: BrokerObjectHandler<Topic, TopicFigures> = {
  kind: 'Topic',
  plural: 'topics',

  async ensure(ctx): Promise<EnsureOutcome<TopicFigures>> {
    const { obj, admin, brokerName } = ctx;
    const spec = obj.spec;
    const rf = spec.replicationFactor ?? 1;
    const replicas = ctx.cluster.cluster.spec?.replicas ?? 1;
    if (rf > replicas) {
      return {
        status: { brokerName },
        problem: { reason: 'ReplicationFactorTooHigh', message: `spec.replicationFactor is ${rf} but BrokerCluster ${ctx.cluster.ref.name} has ${replicas} broker${replicas === 1 ? '' : 's'}`, degraded: true },
      };
    }
    const config = desiredTopicConfig(spec);
    let described = await describeIfExists(ctx);
    if (described !== undefined && (await isQueue(ctx))) {
      return {
        status: { brokerName },
        problem: { reason: 'NameTaken', message: `The broker has a queue named ${brokerName}; a Queue and a Topic of one namespace cannot share a name`, degraded: true },
      };
    }
    if (described === undefined) {
      // ifNotExists: a second replica or a restart racing this create is not an error.
      await admin.createTopic(brokerName, { partitions: spec.partitions ?? 1, replicationFactor: rf, config, ifNotExists: true });
      ctx.log.info({ brokerName, partitions: spec.partitions ?? 1 }, 'Topic created on the broker');
      described = await admin.describeTopic(brokerName);
    }
    const changes = topicConfigChanges(config, described.config);
    if (Object.keys(changes).length > 0) {
      await admin.alterTopicConfig(brokerName, changes);
      ctx.log.info({ brokerName, changes }, 'Topic config changed on the broker');
      described = await admin.describeTopic(brokerName);
    }
    const bindings = await syncBindings(admin, desiredBindings(obj.metadata.namespace ?? '', destination(brokerName), spec.bindings), destination(brokerName));
    const status = topicFigures(brokerName, described, bindings.inPlace);
    const drift = topicDrift(spec, described);
    const problem: Problem | undefined = drift.length > 0 ? { reason: BrokerReason.NotAppliedByBroker, message: drift.join('; '), degraded: true } : bindings.problem;
    return { status, ...(problem === undefined ? {} : { problem }), ...(bindings.problem === undefined ? {} : { requeueAfterMs: WAITING_REQUEUE_MS }) };
  },

  readyMessage(ctx, status) {
    return `Topic ${ctx.brokerName} has ${status.partitions ?? 0} partition${status.partitions === 1 ? '' : 's'} and ${status.messages ?? 0} messages`;
  },

  async detach(ctx) {
    await removeBindings(ctx.admin, destination(ctx.brokerName));
  },

  async isEmpty(ctx) {
    const d = await describeIfExists(ctx);
    return d === undefined || topicIsEmpty(d);
  },

  async deleteOnBroker(ctx) {
    await ctx.admin.deleteTopic(ctx.brokerName, { ifExists: true });
    ctx.log.info({ brokerName: ctx.brokerName }, 'Topic deleted on the broker');
  },
};

/** The Topic controller: Topics, re-reconciled when a BrokerCluster of their namespace or an Exchange they bind to changes. */
export function topicController(options: BrokerControllerOptions): Controller {
  const topics = kmqInformer<Topic>(options, 'topics');
  const reconciler = new BrokerObjectReconciler(topicHandler, reconcilerOptions(options, topics));
  const reconcile: Reconciler = options.probe ? options.probe.timed('topic', reconciler.reconcile) : reconciler.reconcile;
  return new Controller({ name: 'topic', workers: options.workers ?? BROKER_CONTROLLER_WORKERS, reconcile, logger: options.logger ?? silentLogger(), ...(options.rateLimiter === undefined ? {} : { rateLimiter: options.rateLimiter }) })
    .watch(topics)
    .watch(kmqInformer(options, 'brokerclusters'), keysInNamespace(topics))
    .watch(kmqInformer<Exchange>(options, 'exchanges'), keysBindingTo(topics));
}
