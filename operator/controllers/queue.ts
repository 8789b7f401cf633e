import type { DestinationRef, QueueConfig, QueueInfo } from '../../client/queue-admin.js';
import { parseDurationMs } from '../../lib/duration.js';
import { ErrorCode } from '../../lib/errors.js';
import type { Exchange, Queue, QueueStatus } from '../api/v1alpha1/index.js';
import { quantityBytes } from '../builders/broker-settings.js';
import { silentLogger } from '../../lib/logger.js';
import { Controller } from '../runtime/controller.js';
import type { Reconciler } from '../runtime/controller.js';
import type { BrokerControllerOptions } from './common/broker-controller.js';
import { BROKER_CONTROLLER_WORKERS, kmqInformer, reconcilerOptions } from './common/broker-controller.js';
import { objectKey } from '../runtime/informer.js';
import { desiredBindings, keysBindingTo, removeBindings, syncBindings } from './common/bindings.js';
import { BrokerReason, hasCode } from './common/broker-errors.js';
import { BrokerObjectReconciler, keysInNamespace } from './common/broker-object-reconciler.js';
import type { BrokerObjectContext, BrokerObjectHandler, EnsureOutcome, Problem } from './common/broker-object-reconciler.js';
import { brokerSideName } from './common/naming.js';

/** The status figures of a Queue. */
export type QueueFigures = Omit<QueueStatus, 'observedGeneration' | 'conditions'>;

/** Reconcile again this soon while waiting for a dead-letter queue or an Exchange. */
const WAITING_REQUEUE_MS = 5_000;
const DEFAULT_LOCK_TIMEOUT = '30s';

/** The broker config a Queue's spec asks for. Retention and message size the spec leaves out are absent (the broker's defaults). */
export function desiredQueueConfig(namespace: string, spec: Queue['spec']): QueueConfig {
  const config: QueueConfig = {
    partitions: spec.partitions ?? 1,
    maxDeliveries: spec.maxDeliveries ?? 0,
    deadLetterQueue: spec.deadLetterQueue === undefined || spec.deadLetterQueue === '' ? '' : brokerSideName(namespace, spec.deadLetterQueue),
    lockTimeoutMs: parseDurationMs(spec.lockTimeout ?? DEFAULT_LOCK_TIMEOUT, 'spec.lockTimeout'),
    perKeyOrdering: spec.perKeyOrdering ?? false,
  };
  const r = spec.retention;
  if (r?.time !== undefined) config.retentionMs = r.time === 'unlimited' ? -1 : parseDurationMs(r.time, 'spec.retention.time');
  if (r?.bytes !== undefined) config.retentionBytes = r.bytes === 'unlimited' ? -1 : quantityBytes(r.bytes, 'spec.retention.bytes');
  if (spec.maxMessageBytes !== undefined) config.maxMessageBytes = quantityBytes(spec.maxMessageBytes, 'spec.maxMessageBytes');
  return config;
}

const SPEC_FIELD: Record<keyof QueueConfig, string> = {
  partitions: 'spec.partitions',
  retentionMs: 'spec.retention.time',
  retentionBytes: 'spec.retention.bytes',
  maxDeliveries: 'spec.maxDeliveries',
  deadLetterQueue: 'spec.deadLetterQueue',
  lockTimeoutMs: 'spec.lockTimeout',
  perKeyOrdering: 'spec.perKeyOrdering',
  maxMessageBytes: 'spec.maxMessageBytes',
};

/**
 * The settings whose broker value differs from the spec. The broker has no call that
 * changes a queue's settings after creation, so each is reported, never ignored.
 */
export function queueDrift(desired: QueueConfig, effective: QueueConfig | undefined): string[] {
  const out: string[] = [];
  for (const [field, value] of Object.entries(desired) as Array<[keyof QueueConfig, unknown]>) {
    if (value === undefined) continue;
    const actual = effective?.[field];
    if (actual !== value) out.push(`${SPEC_FIELD[field]} asks for ${JSON.stringify(value)} but the queue has ${JSON.stringify(actual ?? null)}`);
  }
  return out;
}

/** Status figures of a queue. */
export function queueFigures(brokerName: string, q: QueueInfo, dlqDepth: number | undefined, bindings: number): QueueFigures {
  const depth = q.depth ?? { ready: 0, inFlight: 0, delayed: 0 };
  return {
    brokerName,
    partitions: q.config?.partitions ?? 0,
    depth: { ready: depth.ready, inFlight: depth.inFlight, delayed: depth.delayed },
    ...(dlqDepth === undefined ? {} : { dlqDepth }),
    consumers: q.consumers,
    redeliveries: q.redeliveries,
    deadLettered: q.deadLettered,
    bindings,
  };
}

/** Nothing ready, in flight or delayed. */
export function queueIsEmpty(q: QueueInfo): boolean {
  const d = q.depth;
  return d === undefined || d.ready + d.inFlight + d.delayed === 0;
}

function destination(brokerName: string): DestinationRef {
  return { kind: 'queue', name: brokerName };
}

async function describeIfExists(ctx: BrokerObjectContext<Queue>, name: string): Promise<QueueInfo | undefined> {
  try {
    return await ctx.admin.describeQueue(name);
  } catch (err) {
    if (hasCode(err, ErrorCode.UnknownQueue)) return undefined;
    throw err;
  }
}

/** The Queue's steps: `<namespace>.<name>` on the broker, its settings, its dead-letter queue and its bindings. */
export const queueHandler: BrokerObjectHandler<Queue, QueueFigures> = {
  kind: 'Queue',
  plural: 'queues',

  async ensure(ctx): Promise<EnsureOutcome<QueueFigures>> {
    const { obj, admin, brokerName } = ctx;
    const namespace = obj.metadata.namespace ?? '';
    const config = desiredQueueConfig(namespace, obj.spec);
    const dlqName = config.deadLetterQueue ?? '';
    const dlq = dlqName === '' ? undefined : await describeIfExists(ctx, dlqName);
    let info = await describeIfExists(ctx, brokerName);
    if (info === undefined) {
      if (dlqName !== '' && dlq === undefined) {
        // The broker refuses a queue whose dead-letter queue does not exist; the Queue of it may come later.
        return {
          status: { brokerName },
          problem: { reason: 'DeadLetterQueueNotFound', message: `Dead-letter queue ${dlqName} (Queue ${obj.spec.deadLetterQueue}) does not exist on the broker yet`, degraded: false },
          requeueAfterMs: WAITING_REQUEUE_MS,
        };
      }
      try {
        await admin.createQueue(brokerName, config, { ifNotExists: true });
      } catch (err) {
        // A topic of the same broker-side name exists: queues are topics on the broker.
        if (!hasCode(err, ErrorCode.UnknownQueue, ErrorCode.TopicExists)) throw err;
        return {
          status: { brokerName },
          problem: { reason: 'NameTaken', message: `The broker has a topic named ${brokerName} that is not a queue; a Queue and a Topic of one namespace cannot share a name`, degraded: true },
        };
      }
      ctx.log.info({ brokerName, partitions: config.partitions }, 'Queue created on the broker');
      info = await admin.describeQueue(brokerName);
    }
    const bindings = await syncBindings(admin, desiredBindings(namespace, destination(brokerName), obj.spec.bindings), destination(brokerName));
    const status = queueFigures(brokerName, info, dlq?.depth?.ready, bindings.inPlace);
    const drift = queueDrift(config, info.config);
    const problem: Problem | undefined = drift.length > 0 ? { reason: BrokerReason.NotAppliedByBroker, message: `The broker cannot change a queue's settings after creation: ${drift.join('; ')}`, degraded: true } : bindings.problem;
    return { status, ...(problem === undefined ? {} : { problem }), ...(bindings.problem === undefined ? {} : { requeueAfterMs: WAITING_REQUEUE_MS }) };
  },

  readyMessage(ctx, status) {
    const d = status.depth ?? { ready: 0, inFlight: 0, delayed: 0 };
    return `Queue ${ctx.brokerName}: ${d.ready} ready, ${d.inFlight} in flight, ${d.delayed} delayed`;
  },

  async detach(ctx) {
    await removeBindings(ctx.admin, destination(ctx.brokerName));
  },

  async isEmpty(ctx) {
    const info = await describeIfExists(ctx, ctx.brokerName);
    return info === undefined || queueIsEmpty(info);
  },

  async deleteOnBroker(ctx) {
    await ctx.admin.deleteQueue(ctx.brokerName, { ifExists: true });
    ctx.log.info({ brokerName: ctx.brokerName }, 'Queue deleted on the broker');
  },
};

/** The Queue controller: Queues, re-reconciled when a BrokerCluster of their namespace, an Exchange they bind to or their dead-letter Queue changes. */
export function queueController(options: BrokerControllerOptions): Controller {
  const queues = kmqInformer<Queue>(options, 'queues');
  const reconciler = new BrokerObjectReconciler(queueHandler, reconcilerOptions(options, queues));
  const reconcile: Reconciler = options.probe ? options.probe.timed('queue', reconciler.reconcile) : reconciler.reconcile;
  const usersOfDlq = (q: Queue): string[] =>
    queues
      .list(q.metadata.namespace)
      .filter((o) => o.spec.deadLetterQueue === q.metadata.name)
      .map((o) => objectKey(o));
  return new Controller({ name: 'queue', workers: options.workers ?? BROKER_CONTROLLER_WORKERS, reconcile, logger: options.logger ?? silentLogger(), ...(options.rateLimiter === undefined ? {} : { rateLimiter: options.rateLimiter }) })
    .watch(queues, (q) => [objectKey(q), ...usersOfDlq(q)])
    .watch(kmqInformer(options, 'brokerclusters'), keysInNamespace(queues))
    .watch(kmqInformer<Exchange>(options, 'exchanges'), keysBindingTo(queues));
}
