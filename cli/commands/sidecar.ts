import type { Command } from 'commander';
import { loadSidecarOptions, runSidecar } from '../../sidecar/main.js';
import type { SidecarOptions } from '../../sidecar/main.js';
import { intArg } from '../args.js';

interface SidecarFlags {
  config?: string;
  broker?: string;
  host?: string;
  port?: string;
  namespace?: string;
  appPort?: string;
  maxPayloadBytes?: string;
}

/** Flags win over the environment (KMQ_SIDECAR_*, KMQ_BROKER), which wins over the file. */
export function sidecarOptionsFrom(f: SidecarFlags, env: NodeJS.ProcessEnv = process.env): SidecarOptions {
  const o = loadSidecarOptions(f.config, env);
  if (f.broker !== undefined) o.broker = f.broker;
  if (f.host !== undefined) o.host = f.host;
  if (f.port !== undefined) o.port = intArg('--port', f.port, 0);
  if (f.namespace !== undefined) o.namespace = f.namespace;
  if (f.appPort !== undefined) o.appPort = intArg('--app-port', f.appPort, 0);
  if (f.maxPayloadBytes !== undefined) o.maxPayloadBytes = f.maxPayloadBytes;
  return o;
}

export function registerSidecarCommand(program: Command): void {
  program
    .command('sidecar')
    .description('run one sidecar: the app-facing gRPC API (publish, consume) in front of a broker')
    .option('--config <file>', 'YAML or JSON settings file (env KMQ_SIDECAR_CONFIG)')
    .option('--broker <host:port>', 'broker address (env KMQ_BROKER, else 127.0.0.1:9092)')
    .option('--host <addr>', 'gRPC listen address (env KMQ_SIDECAR_HOST, default 127.0.0.1)')
    .option('--port <n>', 'gRPC listen port, 0 for any free one (env KMQ_SIDECAR_PORT, default 50051)')
    .option('--namespace <name>', 'namespace served (env KMQ_SIDECAR_NAMESPACE)')
    .option('--app-port <n>', "the app's AppCallback port for push subscriptions (env KMQ_SIDECAR_APP_PORT)")
    .option('--max-payload-bytes <size>', 'largest payload accepted, e.g. 1MiB (env KMQ_SIDECAR_MAX_PAYLOAD_BYTES)')
    .action(async (flags: SidecarFlags) => {
      await runSidecar(sidecarOptionsFrom(flags));
    });
}
