import type { Command } from 'commander';
import type { TopicConfig } from '../../client/admin.js';
import { NO_BROKER } from '../../client/index.js';
import { intArg } from '../args.js';
import { outputOf, withBroker, withClient } from '../connect.js';
import type { CommonFlags } from '../connect.js';
import { CliError, printJson, printTable } from '../output.js';

interface CreateFlags extends CommonFlags {
  partitions: string;
  retentionMs?: string;
  retentionBytes?: string;
  segmentBytes?: string;
  maxMessageBytes?: string;
  cleanupPolicy?: string;
  minInsyncReplicas?: string;
  replicationFactor?: string;
  ifNotExists?: boolean;
}

function configFrom(f: CreateFlags): TopicConfig {
  const c: TopicConfig = {};
  if (f.retentionMs !== undefined) c.retentionMs = intArg('--retention-ms', f.retentionMs, -1);
  if (f.retentionBytes !== undefined) c.retentionBytes = intArg('--retention-bytes', f.retentionBytes, -1);
  if (f.segmentBytes !== undefined) c.segmentBytes = intArg('--segment-bytes', f.segmentBytes, 1);
  if (f.maxMessageBytes !== undefined) c.maxMessageBytes = intArg('--max-message-bytes', f.maxMessageBytes, 1);
  if (f.minInsyncReplicas !== undefined) c.minInsyncReplicas = intArg('--min-insync-replicas', f.minInsyncReplicas, 1);
  if (f.cleanupPolicy !== undefined) {
    if (f.cleanupPolicy !== 'delete' && f.cleanupPolicy !== 'compact') throw new CliError(`--cleanup-policy must be delete or compact, got "${f.cleanupPolicy}"`);
    c.cleanupPolicy = f.cleanupPolicy;
  }
  return c;
}

function configFlags(cmd: Command): Command {
  return cmd
    .option('--retention-ms <ms>', 'delete segments older than this (-1 keeps forever)')
    .option('--retention-bytes <bytes>', 'per-partition size limit (-1 unlimited)')
    .option('--segment-bytes <bytes>', 'segment file size')
    .option('--max-message-bytes <bytes>', 'largest record batch accepted')
    .option('--cleanup-policy <policy>', 'delete | compact')
    .option('--min-insync-replicas <n>', 'in a cluster: in-sync replicas acks=all needs');
}

export function registerTopicCommands(program: Command): void {
  const topic = program.command('topic').description('create, list, describe, alter and delete topics');

  configFlags(withBroker(topic.command('create <name>').description('create a topic')))
    .option('--partitions <n>', 'number of partitions', '1')
    .option('--replication-factor <n>', 'copies of each partition in a cluster (default: the broker\'s, min(3, brokers))')
    .option('--if-not-exists', 'succeed when the topic exists already')
    .action(async (name: string, f: CreateFlags) => {
      const partitions = intArg('--partitions', f.partitions, 1);
      const replicationFactor = f.replicationFactor === undefined ? undefined : intArg('--replication-factor', f.replicationFactor, 1);
      await withClient(f, (c) =>
        c.admin().createTopic(name, { partitions, config: configFrom(f), ifNotExists: f.ifNotExists === true, ...(replicationFactor === undefined ? {} : { replicationFactor }) }),
      );
      process.stdout.write(`Created topic ${name} with ${partitions} partition${partitions === 1 ? '' : 's'}\n`);
    });

  configFlags(withBroker(topic.command('alter <name>').description("change a topic's settings"))).action(async (name: string, f: CreateFlags) => {
    const config = configFrom(f);
    if (Object.keys(config).length === 0) throw new CliError('nothing to change: give at least one setting (see --help)');
    await withClient(f, (c) => c.admin().alterTopicConfig(name, config));
    process.stdout.write(`Altered topic ${name}\n`);
  });

  withBroker(topic.command('list').description('list topics'), true)
    .option('--internal', 'include internal topics')
    .action(async (f: CommonFlags & { internal?: boolean }) => {
      const topics = await withClient(f, (c) => c.admin().listTopics({ includeInternal: f.internal === true }));
      const rows = topics
        .map((t) => ({ name: t.name, partitions: t.partitions.length, records: t.partitions.reduce((s, p) => s + (p.logEndOffset - p.logStartOffset), 0), internal: t.internal }))
        .sort((a, b) => a.name.localeCompare(b.name));
      if (outputOf(f) === 'json') printJson(rows);
      else printTable(['TOPIC', 'PARTITIONS', 'RECORDS'], rows.map((r) => [r.name, r.partitions, r.records]));
    });

  withBroker(topic.command('describe <name>').description('partitions, offsets and settings of a topic'), true).action(async (name: string, f: CommonFlags) => {
    const d = await withClient(f, (c) => c.admin().describeTopic(name));
    if (outputOf(f) === 'json') {
      printJson({ name: d.topic.name, partitions: d.topic.partitions, config: d.config, sizeBytes: d.sizeBytes });
      return;
    }
    const cfg = d.config ?? {};
    process.stdout.write(
      `Topic ${d.topic.name}: ${d.topic.partitions.length} partitions, ${d.sizeBytes} bytes\n` +
        `  retention.ms=${cfg.retentionMs} retention.bytes=${cfg.retentionBytes} segment.bytes=${cfg.segmentBytes} max.message.bytes=${cfg.maxMessageBytes} cleanup.policy=${cfg.cleanupPolicy}\n`,
    );
    printTable(
      ['PARTITION', 'LEADER', 'REPLICAS', 'ISR', 'START', 'END', 'RECORDS'],
      d.topic.partitions.map((p) => [p.partition, p.leader === NO_BROKER ? 'none' : p.leader, p.replicas.join(','), p.isr.join(','), p.logStartOffset, p.logEndOffset, p.logEndOffset - p.logStartOffset]),
    );
  });

  withBroker(topic.command('delete <name>').description('delete a topic and its records'))
    .option('--if-exists', 'succeed when the topic does not exist')
    .action(async (name: string, f: CommonFlags & { ifExists?: boolean }) => {
      await withClient(f, (c) => c.admin().deleteTopic(name, { ifExists: f.ifExists === true }));
      process.stdout.write(`Deleted topic ${name}\n`);
    });
}
