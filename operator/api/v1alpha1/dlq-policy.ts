import type { CommonStatus, KmqResource } from './meta.js';
import { ageColumn, DURATION_PATTERN, duration, durationMsExpr, integer, object, readyColumn, statusSchema } from './schema.js';
import type { KindDefinition, JsonSchema } from './schema.js';

/** The longest delay a Node timer keeps (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * How a Subscription retries a message its handler did not handle, and when it
 * gives up and dead-letters it (sidecar/delivery/retry-policy.ts). Pure
 * configuration: it has no broker-side object, so no brokerCluster and no
 * deletionPolicy; the dead-letter topics belong to the Subscriptions.
 */
export interface DLQPolicySpec {
  /** Handler calls in total, the first delivery included, before the message is dead-lettered. Default 5. */
  maxAttempts?: number;
  /** Delay before retry n: initial · multiplier^(n-1), spread by ±jitter, at most max. */
  backoff?: { initial?: string; max?: string; multiplier?: number; jitter?: number };
  /** A handler that has not answered after this long has failed the attempt. Default 30s. */
  handlerTimeout?: string;
}

export interface DLQPolicyStatus extends CommonStatus {
  /** Subscriptions of the namespace that use this policy. */
  subscriptions?: number;
  /** Dead letters held for those subscriptions, in total. */
  dlqDepth?: number;
}

export type DLQPolicy = KmqResource<'DLQPolicy', DLQPolicySpec, DLQPolicyStatus>;

const both = `self.initial.matches('${DURATION_PATTERN}') && self.max.matches('${DURATION_PATTERN}')`;

const backoff: JsonSchema = object<NonNullable<DLQPolicySpec['backoff']>>(
  'Exponential backoff between attempts.',
  {
    initial: duration('Delay before the first retry.', { default: '200ms', maxMs: MAX_TIMER_MS }),
    max: duration('Upper bound of any retry delay.', { default: '30s', maxMs: MAX_TIMER_MS }),
    multiplier: { type: 'number', description: 'Growth of the delay per retry.', default: 2, minimum: 1, maximum: 1000 },
    jitter: { type: 'number', description: 'Random spread of each delay as a fraction: 0.2 means ±20 %.', default: 0.2, minimum: 0, maximum: 1 },
  },
  {
    // The defaults fill both fields, so they are always there to compare.
    default: {},
    'x-kubernetes-validations': [
      {
        rule: `!has(self.initial) || !has(self.max) || !(${both}) || ${durationMsExpr('self.initial')} <= ${durationMsExpr('self.max')}`,
        message: 'backoff.initial must not be greater than backoff.max',
        fieldPath: '.initial',
      },
    ],
  },
);

export const dlqPolicyKind: KindDefinition = {
  kind: 'DLQPolicy',
  plural: 'dlqpolicies',
  singular: 'dlqpolicy',
  shortNames: ['kdlq'],
  description: 'A kmq dead-letter policy: retries with backoff, then the dead-letter target. Subscriptions name it in spec.dlqPolicy.',
  spec: object<DLQPolicySpec>('The retry and dead-letter settings.', {
    maxAttempts: integer('Handler calls in total, the first delivery included, before the message is dead-lettered.', 1, 1_000_000, 5),
    backoff,
    handlerTimeout: duration('A handler that has not answered after this long has failed the attempt.', { default: '30s', minMs: 1, maxMs: MAX_TIMER_MS }),
  }),
  status: statusSchema('Who uses the policy.', {
    subscriptions: { type: 'integer', minimum: 0, description: 'Subscriptions of the namespace that use this policy.' },
    dlqDepth: { type: 'integer', format: 'int64', minimum: 0, description: 'Dead letters held for those subscriptions.' },
  }),
  printerColumns: [
    { name: 'Max Attempts', type: 'integer', jsonPath: '.spec.maxAttempts' },
    { name: 'Initial', type: 'string', jsonPath: '.spec.backoff.initial' },
    { name: 'Max', type: 'string', jsonPath: '.spec.backoff.max' },
    { name: 'Subscriptions', type: 'integer', jsonPath: '.status.subscriptions' },
    { name: 'DLQ', type: 'integer', jsonPath: '.status.dlqDepth', description: 'Dead letters held' },
    readyColumn,
    ageColumn,
  ],
};
