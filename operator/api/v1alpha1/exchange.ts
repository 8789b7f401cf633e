import type { ClusterScopedSpec, CommonStatus, KmqResource } from './meta.js';
import {
  ageColumn,
  brokerClusterSchema,
  brokerSideNameRule,
  deletionPolicySchema,
  enumOf,
  immutable,
  immutableOptional,
  nameRef,
  object,
  readyColumn,
  reasonColumn,
  statusSchema,
  withRules,
} from './schema.js';
import type { KindDefinition } from './schema.js';

export const EXCHANGE_TYPES = ['direct', 'topic', 'fanout', 'headers'] as const;
export type ExchangeType = (typeof EXCHANGE_TYPES)[number];

/**
 * A router: a message published to it goes to every Queue and Topic whose
 * binding (in their spec) matches. It stores no messages.
 */
export interface ExchangeSpec extends ClusterScopedSpec {
  /** direct: exact key; topic: key patterns; fanout: every binding; headers: header match. Immutable. */
  type: ExchangeType;
  /** Where a message no binding matches goes instead of being dropped. */
  alternate?: { kind: 'Queue' | 'Topic'; name: string };
}

export interface ExchangeStatus extends CommonStatus {
  /** The name of the exchange on the broker: `<namespace>.<name>`. */
  brokerName?: string;
  /** Bindings the broker holds for this exchange. */
  bindings?: number;
  /** Messages routed to at least one destination, since the broker started. */
  routed?: number;
  /** Messages no binding matched, since the broker started. */
  unroutable?: number;
}

export type Exchange = KmqResource<'Exchange', ExchangeSpec, ExchangeStatus>;

const spec = object<ExchangeSpec>(
  'The desired exchange.',
  {
    brokerCluster: brokerClusterSchema,
    deletionPolicy: deletionPolicySchema('the exchange on the broker (it holds no messages; empty: no bindings left)'),
    type: withRules(enumOf('direct: exact routing key; topic: key patterns (* one word, # zero or more); fanout: every binding; headers: header match. Immutable.', EXCHANGE_TYPES), immutable('type', 'create a new Exchange to change it')),
    alternate: object<NonNullable<ExchangeSpec['alternate']>>(
      'Where a message that no binding matches goes, instead of being dropped.',
      { kind: enumOf('Queue or Topic.', ['Queue', 'Topic']), name: nameRef('The Queue or Topic (same namespace).') },
      { required: ['kind', 'name'] },
    ),
  },
  { required: ['type'], 'x-kubernetes-validations': [immutableOptional('brokerCluster', 'an exchange cannot move between clusters')] },
);

export const exchangeKind: KindDefinition = {
  kind: 'Exchange',
  plural: 'exchanges',
  singular: 'exchange',
  shortNames: ['kx', 'kexchange'],
  description: 'A kmq exchange: routes published messages to the Queues and Topics bound to it.',
  spec,
  status: statusSchema('The exchange as the broker reports it.', {
    brokerName: { type: 'string', description: 'The exchange\'s name on the broker: <namespace>.<name>.' },
    bindings: { type: 'integer', minimum: 0, description: 'Bindings the broker holds.' },
    routed: { type: 'integer', format: 'int64', minimum: 0, description: 'Messages routed, since the broker started.' },
    unroutable: { type: 'integer', format: 'int64', minimum: 0, description: 'Messages no binding matched, since the broker started.' },
  }),
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type' },
    readyColumn,
    { name: 'Bindings', type: 'integer', jsonPath: '.status.bindings' },
    { name: 'Unroutable', type: 'integer', jsonPath: '.status.unroutable', priority: 1 },
    reasonColumn,
    ageColumn,
  ],
  validations: [brokerSideNameRule],
};
