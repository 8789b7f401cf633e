import { createLogger } from '../lib/logger.js';
import { compileSidecarOptions } from './config.js';
import type { SidecarOptions } from './config.js';
import { SidecarGrpcServer } from './server/server.js';

export { compileSidecarOptions, loadSidecarOptions, DEFAULT_SIDECAR_PORT } from './config.js';
export type { CompiledSidecarOptions, SidecarOptions, SubscriptionConfig } from './config.js';
export { SidecarGrpcServer } from './server/server.js';

/**
 * Runs one sidecar until SIGINT/SIGTERM, then stops it cleanly. Entry point for
 * `kmq sidecar`. Options are validated first: a bad setting throws before
 * anything listens. Logs 'Sidecar started' with the bound port.
 */
export async function runSidecar(options: SidecarOptions): Promise<SidecarGrpcServer> {
  const compiled = compileSidecarOptions(options);
  const logger = createLogger({ component: 'sidecar' });
  const server = await SidecarGrpcServer.start(compiled, logger);
  logger.info(
    { host: compiled.host, port: server.port, metricsPort: server.metricsPort, brokers: compiled.brokers, namespace: compiled.namespace, subscriptions: [...compiled.subscriptions.keys()] },
    'Sidecar started',
  );
  const shutdown = (signal: string): void => {
    logger.info({ signal }, 'Shutting down');
    server.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'Shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  return server;
}
