import type { Command } from 'commander';
import { KmqClient } from '../client/index.js';
import { createLogger } from '../lib/logger.js';
import { parseOutput } from './output.js';
import type { OutputFormat } from './output.js';

export interface CommonFlags {
  broker?: string;
  output?: string;
}

/** Adds --broker to a command (and --output to read commands). */
export function withBroker(cmd: Command, read = false): Command {
  cmd.option('--broker <host:port>', 'broker address (default: KMQ_BROKER, else 127.0.0.1:9092)');
  if (read) cmd.option('--output <format>', 'table | json', 'table');
  return cmd;
}

/** A client for one CLI command: short retries, so a missing broker is reported quickly. */
export function clientFor(flags: CommonFlags): KmqClient {
  return new KmqClient({
    ...(flags.broker === undefined ? {} : { brokers: [flags.broker] }),
    clientId: 'kmq-cli',
    connectTimeoutMs: 5000,
    retry: { retries: 3, initialMs: 100, maxMs: 1000 },
    logger: createLogger({ component: 'cli', level: process.env.KMQ_LOG_LEVEL ?? 'warn', destination: process.stderr }),
  });
}

export function outputOf(flags: CommonFlags): OutputFormat {
  return parseOutput(flags.output ?? 'table');
}

/** Runs fn with a client and always closes it. */
export async function withClient<T>(flags: CommonFlags, fn: (client: KmqClient) => Promise<T>): Promise<T> {
  const client = clientFor(flags);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}
