import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parseBrokerAddress } from '../client/index.js';
import { invalidSetting, intSetting, oneOfSetting, stringSetting } from '../client/settings.js';
import { EnvVar } from '../lib/env.js';
import { parseBytes, parseDurationMs } from '../lib/duration.js';
import { ErrorCode, KmqError } from '../lib/errors.js';
import { compileGuarantee } from './delivery/guarantee.js';
import type { DeliveryGuarantee } from './delivery/guarantee.js';
import { compileRetryPolicy } from './delivery/retry-policy.js';
import type { CompiledRetryPolicy, RetryPolicy } from './delivery/retry-policy.js';
import { IDEMPOTENCY_KEY_HEADER } from './server/headers.js';

/** The sidecar's default gRPC port (the port gRPC examples use). */
export const DEFAULT_SIDECAR_PORT = 50051;

/** How a subscription's consumers share its messages. */
export type SubscriptionMode = 'ordered' | 'shared';

/** One subscription the sidecar serves to the app (a Subscription resource). */
export interface SubscriptionConfig {
  /** Unique; the consumer group of an ordered subscription. Letters, digits, '.', '_', '-'. */
  name: string;
  /** The topic consumed; exactly one of topic and queue. */
  topic?: string;
  /** The queue consumed (always shared). */
  queue?: string;
  /**
   * ordered: a consumer group, one consumer per partition, per-partition order,
   * committed offsets; one Consume stream at a time per sidecar. shared: any
   * consumer gets any message, acked one by one. Default: ordered for a topic,
   * shared for a queue.
   */
  mode?: SubscriptionMode;
  /** Most deliveries sent to the app and not yet settled. Default 100. */
  maxInFlight?: number;
  /** Ordered, with no committed offset yet: start at the earliest (default) or the latest record. */
  startFrom?: 'earliest' | 'latest';
  /** Retries and max attempts. */
  retryPolicy?: RetryPolicy;
  /** Ordered: the topic dead letters go to. Default `<name>.dlq` (created when missing). */
  deadLetterTopic?: string;
  /** Ordered: how a failed record waits for its next attempt. Default `{mode: in-place}`. */
  retry?: RetrySettings;
  /**
   * The DLQPolicy shape of retryPolicy (`{maxAttempts, backoff: {initial, max, multiplier,
   * jitter}, handlerTimeoutMs}`); give one of the two.
   */
  dlqPolicy?: DlqPolicy;
  /** at-most-once, at-least-once (default) or effectively-once. */
  guarantee?: DeliveryGuarantee;
  /** Effectively-once: the record header holding the idempotency key. Default x-kmq-idempotency-key. */
  idempotencyKeyHeader?: string;
  /** Effectively-once: how long a processed key is remembered. Default 24 h. */
  processedKeyTtlMs?: number | string;
  /** How deliveries reach the app. Default: pull, through Consume streams. */
  delivery?: { push?: { port?: number } };
  /** Ordered: offset commits batched by count and time (and on shutdown). Defaults 1000 records, 1 s. */
  commit?: { maxCount?: number; intervalMs?: number | string };
}

/**
 * How an ordered subscription retries. `in-place` (default): the record is delivered
 * again after its backoff while its partition waits, so per-key order is kept.
 * `topic`: the record is written to a retry topic with its next attempt, due time,
 * origin and failure history, and counts as done at its source, so the partition
 * moves on (per-key order is NOT kept); a consumer group `<name>.retry` reads the
 * retry topic and delivers each record on the same stream once it is due.
 */
export interface RetrySettings {
  /** `in-place` (default) or `topic`. */
  mode?: RetryMode;
  /** mode topic: the retry topic. Default `<name>.retry` (created when missing, 1 partition). */
  topic?: string;
}

/** Where a failed record of an ordered subscription waits for its next attempt. */
export type RetryMode = 'in-place' | 'topic';

/** RetrySettings compiled: the retry topic and its consumer group with mode topic. */
export type CompiledRetry = { mode: 'in-place' } | { mode: 'topic'; topic: string; group: string };

/** A DLQPolicy resource's spec. */
export interface DlqPolicy {
  maxAttempts?: number;
  backoff?: { initial?: number | string; max?: number | string; multiplier?: number; jitter?: number };
  handlerTimeoutMs?: number | string;
}

/** Settings of one sidecar. Every field has a documented default. */
export interface SidecarOptions {
  /** Broker address, host:port (a comma-separated list for several). Default: KMQ_BROKER, else 127.0.0.1:9092. */
  broker?: string;
  /** The namespace served; reported in logs (scoping of names comes with authentication). Default 'default'. */
  namespace?: string;
  /** Listen address of the gRPC server. Default 127.0.0.1 (loopback only). */
  host?: string;
  /** Listen port of the gRPC server; 0 picks a free port. Default 50051. */
  port?: number;
  /** The app's AppCallback port for push subscriptions; 0 = none. Default 0. */
  appPort?: number;
  /** Largest payload accepted from the app, bytes (or '512KiB', '1MiB'). Default 1 MiB. */
  maxPayloadBytes?: number | string;
  /** Longest delay_ms a Publish may ask for (or '30s', '5m'). Default 60 s. */
  maxPublishDelayMs?: number | string;
  /** Default none. */
  subscriptions?: SubscriptionConfig[];
  /** On SIGTERM, how long in-flight handlers may still finish (or '10s'). Default 10 s. */
  shutdownGraceMs?: number | string;
  /** Port of the HTTP server with /metrics, /healthz and /readyz. Default port + 1 (0 when port is 0: any free port). */
  metricsPort?: number;
}

export interface CompiledSubscription {
  name: string;
  /** The topic or queue read. */
  source: { kind: 'topic' | 'queue'; name: string };
  mode: SubscriptionMode;
  maxInFlight: number;
  startFrom: 'earliest' | 'latest';
  retryPolicy: CompiledRetryPolicy;
  deadLetterTopic: string;
  /** Ordered: in place, or through a retry topic; a shared subscription is always `in-place` (it nacks with a delay). */
  retry: CompiledRetry;
  guarantee: DeliveryGuarantee;
  idempotencyKeyHeader: string;
  processedKeyTtlMs: number;
  /** Push: the app's AppCallback port; undefined for pull (Consume). */
  pushPort: number | undefined;
  commitMaxCount: number;
  commitIntervalMs: number;
}

export interface CompiledSidecarOptions {
  brokers: string[];
  namespace: string;
  host: string;
  port: number;
  appPort: number;
  maxPayloadBytes: number;
  maxPublishDelayMs: number;
  subscriptions: ReadonlyMap<string, CompiledSubscription>;
  shutdownGraceMs: number;
  metricsPort: number;
}

const NAME = /^[A-Za-z0-9._-]{1,200}$/;
const OPTION_KEYS: ReadonlySet<string> = new Set(['broker', 'namespace', 'host', 'port', 'appPort', 'maxPayloadBytes', 'maxPublishDelayMs', 'subscriptions', 'shutdownGraceMs', 'metricsPort']);
const SUBSCRIPTION_KEYS: ReadonlySet<string> = new Set([
  'name',
  'topic',
  'queue',
  'mode',
  'maxInFlight',
  'startFrom',
  'retryPolicy',
  'deadLetterTopic',
  'retry',
  'dlqPolicy',
  'guarantee',
  'idempotencyKeyHeader',
  'processedKeyTtlMs',
  'delivery',
  'commit',
]);
const DLQ_POLICY_KEYS: ReadonlySet<string> = new Set(['maxAttempts', 'backoff', 'handlerTimeoutMs']);
const BACKOFF_KEYS: ReadonlySet<string> = new Set(['initial', 'max', 'multiplier', 'jitter']);

function checkKeys(setting: string, o: object, allowed: ReadonlySet<string>): void {
  for (const k of Object.keys(o)) {
    if (!allowed.has(k)) throw invalidSetting(`${setting}${setting === '' ? '' : '.'}${k}`, `is not a setting (known: ${[...allowed].join(', ')})`, (o as Record<string, unknown>)[k]);
  }
}

function nameSetting(setting: string, value: unknown): string {
  const s = stringSetting(setting, value, '');
  if (!NAME.test(s)) throw invalidSetting(setting, 'must be 1-200 letters, digits, ".", "_" or "-"', value);
  return s;
}

function objectSetting(setting: string, value: unknown, allowed: ReadonlySet<string>): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidSetting(setting, 'must be an object', value);
  checkKeys(setting, value, allowed);
  return value as Record<string, unknown>;
}

function durationMs(setting: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' && typeof value !== 'string') throw invalidSetting(setting, 'must be a duration such as 200ms or 30s', value);
  return intSetting(setting, parseDurationMs(value, setting), fallback, min, max);
}

/** The retry policy from retryPolicy or from a DLQPolicy-shaped dlqPolicy. */
function retryPolicyOf(s: SubscriptionConfig, where: string): CompiledRetryPolicy {
  if (s.dlqPolicy === undefined) return compileRetryPolicy(s.retryPolicy ?? {}, `${where}.retryPolicy`);
  if (s.retryPolicy !== undefined) throw invalidSetting(`${where}.dlqPolicy`, 'give one of retryPolicy and dlqPolicy', s.dlqPolicy);
  const d = objectSetting(`${where}.dlqPolicy`, s.dlqPolicy, DLQ_POLICY_KEYS) as DlqPolicy;
  const b = d.backoff === undefined ? {} : (objectSetting(`${where}.dlqPolicy.backoff`, d.backoff, BACKOFF_KEYS) as NonNullable<DlqPolicy['backoff']>);
  const policy: RetryPolicy = { maxAttempts: d.maxAttempts, initialBackoffMs: b.initial, maxBackoffMs: b.max, multiplier: b.multiplier, jitter: b.jitter, handlerTimeoutMs: d.handlerTimeoutMs };
  for (const k of Object.keys(policy) as Array<keyof RetryPolicy>) if (policy[k] === undefined) delete policy[k];
  return compileRetryPolicy(policy, `${where}.dlqPolicy`);
}

const IN_PLACE: CompiledRetry = Object.freeze({ mode: 'in-place' });

function retryOf(s: SubscriptionConfig, where: string, name: string, mode: SubscriptionMode, sourceTopic: string, deadLetterTopic: string): CompiledRetry {
  if (s.retry === undefined) return IN_PLACE;
  if (mode === 'shared') {
    throw invalidSetting(`${where}.retry`, 'applies to ordered subscriptions; a shared subscription or a queue retries by releasing the message with a delay', s.retry);
  }
  const r = objectSetting(`${where}.retry`, s.retry, new Set(['mode', 'topic'])) as RetrySettings;
  const retryMode = oneOfSetting<RetryMode>(`${where}.retry.mode`, r.mode, 'in-place', ['in-place', 'topic']);
  if (retryMode === 'in-place') {
    if (r.topic !== undefined) throw invalidSetting(`${where}.retry.topic`, "applies to retry.mode 'topic'", r.topic);
    return IN_PLACE;
  }
  const topic = r.topic === undefined ? `${name}.retry` : nameSetting(`${where}.retry.topic`, r.topic);
  if (topic === sourceTopic) throw invalidSetting(`${where}.retry.topic`, 'must differ from the topic consumed', r.topic);
  if (topic === deadLetterTopic) throw invalidSetting(`${where}.retry.topic`, 'must differ from the dead-letter topic', r.topic ?? topic);
  return { mode: 'topic', topic, group: `${name}.retry` };
}

function pushPortOf(s: SubscriptionConfig, where: string, appPort: number): number | undefined {
  if (s.delivery === undefined) return undefined;
  const d = objectSetting(`${where}.delivery`, s.delivery, new Set(['push']));
  if (d.push === undefined) return undefined;
  const p = objectSetting(`${where}.delivery.push`, d.push, new Set(['port']));
  const port = intSetting(`${where}.delivery.push.port`, p.port, appPort, 0, 65535);
  if (port === 0) throw invalidSetting(`${where}.delivery.push.port`, "is required (the app's AppCallback port), or set appPort", p.port);
  return port;
}

function compileSubscription(s: SubscriptionConfig, i: number, appPort: number): CompiledSubscription {
  const at = `subscriptions[${i}]`;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw invalidSetting(at, 'must be an object', s);
  checkKeys(at, s, SUBSCRIPTION_KEYS);
  const name = nameSetting(`${at}.name`, s.name ?? '');
  const where = `subscriptions[${i}] (${name})`;
  if ((s.topic === undefined) === (s.queue === undefined)) throw invalidSetting(`${where}.topic`, 'give exactly one of topic and queue', { topic: s.topic, queue: s.queue });
  const source = s.topic !== undefined ? { kind: 'topic' as const, name: nameSetting(`${where}.topic`, s.topic) } : { kind: 'queue' as const, name: nameSetting(`${where}.queue`, s.queue) };
  const mode = oneOfSetting<SubscriptionMode>(`${where}.mode`, s.mode, source.kind === 'topic' ? 'ordered' : 'shared', ['ordered', 'shared']);
  if (mode === 'ordered' && source.kind === 'queue') throw invalidSetting(`${where}.mode`, "a queue is always consumed 'shared'", s.mode);
  const commit = (s.commit === undefined ? {} : objectSetting(`${where}.commit`, s.commit, new Set(['maxCount', 'intervalMs']))) as NonNullable<SubscriptionConfig['commit']>;
  const deadLetterTopic = s.deadLetterTopic === undefined ? `${name}.dlq` : nameSetting(`${where}.deadLetterTopic`, s.deadLetterTopic);
  if (s.deadLetterTopic !== undefined && mode === 'shared') {
    throw invalidSetting(`${where}.deadLetterTopic`, "applies to ordered subscriptions; a shared one dead-letters to its queue's dead-letter queue", s.deadLetterTopic);
  }
  const retry = retryOf(s, where, name, mode, source.name, deadLetterTopic);
  return {
    name,
    source,
    mode,
    maxInFlight: intSetting(`${where}.maxInFlight`, s.maxInFlight, 100, 1, 0xffff),
    startFrom: oneOfSetting(`${where}.startFrom`, s.startFrom, 'earliest', ['earliest', 'latest'] as const),
    retryPolicy: retryPolicyOf(s, where),
    deadLetterTopic,
    retry,
    guarantee: compileGuarantee(s.guarantee, `${where}.guarantee`),
    idempotencyKeyHeader: stringSetting(`${where}.idempotencyKeyHeader`, s.idempotencyKeyHeader, IDEMPOTENCY_KEY_HEADER),
    processedKeyTtlMs: durationMs(`${where}.processedKeyTtlMs`, s.processedKeyTtlMs, 86_400_000, 1, 365 * 86_400_000),
    pushPort: pushPortOf(s, where, appPort),
    commitMaxCount: intSetting(`${where}.commit.maxCount`, commit.maxCount, 1_000, 1),
    commitIntervalMs: durationMs(`${where}.commit.intervalMs`, commit.intervalMs, 1_000, 0, 3_600_000),
  };
}

function portSetting(setting: string, value: unknown, fallback: number): number {
  return intSetting(setting, value, fallback, 0, 65535);
}

/**
 * Validates `o` once and fills every default. A bad setting throws
 * KmqError(InvalidConfig) whose message names it (`subscriptions[1] (billing).mode`).
 */
export function compileSidecarOptions(o: SidecarOptions = {}, env: NodeJS.ProcessEnv = process.env): CompiledSidecarOptions {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw invalidSetting('sidecar options', 'must be an object', o);
  checkKeys('', o, OPTION_KEYS);
  const broker = stringSetting('broker', o.broker, env[EnvVar.broker] || '127.0.0.1:9092');
  const brokers = broker.split(',').map((b) => b.trim()).filter((b) => b !== '');
  for (const b of brokers) {
    try {
      parseBrokerAddress(b);
    } catch (err) {
      throw invalidSetting('broker', `must be host:port[,host:port...] (${(err as Error).message})`, broker);
    }
  }
  if (brokers.length === 0) throw invalidSetting('broker', 'must be host:port[,host:port...]', broker);
  const host = stringSetting('host', o.host, '127.0.0.1');
  const maxPayloadBytes = o.maxPayloadBytes === undefined ? 1024 * 1024 : parseBytes(o.maxPayloadBytes, 'maxPayloadBytes');
  const maxPublishDelayMs = o.maxPublishDelayMs === undefined ? 60_000 : parseDurationMs(o.maxPublishDelayMs, 'maxPublishDelayMs');
  if (o.subscriptions !== undefined && !Array.isArray(o.subscriptions)) throw invalidSetting('subscriptions', 'must be a list', o.subscriptions);
  const appPort = portSetting('appPort', o.appPort, 0);
  const subscriptions = new Map<string, CompiledSubscription>();
  (o.subscriptions ?? []).forEach((s, i) => {
    const c = compileSubscription(s, i, appPort);
    if (subscriptions.has(c.name)) throw invalidSetting(`subscriptions[${i}].name`, 'is used by an earlier subscription', c.name);
    subscriptions.set(c.name, c);
  });
  // A retry topic's consumer group must not be another subscription's group.
  for (const [i, c] of [...subscriptions.values()].entries()) {
    if (c.retry.mode === 'topic' && subscriptions.has(c.retry.group)) {
      throw invalidSetting(`subscriptions[${i}] (${c.name}).retry.mode`, `needs the consumer group "${c.retry.group}" for its retry topic, and a subscription has that name`, 'topic');
    }
  }
  const port = portSetting('port', o.port, DEFAULT_SIDECAR_PORT);
  return {
    brokers,
    namespace: nameSetting('namespace', o.namespace ?? 'default'),
    host,
    port,
    appPort,
    maxPayloadBytes: intSetting('maxPayloadBytes', maxPayloadBytes, 1024 * 1024, 1, 64 * 1024 * 1024),
    maxPublishDelayMs: intSetting('maxPublishDelayMs', maxPublishDelayMs, 60_000, 0, 24 * 3_600_000),
    subscriptions,
    shutdownGraceMs: durationMs('shutdownGraceMs', o.shutdownGraceMs, 10_000, 0, 3_600_000),
    metricsPort: portSetting('metricsPort', o.metricsPort, port === 0 ? 0 : Math.min(65535, port + 1)),
  };
}

function envPort(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new KmqError(ErrorCode.InvalidConfig, `Invalid option ${name}: must be an integer port (got ${JSON.stringify(v)})`, { setting: name }, { retriable: false });
  return n;
}

/** Parses a YAML (or JSON) document of SidecarOptions; `origin` names it in errors. */
export function parseSidecarOptions(text: string, origin: string): SidecarOptions {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new KmqError(ErrorCode.InvalidConfig, `${origin} is not valid YAML: ${(err as Error).message}`, { setting: origin }, { retriable: false });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw invalidSetting(origin, 'must be a mapping of sidecar settings', doc);
  return doc as SidecarOptions;
}

/**
 * The settings from a file (`file`, else KMQ_SIDECAR_CONFIG), overridden by the
 * KMQ_SIDECAR_* variables and KMQ_BROKER; not yet validated: pass the result, with any flags
 * applied on top, to compileSidecarOptions.
 */
export function loadSidecarOptions(file?: string, env: NodeJS.ProcessEnv = process.env): SidecarOptions {
  const path = file ?? (env[EnvVar.sidecarConfig] || undefined);
  let o: SidecarOptions = {};
  if (path !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(path, 'utf8');
    } catch (err) {
      throw new KmqError(ErrorCode.InvalidConfig, `Cannot read the sidecar config file ${path}: ${(err as Error).message}`, { setting: 'config' }, { retriable: false });
    }
    o = parseSidecarOptions(text, path);
  }
  const set = <K extends keyof SidecarOptions>(key: K, value: SidecarOptions[K] | undefined): void => {
    if (value !== undefined) o[key] = value;
  };
  set('broker', env[EnvVar.broker] || undefined);
  set('host', env[EnvVar.sidecarHost] || undefined);
  set('port', envPort(env, EnvVar.sidecarPort));
  set('namespace', env[EnvVar.sidecarNamespace] || undefined);
  set('appPort', envPort(env, EnvVar.sidecarAppPort));
  set('maxPayloadBytes', env[EnvVar.sidecarMaxPayload] || undefined);
  const subs = env[EnvVar.sidecarSubscriptions];
  if (subs !== undefined && subs !== '') {
    let list: unknown;
    try {
      list = parseYaml(subs);
    } catch (err) {
      throw new KmqError(ErrorCode.InvalidConfig, `${EnvVar.sidecarSubscriptions} is not valid YAML or JSON: ${(err as Error).message}`, { setting: EnvVar.sidecarSubscriptions }, { retriable: false });
    }
    if (!Array.isArray(list)) throw invalidSetting(EnvVar.sidecarSubscriptions, 'must be a list of subscriptions', list);
    o.subscriptions = list as SubscriptionConfig[];
  }
  return o;
}
