import type { KubeConfig } from '@kubernetes/client-node';
import { parseDurationMs } from '../../lib/duration.js';
import { silentLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
import { GROUP, MAX_TIMER_MS, VERSION } from '../api/v1alpha1/index.js';
import type { DLQPolicy, DLQPolicySpec, DLQPolicyStatus, Subscription } from '../api/v1alpha1/index.js';
import type { OperatorProbe } from '../probe.js';
import { Controller } from '../runtime/controller.js';
import type { ReconcileResult, Reconciler } from '../runtime/controller.js';
import { objectKey } from '../runtime/informer.js';
import { customObjectListWatch } from '../runtime/list-watch.js';
import type { Manager } from '../runtime/manager.js';
import { markDegraded, markReady } from '../status.js';
import { kmqObjectClient, writeStatus } from './common/index.js';
import type { KmqObjectClient, ObjectCache } from './common/index.js';

/** Condition reasons of a DLQPolicy. */
export const DLQPolicyReason = {
  /** The settings are valid; sidecars of the Subscriptions that name it use them. */
  Valid: 'Valid',
  /** A setting is out of range; Subscriptions that name the policy cannot be served as asked. */
  InvalidSpec: 'InvalidSpec',
} as const;

/**
 * Problems of a DLQPolicy's settings, each naming its field; empty when valid. The CRD's
 * schema refuses most of them already; this also covers objects stored under an older schema.
 */
export function validateDlqPolicy(spec: DLQPolicySpec): string[] {
  const problems: string[] = [];
  if (spec.maxAttempts !== undefined && (!Number.isInteger(spec.maxAttempts) || spec.maxAttempts < 1)) problems.push(`maxAttempts must be an integer >= 1, got ${spec.maxAttempts}`);
  const ms = (field: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    try {
      const n = parseDurationMs(value, field);
      if (n < 0 || n > MAX_TIMER_MS) {
        problems.push(`${field} must be between 0 and ${MAX_TIMER_MS}ms, got ${value}`);
        return undefined;
      }
      return n;
    } catch {
      problems.push(`${field} must be a duration (e.g. 200ms, 30s, 5m), got ${JSON.stringify(value)}`);
      return undefined;
    }
  };
  const initial = ms('backoff.initial', spec.backoff?.initial);
  const max = ms('backoff.max', spec.backoff?.max);
  if (initial !== undefined && max !== undefined && initial > max) problems.push(`backoff.initial (${spec.backoff?.initial}) must not be greater than backoff.max (${spec.backoff?.max})`);
  const multiplier = spec.backoff?.multiplier;
  if (multiplier !== undefined && !(multiplier >= 1)) problems.push(`backoff.multiplier must be >= 1, got ${multiplier}`);
  const jitter = spec.backoff?.jitter;
  if (jitter !== undefined && !(jitter >= 0 && jitter <= 1)) problems.push(`backoff.jitter must be between 0 and 1, got ${jitter}`);
  const timeout = ms('handlerTimeout', spec.handlerTimeout);
  if (timeout === 0) problems.push('handlerTimeout must be greater than 0');
  return problems;
}

/** The Subscriptions of the policy's namespace that name it. */
export function subscriptionsUsing(policy: DLQPolicy, subscriptions: readonly Subscription[]): Subscription[] {
  return subscriptions.filter((s) => s.metadata.namespace === policy.metadata.namespace && s.spec.dlqPolicy === policy.metadata.name && s.metadata.deletionTimestamp == null);
}

/** What the DLQPolicy reconciler reads and writes through. */
export interface DLQPolicyReconcilerOptions {
  policies: Pick<ObjectCache<DLQPolicy>, 'get'>;
  subscriptions: Pick<ObjectCache<Subscription>, 'list'>;
  kube: KmqObjectClient;
  now?: () => Date;
}

/**
 * DLQPolicy: pure configuration, with no broker object of its own (the sidecars apply it).
 * The reconciler checks the settings and reports which Subscriptions use it and the dead
 * letters they hold (the sum of their status.dlqDepth, read from the cache: no broker call).
 * It needs no finalizer: a Subscription naming a missing policy reports DLQPolicyNotFound.
 */
export class DLQPolicyReconciler {
  private readonly now: () => Date;

  constructor(private readonly options: DLQPolicyReconcilerOptions) {
    this.now = options.now ?? (() => new Date());
  }

  readonly reconcile = async (key: string): Promise<ReconcileResult> => {
    const cached = this.options.policies.get(key);
    if (cached === undefined || cached.metadata.deletionTimestamp != null) return {};
    const policy = structuredClone(cached);
    const generation = policy.metadata.generation;
    const users = subscriptionsUsing(policy, this.options.subscriptions.list(policy.metadata.namespace));
    const problems = validateDlqPolicy(policy.spec ?? {});
    const depths = users.map((s) => s.status?.dlqDepth).filter((d): d is number => typeof d === 'number');
    const names = users.map((s) => s.metadata.name ?? '').sort();
    const conditions =
      problems.length === 0
        ? markReady(policy.status?.conditions, DLQPolicyReason.Valid, names.length === 0 ? 'Valid; no Subscription uses it' : `Valid; used by ${names.join(', ')}`, generation, this.now())
        : markDegraded(policy.status?.conditions, DLQPolicyReason.InvalidSpec, problems.join('; '), generation, this.now());
    const status: DLQPolicyStatus = {
      subscriptions: users.length,
      ...(depths.length === 0 ? {} : { dlqDepth: depths.reduce((a, b) => a + b, 0) }),
      ...(generation === undefined ? {} : { observedGeneration: generation }),
      conditions,
    };
    await writeStatus(this.options.kube, 'dlqpolicies', policy, status);
    return {};
  };
}

/** Where a DLQPolicy controller runs. */
export interface DLQPolicyControllerOptions {
  kubeConfig: KubeConfig;
  manager: Manager;
  namespace?: string;
  kube?: KmqObjectClient;
  probe?: OperatorProbe;
  logger?: Logger;
}

/** The DLQPolicy controller: DLQPolicies, re-reconciled when a Subscription of their namespace changes. */
export function dlqPolicyController(options: DLQPolicyControllerOptions): Controller {
  const { kubeConfig, manager, namespace } = options;
  const policies = manager.informer(customObjectListWatch<DLQPolicy>(kubeConfig, { group: GROUP, version: VERSION, plural: 'dlqpolicies', namespace }));
  const subscriptions = manager.informer(customObjectListWatch<Subscription>(kubeConfig, { group: GROUP, version: VERSION, plural: 'subscriptions', namespace }));
  const reconciler = new DLQPolicyReconciler({ policies, subscriptions, kube: options.kube ?? kmqObjectClient(kubeConfig) });
  const reconcile: Reconciler = (key) => reconciler.reconcile(key);
  return new Controller({ name: 'dlq-policy', reconcile: options.probe ? options.probe.timed('dlq-policy', reconcile) : reconcile, logger: options.logger ?? silentLogger() })
    .watch(policies)
    // A Subscription that names another policy, or none any more, changes the counts of the old one too: every policy of the namespace is looked at.
    .watch(subscriptions, (sub) => policies.list(sub.metadata.namespace).map((p) => objectKey(p)));
}
