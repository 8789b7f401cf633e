import type { V1Container, V1Pod, V1ResourceRequirements } from '@kubernetes/client-node';
import { APP_PORT_ANNOTATION, INJECT_LABEL, SUBSCRIPTIONS_ANNOTATION } from '../api/v1alpha1/annotations.js';

/** The name of the injected container; its presence is what makes injection idempotent. */
export const SIDECAR_CONTAINER_NAME = 'kmq-sidecar';
/** Set on every injected pod; the value is the operator version that injected it. */
export const INJECTED_ANNOTATION = 'kmq.dev/injected';
/** The sidecar's gRPC port inside the pod (loopback only). */
export const SIDECAR_PORT = 50051;
/** The sidecar's /metrics, /healthz and /readyz port (its gRPC port + 1, loopback only). */
export const SIDECAR_HEALTH_PORT = SIDECAR_PORT + 1;
/** The uid and gid the sidecar runs as (the "nonroot" user of distroless images). */
export const SIDECAR_USER = 65532;
/** Namespaces whose pods are never mutated, whatever their labels. */
export const ALWAYS_SKIPPED_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease'];

/** Defaults of the sidecar's requests and limits, when the BrokerCluster sets none. */
export const DEFAULT_SIDECAR_RESOURCES: V1ResourceRequirements = {
  requests: { cpu: '50m', memory: '64Mi' },
  limits: { cpu: '1', memory: '256Mi' },
};

/** One RFC 6902 operation. */
export interface JsonPatchOp {
  op: 'add' | 'replace' | 'remove';
  path: string;
  value?: unknown;
}

/** What the pod asks for through its annotations. */
export interface InjectionRequest {
  /** Subscription names (same namespace), in annotation order, without duplicates. */
  subscriptions: string[];
  /** The app's AppCallback gRPC port, for push subscriptions. */
  appPort?: number;
}

/** What to do with a pod: leave it, inject the sidecar, or refuse it with a message for its creator. */
export type InjectionDecision = { action: 'skip'; reason: string } | { action: 'inject'; request: InjectionRequest } | { action: 'deny'; message: string };

/** The sidecar's settings once the pod's request has been resolved against the namespace's kmq objects. */
export interface SidecarContext {
  /** The pod's namespace (the admission request's: a pod being created may have none in its metadata). */
  namespace: string;
  /** host:port of the BrokerCluster's client Service: `<cluster>-client.<namespace>.svc:9092`. */
  brokerAddress: string;
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** The arguments of the image's entrypoint (`kmq`). Default `['sidecar']`. */
  args?: string[];
  resources?: V1ResourceRequirements;
  /**
   * The sidecar's subscription settings (sidecar/config.ts SubscriptionConfig), resolved from the
   * Subscription and DLQPolicy objects the pod names; put in KMQ_SIDECAR_SUBSCRIPTIONS as JSON.
   */
  subscriptions: readonly object[];
  appPort?: number;
  /** The value of the kmq.dev/injected annotation. */
  version: string;
}

// A Kubernetes object name (RFC 1123 subdomain), as the Subscription CRD requires.
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_SUBSCRIPTIONS = 100;

/** The injected container, in initContainers or (after a hand edit) containers. */
export function hasSidecar(pod: V1Pod): boolean {
  const named = (cs: V1Container[] | undefined): boolean => (cs ?? []).some((c) => c.name === SIDECAR_CONTAINER_NAME);
  return named(pod.spec?.initContainers) || named(pod.spec?.containers);
}

/** Parses `kmq.dev/subscriptions` and `kmq.dev/app-port`; throws an Error whose message names the annotation. */
export function parseInjectionAnnotations(annotations: Record<string, string> | undefined): InjectionRequest {
  const subs = annotations?.[SUBSCRIPTIONS_ANNOTATION];
  const subscriptions: string[] = [];
  if (subs !== undefined && subs.trim() !== '') {
    for (const raw of subs.split(',')) {
      const name = raw.trim();
      if (name === '') throw new Error(`annotation ${SUBSCRIPTIONS_ANNOTATION} has an empty name in ${JSON.stringify(subs)}: give comma-separated Subscription names`);
      if (name.length > 253 || !NAME.test(name)) {
        throw new Error(`annotation ${SUBSCRIPTIONS_ANNOTATION}: ${JSON.stringify(name)} is not a Subscription name (lowercase letters, digits, '-' and '.')`);
      }
      if (subscriptions.includes(name)) throw new Error(`annotation ${SUBSCRIPTIONS_ANNOTATION} names ${JSON.stringify(name)} twice`);
      subscriptions.push(name);
    }
    if (subscriptions.length > MAX_SUBSCRIPTIONS) throw new Error(`annotation ${SUBSCRIPTIONS_ANNOTATION} names ${subscriptions.length} subscriptions, more than ${MAX_SUBSCRIPTIONS}`);
  }
  const port = annotations?.[APP_PORT_ANNOTATION];
  if (port === undefined) return { subscriptions };
  const n = /^[0-9]{1,5}$/.test(port.trim()) ? Number(port.trim()) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new Error(`annotation ${APP_PORT_ANNOTATION} must be a port number from 1 to 65535 (got ${JSON.stringify(port)})`);
  if (n === SIDECAR_PORT || n === SIDECAR_HEALTH_PORT) {
    throw new Error(`annotation ${APP_PORT_ANNOTATION} is ${n}, a port of the sidecar (${SIDECAR_PORT} gRPC, ${SIDECAR_HEALTH_PORT} health): the app must listen on another`);
  }
  return { subscriptions, appPort: n };
}

/**
 * Decides, from the pod alone, whether it gets the sidecar. Pods of kube-system (and the other
 * kube-* namespaces) and of `protectedNamespaces` (the operator's own) are never touched, even
 * if the webhook configuration's selectors let them through.
 */
export function decideInjection(pod: V1Pod, namespace: string, protectedNamespaces: readonly string[] = []): InjectionDecision {
  if (ALWAYS_SKIPPED_NAMESPACES.includes(namespace) || protectedNamespaces.includes(namespace)) return { action: 'skip', reason: `namespace ${namespace} is never injected` };
  if (pod.metadata?.labels?.[INJECT_LABEL] !== 'true') return { action: 'skip', reason: `no ${INJECT_LABEL}=true label` };
  if (hasSidecar(pod)) return { action: 'skip', reason: 'already injected' };
  let request: InjectionRequest;
  try {
    request = parseInjectionAnnotations(pod.metadata?.annotations);
  } catch (err) {
    return { action: 'deny', message: `kmq sidecar injection: ${(err as Error).message}` };
  }
  if (pod.spec?.hostNetwork === true) {
    return { action: 'deny', message: `kmq sidecar injection: a hostNetwork pod shares the node's loopback, where the sidecar's ports ${SIDECAR_PORT} and ${SIDECAR_HEALTH_PORT} would clash with other pods'` };
  }
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const p of c.ports ?? []) {
      if (p.containerPort === SIDECAR_PORT || p.containerPort === SIDECAR_HEALTH_PORT) {
        return { action: 'deny', message: `kmq sidecar injection: container ${c.name} uses port ${p.containerPort}, which the sidecar listens on` };
      }
    }
  }
  return { action: 'inject', request };
}

/** The sidecar container: a native sidecar (an init container that keeps running), Pod Security `restricted`. */
export function sidecarContainer(ctx: SidecarContext): V1Container {
  const env = [
    { name: 'KMQ_BROKER', value: ctx.brokerAddress },
    { name: 'KMQ_SIDECAR_NAMESPACE', value: ctx.namespace },
    { name: 'KMQ_SIDECAR_HOST', value: '127.0.0.1' },
    { name: 'KMQ_SIDECAR_PORT', value: String(SIDECAR_PORT) },
  ];
  if (ctx.appPort !== undefined) env.push({ name: 'KMQ_SIDECAR_APP_PORT', value: String(ctx.appPort) });
  if (ctx.subscriptions.length > 0) env.push({ name: 'KMQ_SIDECAR_SUBSCRIPTIONS', value: JSON.stringify(ctx.subscriptions) });
  // The sidecar serves /readyz on loopback only, which the kubelet cannot reach: the probe runs in the container.
  const readyz = ['node', '-e', `fetch('http://127.0.0.1:${SIDECAR_HEALTH_PORT}/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`];
  const container: V1Container = {
    name: SIDECAR_CONTAINER_NAME,
    image: ctx.image,
    args: ctx.args ?? ['sidecar'],
    restartPolicy: 'Always',
    env,
    resources: ctx.resources ?? DEFAULT_SIDECAR_RESOURCES,
    // The app starts once the sidecar has started (a native sidecar with a startup probe).
    startupProbe: { exec: { command: readyz }, periodSeconds: 1, timeoutSeconds: 5, failureThreshold: 120 },
    readinessProbe: { exec: { command: readyz }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
    securityContext: {
      runAsNonRoot: true,
      runAsUser: SIDECAR_USER,
      runAsGroup: SIDECAR_USER,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (ctx.imagePullPolicy !== undefined) container.imagePullPolicy = ctx.imagePullPolicy;
  return container;
}

/** `/` and `~` escaped for a JSON pointer segment (RFC 6901). */
function pointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * The JSON patch that injects the sidecar: first of the init containers (so it runs before any
 * other init container and the app), plus the kmq.dev/injected annotation. Empty for a pod that
 * already has the sidecar.
 */
export function injectionPatch(pod: V1Pod, ctx: SidecarContext): JsonPatchOp[] {
  if (hasSidecar(pod)) return [];
  const ops: JsonPatchOp[] = [];
  const container = sidecarContainer(ctx);
  if (pod.spec?.initContainers === undefined || pod.spec.initContainers === null) ops.push({ op: 'add', path: '/spec/initContainers', value: [container] });
  else ops.push({ op: 'add', path: '/spec/initContainers/0', value: container });
  if (pod.metadata?.annotations === undefined || pod.metadata.annotations === null) ops.push({ op: 'add', path: '/metadata/annotations', value: { [INJECTED_ANNOTATION]: ctx.version } });
  else ops.push({ op: 'add', path: `/metadata/annotations/${pointer(INJECTED_ANNOTATION)}`, value: ctx.version });
  return ops;
}
