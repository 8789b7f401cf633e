#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { KmqError } from '../lib/errors.js';
import { registerBrokerCommands } from './commands/broker.js';
import { registerDevCommand } from './commands/dev.js';
import { registerTopicCommands } from './commands/topic.js';
import { registerClusterCommands } from './commands/cluster.js';
import { registerProduceCommand } from './commands/produce.js';
import { registerConsumeCommand } from './commands/consume.js';
import { registerGroupCommands } from './commands/group.js';
import { registerQueueCommands } from './commands/queue.js';
import { registerExchangeCommands } from './commands/exchange.js';
import { registerPublishCommand } from './commands/publish.js';
import { registerDlqCommands } from './commands/dlq.js';
import { registerSidecarCommand } from './commands/sidecar.js';
import { registerOperatorCommand } from './commands/operator.js';
import { CliError } from './output.js';

const program = new Command();
program
  .name('kmq')
  .description('kmq: a Kubernetes-native messaging platform (broker, topics, consumer groups, queues, exchanges, dead letters)')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerBrokerCommands(program);
registerDevCommand(program);
registerTopicCommands(program);
registerClusterCommands(program);
registerProduceCommand(program);
registerConsumeCommand(program);
registerGroupCommands(program);
registerQueueCommands(program);
registerExchangeCommands(program);
registerPublishCommand(program);
registerDlqCommands(program);
registerSidecarCommand(program);
registerOperatorCommand(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode);
  }
  if (err instanceof CliError) {
    process.stderr.write(`kmq: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  if (err instanceof KmqError) {
    process.stderr.write(`kmq: ${err.message} (${err.code})\n`);
    process.exit(1);
  }
  process.stderr.write(`kmq: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
