// Building blocks of the structural OpenAPI v3 schemas of the kmq.dev/v1alpha1 kinds.
// crds/ is generated from these objects (operator/api/crd-gen.ts); nothing else writes it.

import { DELETION_POLICIES } from './meta.js';
import type { Retention } from './meta.js';

/** The subset of apiextensions.k8s.io/v1 JSONSchemaProps the kmq schemas use. */
export interface JsonSchema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  format?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  enum?: Array<string | number>;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  'x-kubernetes-int-or-string'?: true;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-validations'?: ValidationRule[];
}

/** A CEL rule of `x-kubernetes-validations`. */
export interface ValidationRule {
  rule: string;
  message: string;
  /** Where the error is reported, relative to the schema the rule sits on (e.g. `.max`). */
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** An additional printer column of `kubectl get`. */
export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  /** 0 shows in `kubectl get`, 1 only with `-o wide`. */
  priority?: number;
}

/** Everything the CRD generator needs to know about one kind. */
export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: JsonSchema;
  status: JsonSchema;
  printerColumns: PrinterColumn[];
  /** Rules on the whole object (they may read metadata.name). */
  validations?: ValidationRule[];
}

/**
 * An object schema whose properties are exactly the keys of `T`: the compiler
 * keeps a spec interface and its schema in step.
 */
export function object<T>(description: string, properties: { [K in keyof Required<T>]: JsonSchema }, extra: Omit<JsonSchema, 'type' | 'properties' | 'description'> = {}): JsonSchema {
  return { type: 'object', description, ...extra, properties: properties as Record<string, JsonSchema> };
}

export function withRules(schema: JsonSchema, ...rules: ValidationRule[]): JsonSchema {
  return { ...schema, 'x-kubernetes-validations': [...(schema['x-kubernetes-validations'] ?? []), ...rules] };
}

/** A rule that rejects any change of the field it sits on. */
export function immutable(field: string, why = ''): ValidationRule {
  return { rule: 'self == oldSelf', message: `${field} is immutable${why === '' ? '' : `: ${why}`}` };
}

/**
 * A rule for an optional field, placed on its parent: the field may be neither set,
 * unset nor changed after creation.
 */
export function immutableOptional(field: string, why = ''): ValidationRule {
  return {
    rule: `has(self.${field}) == has(oldSelf.${field}) && (!has(self.${field}) || self.${field} == oldSelf.${field})`,
    message: `${field} is immutable${why === '' ? '' : `: ${why}`}`,
    fieldPath: `.${field}`,
  };
}

/** A Kubernetes object name (DNS-1123 subdomain) of at most 128 characters, which keeps `<namespace>.<name>` within the broker's 200. */
export const NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const MAX_NAME_LENGTH = 128;

/** A reference to another kmq object of the same namespace, by name. */
export function nameRef(description: string): JsonSchema {
  return { type: 'string', description, minLength: 1, maxLength: MAX_NAME_LENGTH, pattern: NAME_PATTERN };
}

/**
 * A duration: digits and one unit, ms, s, m, h or d ("200ms", "30s", "7d"), as
 * lib/duration.ts parses it. The digit counts keep every value below 2^53 ms.
 */
export const DURATION_PATTERN = '^([0-9]{1,12}ms|[0-9]{1,9}s|[0-9]{1,8}m|[0-9]{1,6}h|[0-9]{1,5}d)$';

/** The CEL expression of a duration string `s` in milliseconds; `s` must match DURATION_PATTERN. */
export function durationMsExpr(s: string): string {
  return (
    `int(${s}.find('^[0-9]+')) * (${s}.endsWith('ms') ? 1 : ${s}.endsWith('s') ? 1000 : ` +
    `${s}.endsWith('m') ? 60000 : ${s}.endsWith('h') ? 3600000 : 86400000)`
  );
}

/** `ms` in the largest unit that divides it ("12h", "100ms"); a timer's limit as "2147483647 ms (about 24.8 days)". */
export function formatDurationMs(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return ms > 86_400_000 ? `${ms} ms (about ${(ms / 86_400_000).toFixed(1)} days)` : `${ms}ms`;
}

/** A duration string; `maxMs` bounds it (a Node timer holds at most 2^31-1 ms). */
export function duration(description: string, opts: { default?: string; minMs?: number; maxMs?: number; unlimited?: boolean } = {}): JsonSchema {
  const unlimited = opts.unlimited ?? false;
  const format = `must be a duration: digits and a unit ms, s, m, h or d (e.g. 200ms, 30s, 7d)${unlimited ? ', or unlimited' : ''}`;
  const rules: ValidationRule[] = [{ rule: `${unlimited ? "self == 'unlimited' || " : ''}self.matches('${DURATION_PATTERN}')`, message: format }];
  const guard = `${unlimited ? "self == 'unlimited' || " : ''}!self.matches('${DURATION_PATTERN}') || `;
  if (opts.minMs !== undefined && opts.minMs > 0) rules.push({ rule: `${guard}${durationMsExpr('self')} >= ${opts.minMs}`, message: `must be at least ${formatDurationMs(opts.minMs)}` });
  if (opts.maxMs !== undefined) rules.push({ rule: `${guard}${durationMsExpr('self')} <= ${opts.maxMs}`, message: `must be at most ${formatDurationMs(opts.maxMs)}` });
  return {
    type: 'string',
    description,
    ...(opts.default === undefined ? {} : { default: opts.default }),
    maxLength: 16,
    'x-kubernetes-validations': rules,
  };
}

/** Bytes as an integer or a Kubernetes-style quantity without fraction ("512Ki", "20Gi", "1G"). */
export const QUANTITY_PATTERN = '^[0-9]{1,15}(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$';

/** A byte size: an integer or a quantity string; `unlimited` also allows the string "unlimited". */
export function byteSize(description: string, opts: { default?: string | number; unlimited?: boolean; min?: number } = {}): JsonSchema {
  const unlimited = opts.unlimited ?? false;
  const min = opts.min ?? 0;
  return {
    description,
    ...(opts.default === undefined ? {} : { default: opts.default }),
    'x-kubernetes-int-or-string': true,
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    maxLength: 24,
    'x-kubernetes-validations': [
      {
        rule: `type(self) == int ? self >= ${min} : (${unlimited ? "self == 'unlimited' || " : ''}self.matches('${QUANTITY_PATTERN}'))`,
        message: `must be a number of bytes${min > 0 ? ` (at least ${min})` : ''} or a quantity such as 512Ki, 64Mi or 20Gi${unlimited ? ', or unlimited' : ''}`,
      },
    ],
  };
}

export function integer(description: string, minimum: number, maximum: number, def?: number): JsonSchema {
  return { type: 'integer', description, ...(def === undefined ? {} : { default: def }), minimum, maximum };
}

export function enumOf(description: string, values: readonly string[], def?: string): JsonSchema {
  return { type: 'string', description, ...(def === undefined ? {} : { default: def }), enum: [...values] };
}

export function stringMap(description: string, maxProperties: number, maxValueLength = 1024): JsonSchema {
  return { type: 'object', description, maxProperties, additionalProperties: { type: 'string', maxLength: maxValueLength } };
}

export function deletionPolicySchema(what: string): JsonSchema {
  return enumOf(
    `What deleting this resource does to ${what}: Retain (default) keeps it and every message in it; Delete removes it; DeleteIfEmpty removes it only when it holds no messages and otherwise keeps it.`,
    DELETION_POLICIES,
    'Retain',
  );
}

export const brokerClusterSchema: JsonSchema = {
  ...nameRef('The BrokerCluster (same namespace) that holds this object. Default: the only BrokerCluster of the namespace; with none or several, the resource is not Ready until one is named.'),
  maxLength: 40,
};

/** metav1.Condition. */
export const conditionSchema: JsonSchema = {
  type: 'object',
  description: 'A standard condition (metav1.Condition).',
  required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
  properties: {
    type: { type: 'string', description: 'Ready or Degraded.', maxLength: 316, pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0, description: 'The metadata.generation the condition was set from.' },
    lastTransitionTime: { type: 'string', format: 'date-time', description: 'When the status last changed.' },
    reason: { type: 'string', description: 'A CamelCase reason, stable for programs.', minLength: 1, maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
    message: { type: 'string', description: 'For humans.', maxLength: 32768 },
  },
};

/** The status fields every kind has, then the kind's own. */
export function statusSchema(description: string, own: Record<string, JsonSchema>): JsonSchema {
  return {
    type: 'object',
    description,
    properties: {
      observedGeneration: { type: 'integer', format: 'int64', minimum: 0, description: 'The metadata.generation the status describes.' },
      conditions: {
        type: 'array',
        description: 'Ready, and Degraded when something needs attention.',
        maxItems: 16,
        items: conditionSchema,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
      },
      ...own,
    },
  };
}

/** The rule on metadata.name shared by the kinds that have a broker-side name `<namespace>.<name>`. */
export const brokerSideNameRule: ValidationRule = {
  rule: `self.metadata.name.size() <= ${MAX_NAME_LENGTH}`,
  message: `metadata.name must be at most ${MAX_NAME_LENGTH} characters: the broker-side name is <namespace>.<name>`,
};

/** The printer columns every kind ends with. */
export const readyColumn: PrinterColumn = { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', description: 'The Ready condition' };
export const reasonColumn: PrinterColumn = { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason', description: 'Why it is (not) Ready', priority: 1 };
export const ageColumn: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export function retentionSchema(of: string): JsonSchema {
  return object<Retention>(`How long ${of} keeps messages: the older or larger part is removed, acknowledged or not.`, {
    time: duration('Age after which a segment is removed, or unlimited. Default: the broker\'s (7d).', { minMs: 1, unlimited: true }),
    bytes: byteSize('Size per partition above which the oldest segments are removed, or unlimited. Default: the broker\'s (unlimited).', { unlimited: true }),
  });
}
