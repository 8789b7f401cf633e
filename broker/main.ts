import { createLogger } from '../lib/logger.js';
import { Broker } from './broker.js';
import type { BrokerOptions } from './options.js';

export { Broker } from './broker.js';
export type { BrokerOptions } from './options.js';

/**
 * Runs one broker until SIGINT/SIGTERM, then stops it cleanly. Entry point for
 * `kmq broker` and `kmq dev`.
 */
export async function runBroker(options: BrokerOptions): Promise<Broker> {
  const logger = createLogger({ component: 'broker' });
  const broker = await Broker.start(options, logger);
  const shutdown = (signal: string): void => {
    logger.info({ signal }, 'Shutting down');
    broker.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'Shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  return broker;
}
