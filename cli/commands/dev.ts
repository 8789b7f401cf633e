import type { Command } from 'commander';
import { Broker } from '../../broker/main.js';
import { compileSidecarOptions, loadSidecarOptions, SidecarGrpcServer } from '../../sidecar/main.js';
import type { SidecarOptions } from '../../sidecar/main.js';
import { createLogger } from '../../lib/logger.js';
import { intArg } from '../args.js';
import { addBrokerFlags, brokerOptionsFrom } from './broker.js';
import type { BrokerFlags } from './broker.js';

interface DevFlags extends BrokerFlags {
  sidecarPort?: string;
  config?: string;
}

/** Sidecar settings of `kmq dev`: the file (and KMQ_SIDECAR_*), then the flags; always pointed at the dev broker. */
export function devSidecarOptions(f: DevFlags, broker: string, env: NodeJS.ProcessEnv = process.env): SidecarOptions {
  const o = loadSidecarOptions(f.config, env);
  o.broker = broker;
  if (f.sidecarPort !== undefined) o.port = intArg('--sidecar-port', f.sidecarPort, 0);
  return o;
}

/**
 * `kmq dev`: a single-node broker on local storage and a sidecar in front of it, in
 * one process. SIGINT/SIGTERM stop the sidecar first (its Consume streams end and
 * unsettled deliveries go back), then the broker, then exit 0.
 */
export function registerDevCommand(program: Command): void {
  addBrokerFlags(
    program
      .command('dev')
      .description('run a single-node broker on embedded local storage (default data folder ./kmq-data, port 9092) and a sidecar (gRPC, port 50051) in front of it'),
  )
    .option('--sidecar-port <n>', 'sidecar gRPC port, 0 for any free one (default: the config file, KMQ_SIDECAR_PORT, else 50051)')
    .option('--config <file>', 'sidecar settings file, YAML or JSON: subscriptions, limits (env KMQ_SIDECAR_CONFIG)')
    .action(async (flags: DevFlags) => {
      // Checked before anything listens: a bad sidecar setting starts nothing.
      const checked = compileSidecarOptions(devSidecarOptions(flags, '127.0.0.1:9092'));

      const brokerLog = createLogger({ component: 'broker' });
      const broker = await Broker.start(brokerOptionsFrom(flags), brokerLog);
      const { host, port, httpPort } = broker.address;
      const brokerHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
      const compiled = { ...checked, brokers: [`${brokerHost.includes(':') ? `[${brokerHost}]` : brokerHost}:${port}`] };

      const sidecarLog = createLogger({ component: 'sidecar' });
      let sidecar: SidecarGrpcServer;
      try {
        sidecar = await SidecarGrpcServer.start(compiled, sidecarLog);
        sidecarLog.info({ host: compiled.host, port: sidecar.port, brokers: compiled.brokers, subscriptions: [...compiled.subscriptions.keys()] }, 'Sidecar started');
      } catch (err) {
        await broker.stop();
        throw err;
      }

      const shutdown = (signal: string): void => {
        brokerLog.info({ signal }, 'Shutting down');
        (async () => {
          await sidecar.stop();
          await broker.stop();
        })().then(
          () => process.exit(0),
          (err: unknown) => {
            brokerLog.error({ err }, 'Shutdown failed');
            process.exit(1);
          },
        );
      };
      process.once('SIGINT', () => shutdown('SIGINT'));
      process.once('SIGTERM', () => shutdown('SIGTERM'));

      process.stderr.write(
        `kmq dev: broker on ${brokerHost}:${port}` +
          (httpPort > 0 ? `, metrics on http://${brokerHost}:${httpPort}/metrics` : '') +
          `, data in ${broker.options.dataDir}\n` +
          `kmq dev: sidecar (gRPC, kmq.sidecar.v1.Sidecar) on ${compiled.host}:${sidecar.port}\n` +
          `Try: kmq topic create demo && echo hello | kmq produce demo && kmq consume demo --from earliest --max 1\n`,
      );
    });
}
