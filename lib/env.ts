/**
 * Every environment variable kmq reads, in one table. Each is a default for a
 * command-line flag or option; an explicit flag wins.
 */
export const EnvVar = {
  /** Broker address for clients and the CLI: host:port. */
  broker: 'KMQ_BROKER',
  /** pino log level: trace, debug, info, warn, error, silent. */
  logLevel: 'KMQ_LOG_LEVEL',
  /** Broker data folder. */
  dataDir: 'KMQ_DATA_DIR',
  /** Broker: the coordination store of its cluster (none | etcd | kubernetes). */
  clusterStore: 'KMQ_CLUSTER_STORE',
  /** Broker: comma-separated etcd URLs for the etcd cluster store. */
  etcdEndpoints: 'KMQ_ETCD_ENDPOINTS',
  /** Broker: the cluster's name, naming its keys in the coordination store. */
  clusterName: 'KMQ_CLUSTER_NAME',
  /** Broker: the namespace of the kubernetes cluster store (the pod's own, from the downward API). */
  podNamespace: 'POD_NAMESPACE',
  /** Broker: a kubeconfig file for the kubernetes cluster store outside a pod (unset: the pod's service account). */
  kubeconfig: 'KUBECONFIG',
  /** Broker listen port. */
  port: 'KMQ_PORT',
  /** Broker HTTP port for /metrics, /healthz and /readyz. */
  httpPort: 'KMQ_HTTP_PORT',
  /** Sidecar: a YAML (or JSON) file of sidecar settings; the variables below override it. */
  sidecarConfig: 'KMQ_SIDECAR_CONFIG',
  /** Sidecar: address the app-facing gRPC server listens on (default 127.0.0.1: loopback only). */
  sidecarHost: 'KMQ_SIDECAR_HOST',
  /** Sidecar: gRPC listen port (default 50051; 0 picks a free one). */
  sidecarPort: 'KMQ_SIDECAR_PORT',
  /** Sidecar: the namespace it serves. */
  sidecarNamespace: 'KMQ_SIDECAR_NAMESPACE',
  /** Sidecar: the app's AppCallback port for push subscriptions. */
  sidecarAppPort: 'KMQ_SIDECAR_APP_PORT',
  /** Sidecar: largest payload accepted from the app (bytes, or 512KiB, 1MiB...). */
  sidecarMaxPayload: 'KMQ_SIDECAR_MAX_PAYLOAD_BYTES',
  /** Sidecar: subscriptions as a YAML or JSON list (replaces the file's list). */
  sidecarSubscriptions: 'KMQ_SIDECAR_SUBSCRIPTIONS',
} as const;
export type EnvVar = (typeof EnvVar)[keyof typeof EnvVar];

export function readEnv(name: EnvVar): string | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}
