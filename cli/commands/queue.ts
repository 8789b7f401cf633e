import type { Command } from 'commander';
import type { Delivery, QueueConfig, QueueInfo } from '../../client/index.js';
import { intArg } from '../args.js';
import { outputOf, withBroker, withClient } from '../connect.js';
import type { CommonFlags } from '../connect.js';
import { CliError, printJson, printTable } from '../output.js';
import { headersToStrings } from './routing-args.js';

interface CreateFlags extends CommonFlags {
  partitions?: string;
  maxDeliveries?: string;
  deadLetterQueue?: string;
  lockTimeoutMs?: string;
  perKeyOrdering?: boolean;
  retentionMs?: string;
  ifNotExists?: boolean;
}

interface ConsumeFlags extends CommonFlags {
  group?: string;
  max?: string;
  idleTimeout?: string;
  ack?: boolean;
  nack?: boolean;
  reject?: boolean;
  nackDelayMs?: string;
  prefetch?: string;
}

export type SettleAction = 'ack' | 'nack' | 'reject';

export function queueConfigFrom(f: CreateFlags): QueueConfig {
  const c: QueueConfig = {};
  if (f.partitions !== undefined) c.partitions = intArg('--partitions', f.partitions, 1);
  if (f.maxDeliveries !== undefined) c.maxDeliveries = intArg('--max-deliveries', f.maxDeliveries, 0);
  if (f.deadLetterQueue !== undefined) {
    if (f.deadLetterQueue === '') throw new CliError('--dead-letter-queue must not be empty');
    c.deadLetterQueue = f.deadLetterQueue;
  }
  if (f.lockTimeoutMs !== undefined) c.lockTimeoutMs = intArg('--lock-timeout-ms', f.lockTimeoutMs, 1);
  if (f.perKeyOrdering === true) c.perKeyOrdering = true;
  if (f.retentionMs !== undefined) c.retentionMs = intArg('--retention-ms', f.retentionMs, -1);
  return c;
}

/** Which settlement `kmq queue consume` applies to what it prints; --ack when none is given. */
export function settleActionOf(f: { ack?: boolean; nack?: boolean; reject?: boolean }): SettleAction {
  const chosen = (['ack', 'nack', 'reject'] as const).filter((a) => f[a] === true);
  if (chosen.length > 1) throw new CliError(`use one of --ack, --nack, --reject, not ${chosen.map((a) => `--${a}`).join(' and ')}`);
  return chosen[0] ?? 'ack';
}

function queueRow(q: QueueInfo): Record<string, unknown> {
  const d = q.depth ?? { ready: 0, inFlight: 0, delayed: 0 };
  return {
    name: q.name,
    partitions: q.config?.partitions,
    ready: d.ready,
    inFlight: d.inFlight,
    delayed: d.delayed,
    consumers: q.consumers,
    redeliveries: q.redeliveries,
    deadLettered: q.deadLettered,
  };
}

function formatDelivery(d: Delivery, json: boolean): string {
  if (!json) return d.value === null ? '' : d.value.toString('utf8');
  return JSON.stringify({
    queue: d.queue,
    partition: d.partition,
    offset: d.offset,
    deliveryCount: d.deliveryCount,
    timestamp: new Date(d.timestamp).toISOString(),
    key: d.key === null ? null : d.key.toString('utf8'),
    value: d.value === null ? null : d.value.toString('utf8'),
    headers: headersToStrings(d.headers),
  });
}

export function registerQueueCommands(program: Command): void {
  const queue = program.command('queue').description('create, inspect, consume and delete queues (each message goes to one consumer)');

  withBroker(queue.command('create <name>').description('create a queue'))
    .option('--partitions <n>', 'number of partitions')
    .option('--max-deliveries <n>', 'deliveries before a message is dead-lettered (0 = unlimited)')
    .option('--dead-letter-queue <queue>', 'where messages go after --max-deliveries or a reject')
    .option('--lock-timeout-ms <ms>', 'how long a delivery stays locked to its consumer without an ack')
    .option('--per-key-ordering', 'at most one message per key in flight')
    .option('--retention-ms <ms>', 'drop messages older than this (-1 keeps forever)')
    .option('--if-not-exists', 'succeed when the queue exists already')
    .action(async (name: string, f: CreateFlags) => {
      const config = queueConfigFrom(f);
      await withClient(f, (c) => c.admin().createQueue(name, config, { ifNotExists: f.ifNotExists === true }));
      process.stdout.write(`Created queue ${name}\n`);
    });

  withBroker(queue.command('list').description('list queues with their depth'), true).action(async (f: CommonFlags) => {
    const queues = (await withClient(f, (c) => c.admin().listQueues())).sort((a, b) => a.name.localeCompare(b.name));
    if (outputOf(f) === 'json') {
      printJson(queues.map(queueRow));
      return;
    }
    printTable(
      ['QUEUE', 'PARTITIONS', 'READY', 'IN-FLIGHT', 'DELAYED', 'CONSUMERS', 'DEAD-LETTERED'],
      queues.map((q) => {
        const r = queueRow(q);
        return [q.name, String(r.partitions ?? ''), String(r.ready), String(r.inFlight), String(r.delayed), q.consumers, q.deadLettered];
      }),
    );
  });

  withBroker(queue.command('describe <name>').description('depth, consumers, redeliveries and settings of a queue'), true).action(async (name: string, f: CommonFlags) => {
    const q = await withClient(f, (c) => c.admin().describeQueue(name));
    if (outputOf(f) === 'json') {
      printJson({ ...queueRow(q), config: q.config, logStartOffset: q.logStartOffset, logEndOffset: q.logEndOffset });
      return;
    }
    const d = q.depth ?? { ready: 0, inFlight: 0, delayed: 0 };
    const c = q.config ?? {};
    process.stdout.write(
      `Queue ${q.name}: ${c.partitions ?? '?'} partition${c.partitions === 1 ? '' : 's'}\n` +
        `  depth: ready=${d.ready} in-flight=${d.inFlight} delayed=${d.delayed}\n` +
        `  consumers=${q.consumers} redeliveries=${q.redeliveries} dead-lettered=${q.deadLettered}\n` +
        `  offsets: start=${q.logStartOffset} end=${q.logEndOffset}\n` +
        `  max.deliveries=${c.maxDeliveries} dead.letter.queue=${c.deadLetterQueue === '' || c.deadLetterQueue === undefined ? '-' : c.deadLetterQueue}` +
        ` lock.timeout.ms=${c.lockTimeoutMs} per.key.ordering=${c.perKeyOrdering} retention.ms=${c.retentionMs} retention.bytes=${c.retentionBytes}` +
        ` max.message.bytes=${c.maxMessageBytes}\n`,
    );
  });

  withBroker(queue.command('delete <name>').description('delete a queue and its messages'))
    .option('--if-empty', 'refuse when messages are ready or in flight')
    .option('--if-exists', 'succeed when the queue does not exist')
    .action(async (name: string, f: CommonFlags & { ifEmpty?: boolean; ifExists?: boolean }) => {
      await withClient(f, (c) => c.admin().deleteQueue(name, { ifEmpty: f.ifEmpty === true, ifExists: f.ifExists === true }));
      process.stdout.write(`Deleted queue ${name}\n`);
    });

  withBroker(queue.command('purge <name>').description('remove every ready message')).action(async (name: string, f: CommonFlags) => {
    const purged = await withClient(f, (c) => c.admin().purgeQueue(name));
    process.stdout.write(`Purged ${purged} message${purged === 1 ? '' : 's'} from ${name}\n`);
  });

  withBroker(queue.command('consume <queue>').description('print messages, one per line, and settle each printed one'))
    .option('--group <group>', 'shared group (to consume a topic as a queue)')
    .option('--max <n>', 'exit after n messages')
    .option('--idle-timeout <ms>', 'exit when nothing arrives for this long')
    .option('--ack', 'acknowledge printed messages (default)')
    .option('--nack', 'release printed messages for redelivery')
    .option('--reject', 'dead-letter printed messages')
    .option('--nack-delay-ms <ms>', 'with --nack: redeliver after this long', '0')
    .option('--prefetch <n>', 'most messages held at once', '100')
    .option('--output <format>', 'text | json (one JSON object per line)', 'text')
    .action(async (name: string, f: ConsumeFlags) => {
      if (f.output !== 'text' && f.output !== 'json') throw new CliError(`--output must be text or json, got "${f.output}"`);
      const json = f.output === 'json';
      const action = settleActionOf(f);
      const max = f.max === undefined ? Infinity : intArg('--max', f.max, 1);
      const idleMs = f.idleTimeout === undefined ? undefined : intArg('--idle-timeout', f.idleTimeout, 1);
      const nackDelayMs = intArg('--nack-delay-ms', f.nackDelayMs ?? '0', 0);
      if (nackDelayMs > 0 && action !== 'nack') throw new CliError('--nack-delay-ms goes with --nack');
      const prefetch = Math.min(intArg('--prefetch', f.prefetch ?? '100', 1), max);

      const { count, failures } = await withClient(f, async (client) => {
        // With --max, pull exactly what will be printed: a push subscription would keep
        // receiving (and spend delivery attempts of) messages released by this very command.
        const consumer = client.queueConsumer({
          queue: name,
          ...(f.group === undefined ? {} : { group: f.group }),
          prefetch,
          ...(max === Infinity ? {} : { mode: 'pull' as const, limit: max }),
        });
        const close = (): Promise<void> => consumer.close();
        let idle: NodeJS.Timeout | undefined;
        const armIdle = (): void => {
          if (idleMs === undefined) return;
          clearTimeout(idle);
          idle = setTimeout(() => void close(), idleMs);
        };
        const onSignal = (): void => void close();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        let count = 0;
        const settled: Array<Promise<void>> = [];
        const out: string[] = [];
        armIdle();
        try {
          for await (const batch of consumer.batches()) {
            const printed = count + batch.length > max ? batch.slice(0, max - count) : batch;
            for (const d of printed) out.push(formatDelivery(d, json));
            process.stdout.write(`${out.join('\n')}\n`);
            out.length = 0;
            count += printed.length;
            const p =
              action === 'ack' ? consumer.ackAll(printed) : action === 'nack' ? consumer.nackAll(printed, nackDelayMs) : consumer.rejectAll(printed, 'rejected with kmq queue consume');
            settled.push(p);
            if (count >= max) break;
            armIdle();
          }
        } finally {
          clearTimeout(idle);
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          await close();
        }
        const results = await Promise.allSettled(settled);
        const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as Error).message);
        return { count, failures };
      });
      process.stderr.write(`Consumed ${count} message${count === 1 ? '' : 's'} from ${name} (${action})\n`);
      if (failures.length > 0) throw new CliError(`settling failed for ${failures.length} batch${failures.length === 1 ? '' : 'es'}: ${failures[0]}`);
    });
}
