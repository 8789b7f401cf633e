import type { ClusterScopedSpec, CommonStatus, KmqResource } from './meta.js';
import {
  ageColumn,
  brokerClusterSchema,
  brokerSideNameRule,
  deletionPolicySchema,
  duration,
  enumOf,
  immutableOptional,
  integer,
  nameRef,
  object,
  readyColumn,
  reasonColumn,
  statusSchema,
} from './schema.js';
import type { KindDefinition, ValidationRule } from './schema.js';

export const SUBSCRIPTION_MODES = ['ordered', 'shared'] as const;
export const DELIVERY_GUARANTEES = ['at-most-once', 'at-least-once', 'effectively-once'] as const;
/** The header that carries a message's idempotency key unless a Subscription names another. */
export const DEFAULT_IDEMPOTENCY_KEY_HEADER = 'x-kmq-idempotency-key';

/**
 * A consumer group on a Topic or a Queue, served to apps by their sidecar
 * (sidecar/config.ts SubscriptionConfig). `ordered`: one consumer per partition,
 * committed offsets; `shared`: any consumer gets any message, acked one by one.
 */
export interface SubscriptionSpec extends ClusterScopedSpec {
  /** The Topic read; exactly one of topic and queue. Immutable. */
  topic?: string;
  /** The Queue read (always shared). Immutable. */
  queue?: string;
  /** Default: ordered for a topic, shared for a queue. Immutable. */
  mode?: (typeof SUBSCRIPTION_MODES)[number];
  /** Most deliveries sent to the app and not yet settled. Default 100. */
  maxInFlight?: number;
  /** Ordered, with no committed offset yet: start at the earliest (default) or the latest record. */
  startFrom?: 'earliest' | 'latest';
  /** The DLQPolicy (same namespace) with the retry and dead-letter settings. Default: DLQPolicy's defaults. */
  dlqPolicy?: string;
  /** Ordered: the topic dead letters go to. Default `<name>.dlq`. */
  deadLetterTopic?: string;
  /** Ordered: how a failed record waits for its next attempt. Default in-place. */
  retry?: { mode?: 'in-place' | 'topic'; topic?: string };
  /** Default at-least-once. */
  guarantee?: (typeof DELIVERY_GUARANTEES)[number];
  /** effectively-once: where the key is and how long a processed key is remembered. */
  idempotency?: { keyHeader?: string; processedKeyTtl?: string };
  /** Default: pull, through the sidecar's Consume stream. */
  delivery?: { push?: { port?: number } };
  /** Ordered: offset commits batched by count and time. */
  commit?: { maxCount?: number; interval?: string };
  /** Ordered: move the group's committed offsets; applied once per requestId. */
  reset?: OffsetReset;
}

/** A declarative offset reset: the operator applies it once for each new requestId. */
export interface OffsetReset {
  /** earliest, latest, or an RFC 3339 timestamp (the first record at or after it). */
  to: string;
  /** Any new value requests a new reset with the same or another `to`. */
  requestId: string;
}

export interface SubscriptionStatus extends CommonStatus {
  /** The effective mode. */
  mode?: (typeof SUBSCRIPTION_MODES)[number];
  /** The consumer group on the broker: `<namespace>.<name>`. */
  brokerGroup?: string;
  /** Records not yet consumed: over every partition (ordered) or ready in the queue (shared). */
  lag?: number;
  /** Members of the group. */
  consumers?: number;
  /** Dead letters held for this subscription. */
  dlqDepth?: number;
  /** The last reset applied. */
  lastReset?: { requestId: string; to: string; time: string };
}

export type Subscription = KmqResource<'Subscription', SubscriptionSpec, SubscriptionStatus>;

/** The CEL expression of the effective mode of `s`. */
const mode = (s: string): string => `(has(${s}.mode) ? ${s}.mode : (has(${s}.topic) ? 'ordered' : 'shared'))`;
const source = (s: string): string => `(has(${s}.topic) ? 'topic ' + ${s}.topic : has(${s}.queue) ? 'queue ' + ${s}.queue : '')`;
const orderedOnly = (field: string): ValidationRule => ({
  rule: `${mode('self')} == 'ordered' || !has(self.${field})`,
  message: `${field} applies to ordered subscriptions`,
  fieldPath: `.${field}`,
});

const RFC3339 = '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$';

const reset = object<OffsetReset>(
  'A declarative offset reset of an ordered subscription, applied once per requestId.',
  {
    to: {
      type: 'string',
      description: 'earliest, latest, or an RFC 3339 timestamp: each partition restarts at its first record at or after it.',
      maxLength: 40,
      'x-kubernetes-validations': [
        { rule: `self == 'earliest' || self == 'latest' || self.matches('${RFC3339}')`, message: 'reset.to must be earliest, latest or an RFC 3339 timestamp (e.g. 2026-01-31T12:00:00Z)' },
      ],
    },
    requestId: { type: 'string', description: 'Identifies the request: change it to reset again.', minLength: 1, maxLength: 63 },
  },
  {
    required: ['to', 'requestId'],
    'x-kubernetes-validations': [{ rule: 'self.requestId != oldSelf.requestId || self.to == oldSelf.to', message: 'a new reset.to needs a new reset.requestId' }],
  },
);

const spec = object<SubscriptionSpec>(
  'The desired subscription.',
  {
    brokerCluster: brokerClusterSchema,
    deletionPolicy: deletionPolicySchema('the consumer group, its committed offsets and its dead-letter and retry topics (empty: no lag and no dead letters)'),
    topic: nameRef('The Topic (same namespace) read. Give exactly one of topic and queue. Immutable.'),
    queue: nameRef('The Queue (same namespace) read; always shared. Immutable.'),
    mode: enumOf('ordered: one consumer per partition, per-partition order, committed offsets. shared: any consumer gets any message, acked one by one. Default: ordered for a topic, shared for a queue. Immutable.', SUBSCRIPTION_MODES),
    maxInFlight: integer('Most deliveries sent to the app and not yet settled.', 1, 65_535, 100),
    startFrom: enumOf('Ordered, with no committed offset yet: earliest (default) or latest.', ['earliest', 'latest']),
    dlqPolicy: nameRef('The DLQPolicy (same namespace) with the retry and dead-letter settings. Default: the DLQPolicy defaults.'),
    deadLetterTopic: nameRef('Ordered: the Topic dead letters go to. Default <name>.dlq, created when missing.'),
    retry: object<NonNullable<SubscriptionSpec['retry']>>(
      'Ordered: in-place (default) retries a record while its partition waits, keeping per-key order; topic writes it to a retry topic and moves on.',
      {
        mode: enumOf('in-place or topic.', ['in-place', 'topic'], 'in-place'),
        topic: nameRef('mode topic: the retry Topic. Default <name>.retry.'),
      },
      { 'x-kubernetes-validations': [{ rule: "!has(self.topic) || self.mode == 'topic'", message: 'retry.topic applies to retry.mode topic', fieldPath: '.topic' }] },
    ),
    guarantee: enumOf('at-most-once, at-least-once or effectively-once.', DELIVERY_GUARANTEES, 'at-least-once'),
    idempotency: object<NonNullable<SubscriptionSpec['idempotency']>>('effectively-once: the idempotency key and how long a processed key is remembered.', {
      keyHeader: { type: 'string', description: 'The message header holding the idempotency key.', default: DEFAULT_IDEMPOTENCY_KEY_HEADER, minLength: 1, maxLength: 255, pattern: '^[a-z0-9][-a-z0-9_.]*$' },
      processedKeyTtl: duration('How long a processed key is remembered.', { default: '24h', minMs: 1, maxMs: 365 * 86_400_000 }),
    }),
    delivery: object<NonNullable<SubscriptionSpec['delivery']>>('How deliveries reach the app. Default: pull, through the sidecar\'s Consume stream.', {
      push: object<NonNullable<NonNullable<SubscriptionSpec['delivery']>['push']>>('The sidecar pushes to the app\'s AppCallback gRPC service.', {
        port: integer('The app\'s AppCallback port. Default: the pod\'s kmq.dev/app-port annotation.', 1, 65_535),
      }),
    }),
    commit: object<NonNullable<SubscriptionSpec['commit']>>('Ordered: offset commits, batched by count and time (and on shutdown).', {
      maxCount: integer('Acknowledged records per commit.', 1, 1_000_000, 1000),
      interval: duration('Longest time between commits.', { default: '1s', maxMs: 3_600_000 }),
    }),
    reset,
  },
  {
    'x-kubernetes-validations': [
      { rule: 'has(self.topic) != has(self.queue)', message: 'give exactly one of topic and queue' },
      { rule: "!has(self.queue) || !has(self.mode) || self.mode == 'shared'", message: 'a queue is always consumed shared: mode must be shared or unset', fieldPath: '.mode' },
      orderedOnly('startFrom'),
      orderedOnly('deadLetterTopic'),
      orderedOnly('retry'),
      orderedOnly('reset'),
      orderedOnly('commit'),
      { rule: '!has(self.topic) || !has(self.deadLetterTopic) || self.deadLetterTopic != self.topic', message: 'deadLetterTopic must differ from the topic consumed', fieldPath: '.deadLetterTopic' },
      { rule: '!has(self.topic) || !has(self.retry) || !has(self.retry.topic) || self.retry.topic != self.topic', message: 'retry.topic must differ from the topic consumed', fieldPath: '.retry' },
      { rule: `${source('self')} == ${source('oldSelf')}`, message: 'topic and queue are immutable: create a new Subscription to read another source' },
      { rule: `${mode('self')} == ${mode('oldSelf')}`, message: 'mode is immutable: create a new Subscription to change it' },
      immutableOptional('brokerCluster', 'a consumer group cannot move between clusters'),
    ],
  },
);

export const subscriptionKind: KindDefinition = {
  kind: 'Subscription',
  plural: 'subscriptions',
  singular: 'subscription',
  shortNames: ['ksub'],
  description: 'A kmq subscription: a consumer group on a Topic or Queue that the sidecar serves to the app.',
  spec,
  status: statusSchema('The consumer group as the broker reports it.', {
    mode: enumOf('The effective mode.', SUBSCRIPTION_MODES),
    brokerGroup: { type: 'string', description: 'The consumer group on the broker: <namespace>.<name>.' },
    lag: { type: 'integer', format: 'int64', minimum: 0, description: 'Records not yet consumed.' },
    consumers: { type: 'integer', minimum: 0, description: 'Members of the group.' },
    dlqDepth: { type: 'integer', format: 'int64', minimum: 0, description: 'Dead letters held for this subscription.' },
    lastReset: {
      type: 'object',
      description: 'The last offset reset applied.',
      properties: { requestId: { type: 'string' }, to: { type: 'string' }, time: { type: 'string', format: 'date-time' } },
    },
  }),
  printerColumns: [
    { name: 'Topic', type: 'string', jsonPath: '.spec.topic' },
    { name: 'Queue', type: 'string', jsonPath: '.spec.queue' },
    { name: 'Mode', type: 'string', jsonPath: '.status.mode' },
    readyColumn,
    { name: 'Lag', type: 'integer', jsonPath: '.status.lag', description: 'Records not yet consumed' },
    { name: 'DLQ', type: 'integer', jsonPath: '.status.dlqDepth', description: 'Dead letters held' },
    reasonColumn,
    ageColumn,
  ],
  validations: [brokerSideNameRule],
};
