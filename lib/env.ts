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
  /** Broker listen port. */
  port: 'KMQ_PORT',
  /** Broker HTTP port for /metrics, /healthz and /readyz. */
  httpPort: 'KMQ_HTTP_PORT',
} as const;
export type EnvVar = (typeof EnvVar)[keyof typeof EnvVar];

export function readEnv(name: EnvVar): string | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}
