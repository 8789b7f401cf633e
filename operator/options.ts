import { ErrorCode, KmqError } from '../lib/errors.js';
import { parseDurationMs } from '../lib/duration.js';
import { DEFAULT_BROKER_IMAGE } from './builders/meta.js';
import { DEFAULT_WEBHOOK_CONFIGURATION } from './webhook/injector.js';
import { DEFAULT_WEBHOOK_PORT } from './webhook/server.js';

/** The Kubernetes downward-API variable that names the operator's own namespace (the Lease's and the webhook Secret's). */
export const POD_NAMESPACE_ENV = 'POD_NAMESPACE';

/**
 * Settings of `kmq operator`, as given (flags). Every field is optional; compileOperatorOptions
 * fills in the defaults documented here and checks every value once.
 */
export interface OperatorOptions {
  /** Watch one namespace only. Default: every namespace. */
  namespace?: string;
  /** Run controllers only while holding the Lease. Default true. */
  leaderElect?: boolean | string;
  /** The Lease's namespace. Default: $POD_NAMESPACE (required when electing). */
  leaderElectNamespace?: string;
  /** The Lease's name. Default kmq-operator. */
  leaseName?: string;
  /** Lease timings (durations: 15s, 10s, 2s by default, as client-go). */
  leaseDuration?: string;
  renewDeadline?: string;
  retryPeriod?: string;
  /** This replica's name in the Lease. Default: hostname plus a random suffix. */
  identity?: string;
  /** Address of /healthz, /readyz and /metrics. Default 0.0.0.0. */
  healthHost?: string;
  /** Port of /healthz, /readyz and /metrics; 0 picks a free one. Default 8081. */
  healthPort?: number | string;
  /** Serve the sidecar-injection webhook. Default true. */
  webhook?: boolean;
  /** HTTPS port of the webhook; 0 picks a free one. Default 9443. */
  webhookPort?: number | string;
  /** Address the webhook listens on. Default 0.0.0.0. */
  webhookHost?: string;
  /** The webhook's Service (the names its certificate covers). Default kmq-webhook. */
  webhookService?: string;
  /** The Secret holding the webhook's CA and serving certificate. Default kmq-webhook-tls. */
  webhookSecret?: string;
  /** The MutatingWebhookConfiguration whose caBundle the operator keeps. Default kmq-sidecar-injector. */
  webhookConfiguration?: string;
  /** More names or addresses the webhook certificate covers (comma-separated; 127.0.0.1 for local runs). */
  webhookExtraSans?: string;
  /** The broker image a BrokerCluster gets when it names none. Default the operator's own version. */
  brokerImage?: string;
  /** The sidecar image injected when a BrokerCluster names none. Default the operator's own version. */
  sidecarImage?: string;
  /** Pull policy of those images. Default IfNotPresent. */
  imagePullPolicy?: string;
  /**
   * For tests and local runs outside the cluster only: every BrokerCluster's brokers are
   * reached at this host:port instead of `<name>-client.<namespace>.svc:9092`.
   */
  brokerAddressOverride?: string;
  /** How long a stop waits for reconciles in flight. Default 30s. */
  drainTimeout?: string;
}

/** OperatorOptions with every default filled in and every value checked. */
export interface CompiledOperatorOptions {
  namespace: string | undefined;
  leaderElection:
    | { namespace: string; name: string; identity: string | undefined; leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number }
    | undefined;
  health: { host: string; port: number };
  webhook: { host: string; port: number; namespace: string; serviceName: string; secretName: string; configurationName: string; extraSans: string[] } | undefined;
  brokerImage: string;
  sidecarImage: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  brokerAddressOverride: string | undefined;
  drainTimeoutMs: number;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;

function invalid(setting: string, message: string, value: unknown): KmqError {
  return new KmqError(ErrorCode.InvalidConfig, `Operator setting ${setting}: ${message}, got ${JSON.stringify(value)}`, { setting }, { retriable: false });
}

function dnsLabel(setting: string, value: string): string {
  if (value.length > 63 || !DNS_LABEL.test(value)) throw invalid(setting, 'must be a DNS label (lower-case letters, digits and -, at most 63)', value);
  return value;
}

function dnsName(setting: string, value: string): string {
  if (value.length > 253 || !DNS_SUBDOMAIN.test(value)) throw invalid(setting, 'must be a DNS subdomain name', value);
  return value;
}

function port(setting: string, value: number | string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535 || (typeof value === 'string' && value.trim() === '')) throw invalid(setting, 'must be a port from 0 to 65535', value);
  return n;
}

function bool(setting: string, value: boolean | string): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw invalid(setting, 'must be true or false', value);
}

function durationMs(setting: string, value: string, min: number): number {
  let ms: number;
  try {
    ms = parseDurationMs(value, setting);
  } catch {
    throw invalid(setting, 'must be a duration such as 500ms, 10s or 1m', value);
  }
  if (ms < min) throw invalid(setting, `must be at least ${min} ms`, value);
  return ms;
}

function hostPort(setting: string, value: string): string {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d+)$/.exec(value);
  if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65535) throw invalid(setting, 'must be host:port', value);
  return value;
}

/** Fills in the defaults and checks every setting; the error of an invalid one names it. */
export function compileOperatorOptions(o: OperatorOptions, env: NodeJS.ProcessEnv = process.env): CompiledOperatorOptions {
  const podNamespace = env[POD_NAMESPACE_ENV] === '' ? undefined : env[POD_NAMESPACE_ENV];
  const namespace = o.namespace === undefined || o.namespace === '' ? undefined : dnsLabel('namespace', o.namespace);

  let leaderElection: CompiledOperatorOptions['leaderElection'];
  if (bool('leader-elect', o.leaderElect ?? true)) {
    const ns = o.leaderElectNamespace ?? podNamespace;
    if (ns === undefined || ns === '') {
      throw invalid('leader-elect-namespace', `is required for leader election (or set ${POD_NAMESPACE_ENV}, or --leader-elect=false)`, ns ?? null);
    }
    const leaseDurationMs = durationMs('lease-duration', o.leaseDuration ?? '15s', 1000);
    const renewDeadlineMs = durationMs('renew-deadline', o.renewDeadline ?? '10s', 500);
    const retryPeriodMs = durationMs('retry-period', o.retryPeriod ?? '2s', 100);
    if (renewDeadlineMs >= leaseDurationMs) throw invalid('renew-deadline', 'must be shorter than lease-duration', o.renewDeadline ?? '10s');
    if (retryPeriodMs >= renewDeadlineMs) throw invalid('retry-period', 'must be shorter than renew-deadline', o.retryPeriod ?? '2s');
    if (o.identity !== undefined && o.identity.trim() === '') throw invalid('identity', 'must not be empty', o.identity);
    leaderElection = {
      namespace: dnsLabel('leader-elect-namespace', ns),
      name: dnsName('lease-name', o.leaseName ?? 'kmq-operator'),
      identity: o.identity,
      leaseDurationMs,
      renewDeadlineMs,
      retryPeriodMs,
    };
  }

  let webhook: CompiledOperatorOptions['webhook'];
  if (o.webhook ?? true) {
    if (podNamespace === undefined) throw invalid('webhook', `needs ${POD_NAMESPACE_ENV} (the namespace of its Secret and Service); or run with --no-webhook`, null);
    webhook = {
      host: o.webhookHost ?? '0.0.0.0',
      port: port('webhook-port', o.webhookPort ?? DEFAULT_WEBHOOK_PORT),
      namespace: dnsLabel(POD_NAMESPACE_ENV, podNamespace),
      serviceName: dnsLabel('webhook-service', o.webhookService ?? 'kmq-webhook'),
      secretName: dnsName('webhook-secret', o.webhookSecret ?? 'kmq-webhook-tls'),
      configurationName: dnsName('webhook-configuration', o.webhookConfiguration ?? DEFAULT_WEBHOOK_CONFIGURATION),
      extraSans: (o.webhookExtraSans ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''),
    };
  }

  const image = (setting: string, value: string | undefined): string => {
    if (value === undefined) return DEFAULT_BROKER_IMAGE;
    if (value.trim() === '' || /\s/.test(value)) throw invalid(setting, 'must be an image reference', value);
    return value;
  };
  const pullPolicy = o.imagePullPolicy ?? 'IfNotPresent';
  if (!(PULL_POLICIES as readonly string[]).includes(pullPolicy)) throw invalid('image-pull-policy', `must be one of ${PULL_POLICIES.join(', ')}`, pullPolicy);

  return {
    namespace,
    leaderElection,
    health: { host: o.healthHost ?? '0.0.0.0', port: port('health-port', o.healthPort ?? 8081) },
    webhook,
    brokerImage: image('broker-image', o.brokerImage),
    sidecarImage: image('sidecar-image', o.sidecarImage),
    imagePullPolicy: pullPolicy as CompiledOperatorOptions['imagePullPolicy'],
    brokerAddressOverride: o.brokerAddressOverride === undefined ? undefined : hostPort('broker-address-override', o.brokerAddressOverride),
    drainTimeoutMs: durationMs('drain-timeout', o.drainTimeout ?? '30s', 0),
  };
}
