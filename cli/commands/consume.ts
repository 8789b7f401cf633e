import type { Command } from 'commander';
import type { Consumer, ConsumerOptions, DecodedRecord, KmqClient, PartitionAssignment } from '../../client/index.js';
import { intArg } from '../args.js';
import { withBroker, withClient } from '../connect.js';
import type { CommonFlags } from '../connect.js';
import { CliError } from '../output.js';

interface ConsumeFlags extends CommonFlags {
  group?: string;
  from?: string;
  max?: string;
  idleTimeout?: string;
  printKey?: boolean;
  keySeparator: string;
  partition?: string;
}

type StartPosition = { kind: 'earliest' } | { kind: 'latest' } | { kind: 'offset'; offset: number } | { kind: 'time'; ms: number };

export function parseFrom(from: string | undefined): StartPosition | undefined {
  if (from === undefined) return undefined;
  if (from === 'earliest' || from === 'beginning') return { kind: 'earliest' };
  if (from === 'latest' || from === 'end') return { kind: 'latest' };
  if (/^\d+$/.test(from)) return { kind: 'offset', offset: Number(from) };
  const ms = Date.parse(from);
  if (/^\d{4}-\d{2}-\d{2}/.test(from) && !Number.isNaN(ms)) return { kind: 'time', ms };
  throw new CliError(`--from must be earliest, latest, an offset or an ISO time (e.g. 2026-01-31T12:00:00Z), got "${from}"`);
}

function formatRecord(topic: string, partition: number, r: DecodedRecord, f: ConsumeFlags, json: boolean): string {
  if (json) {
    return JSON.stringify({
      topic,
      partition,
      offset: r.offset,
      timestamp: new Date(r.timestamp).toISOString(),
      key: r.key === null ? null : r.key.toString('utf8'),
      value: r.value === null ? null : r.value.toString('utf8'),
      headers: Object.fromEntries(r.headers.map((h) => [h.key, h.value === null ? null : h.value.toString('utf8')])),
    });
  }
  const value = r.value === null ? '' : r.value.toString('utf8');
  return f.printKey === true ? `${r.key === null ? '' : r.key.toString('utf8')}${f.keySeparator}${value}` : value;
}

async function manualAssignment(client: KmqClient, topic: string, from: StartPosition, only: number | undefined): Promise<PartitionAssignment[]> {
  const admin = client.admin();
  const d = await admin.describeTopic(topic);
  const partitions = d.topic.partitions.map((p) => p.partition).filter((p) => only === undefined || p === only);
  if (only !== undefined && partitions.length === 0) throw new CliError(`topic ${topic} has no partition ${only}`);
  if (from.kind === 'offset') return partitions.map((partition) => ({ topic, partition, offset: from.offset }));
  const offsets = await admin.listOffsets(topic, from.kind === 'time' ? from.ms : from.kind, partitions);
  return partitions.map((partition) => ({ topic, partition, offset: offsets.get(partition) ?? 0 }));
}

export function registerConsumeCommand(program: Command): void {
  withBroker(program.command('consume <topic>').description('print records, one per line'))
    .option('--group <group>', 'consume as a member of this consumer group (offsets are committed)')
    .option('--from <position>', 'earliest | latest | <offset> | <ISO time>; with --group: where to start without a committed offset', undefined)
    .option('--partition <n>', 'only this partition (without --group)')
    .option('--max <n>', 'exit after n records')
    .option('--idle-timeout <ms>', 'exit when nothing arrives for this long')
    .option('--print-key', 'print key<separator>value')
    .option('--key-separator <sep>', 'separator for --print-key', '\t')
    .option('--output <format>', 'text | json (one JSON object per line)', 'text')
    .action(async (topic: string, f: ConsumeFlags) => {
      if (f.output !== 'text' && f.output !== 'json') throw new CliError(`--output must be text or json, got "${f.output}"`);
      const json = f.output === 'json';
      const max = f.max === undefined ? Infinity : intArg('--max', f.max, 1);
      const idleMs = f.idleTimeout === undefined ? undefined : intArg('--idle-timeout', f.idleTimeout, 1);
      const from = parseFrom(f.from);
      const partition = f.partition === undefined ? undefined : intArg('--partition', f.partition, 0);
      if (f.group !== undefined && (from?.kind === 'offset' || from?.kind === 'time')) {
        throw new CliError(`with --group, --from takes earliest or latest; to move the group use: kmq group reset ${f.group} --topic ${topic} --to ...`);
      }
      if (f.group !== undefined && partition !== undefined) throw new CliError('--partition cannot be combined with --group (the group assigns partitions)');

      await withClient(f, async (client) => {
        let options: ConsumerOptions;
        if (f.group !== undefined) {
          options = { groupId: f.group, topics: [topic], fromBeginning: from?.kind === 'earliest' };
        } else {
          options = { assignment: await manualAssignment(client, topic, from ?? { kind: 'latest' }, partition), autoCommit: false };
        }
        const consumer: Consumer = client.consumer(options);
        let closing: Promise<void> | undefined;
        const close = (): Promise<void> => (closing ??= consumer.close());
        let count = 0;
        let idle: NodeJS.Timeout | undefined;
        const armIdle = (): void => {
          if (idleMs === undefined) return;
          clearTimeout(idle);
          idle = setTimeout(() => void close(), idleMs);
        };
        const onSignal = (): void => void close();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        armIdle();
        const out: string[] = [];
        try {
          for await (const batch of consumer.batches()) {
            for (const r of batch.records) {
              out.push(formatRecord(batch.topic, batch.partition, r, f, json));
              count++;
              if (count >= max) {
                // Stop mid-batch: the group's position is the record after the last one printed.
                if (f.group !== undefined) consumer.seek(batch.topic, batch.partition, r.offset + 1);
                break;
              }
            }
            process.stdout.write(`${out.join('\n')}\n`);
            out.length = 0;
            if (count >= max) break;
            armIdle();
          }
        } finally {
          clearTimeout(idle);
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          await close();
        }
        process.stderr.write(`Consumed ${count} record${count === 1 ? '' : 's'} from ${topic}\n`);
      });
    });
}
