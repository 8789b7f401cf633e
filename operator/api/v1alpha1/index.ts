import { brokerClusterKind } from './broker-cluster.js';
import { dlqPolicyKind } from './dlq-policy.js';
import { exchangeKind } from './exchange.js';
import { queueKind } from './queue.js';
import type { KindDefinition } from './schema.js';
import { subscriptionKind } from './subscription.js';
import { topicKind } from './topic.js';

export * from './annotations.js';
export * from './bindings.js';
export * from './broker-cluster.js';
export * from './dlq-policy.js';
export * from './exchange.js';
export * from './meta.js';
export * from './queue.js';
export * from './schema.js';
export * from './subscription.js';
export * from './topic.js';

/** Every kind of kmq.dev/v1alpha1, in the order crds/ and the docs list them. */
export const KINDS: readonly KindDefinition[] = [brokerClusterKind, topicKind, queueKind, exchangeKind, subscriptionKind, dlqPolicyKind];
