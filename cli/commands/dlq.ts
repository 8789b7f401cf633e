import type { Command } from 'commander';
import type { DeadLetterQuery } from '../../client/index.js';
import { intArg } from '../args.js';
import { outputOf, withBroker, withClient } from '../connect.js';
import type { CommonFlags } from '../connect.js';
import { CliError, printJson, printTable } from '../output.js';
import { collect, headersToStrings, parseHeaderFlags, parseTime } from './routing-args.js';

interface FilterFlags extends CommonFlags {
  max?: string;
  header: string[];
  from?: string;
  to?: string;
}

/** The dead-letter filter of peek and replay. */
export function deadLetterQueryFrom(f: FilterFlags): DeadLetterQuery {
  const q: DeadLetterQuery = {};
  if (f.max !== undefined) q.maxCount = intArg('--max', f.max, 1);
  const headers = parseHeaderFlags('--header', f.header);
  if (Object.keys(headers).length > 0) q.headers = headers;
  const from = parseTime('--from', f.from);
  const to = parseTime('--to', f.to);
  if (from !== undefined) q.fromTime = from;
  if (to !== undefined) q.toTime = to;
  if (from !== undefined && to !== undefined && to <= from) throw new CliError('--to must be after --from');
  return q;
}

function filterFlags(cmd: Command): Command {
  return cmd
    .option('--max <n>', 'at most n dead letters')
    .option('--header <key=value>', 'only dead letters with this header (repeatable)', collect, [])
    .option('--from <time>', 'dead-lettered at or after (ISO time or ms)')
    .option('--to <time>', 'dead-lettered before (ISO time or ms)');
}

export function registerDlqCommands(program: Command): void {
  const dlq = program.command('dlq').description('inspect, replay and purge the dead letters of a queue');

  filterFlags(withBroker(dlq.command('peek <source>').description('show dead letters of a queue without removing them'), true)).action(
    async (source: string, f: FilterFlags) => {
      const query = deadLetterQueryFrom(f);
      const letters = await withClient(f, (c) => c.admin().dlqPeek(source, query));
      const rows = letters.map(({ position, record }) => ({
        dlq: position.dlq,
        partition: position.partition,
        offset: position.offset,
        timestamp: new Date(record.timestamp).toISOString(),
        key: record.key === null ? null : record.key.toString('utf8'),
        value: record.value === null ? null : record.value.toString('utf8'),
        headers: headersToStrings(record.headers),
      }));
      if (outputOf(f) === 'json') {
        printJson(rows);
        return;
      }
      printTable(
        ['DLQ', 'PARTITION', 'OFFSET', 'TIMESTAMP', 'VALUE', 'HEADERS'],
        rows.map((r) => [r.dlq, r.partition, r.offset, r.timestamp, r.value ?? '', Object.entries(r.headers).map(([k, v]) => `${k}=${v ?? ''}`).join(' ')]),
      );
    },
  );

  filterFlags(withBroker(dlq.command('replay <source>').description('put dead letters back on their queue (each at most once)')))
    .option('--rate <n>', 'messages per second (default: as fast as possible)')
    .option('--dry-run', 'count what would be replayed')
    .action(async (source: string, f: FilterFlags & { rate?: string; dryRun?: boolean }) => {
      const query = deadLetterQueryFrom(f);
      const ratePerSecond = f.rate === undefined ? 0 : intArg('--rate', f.rate, 1);
      const r = await withClient(f, (c) => c.admin().dlqReplay(source, query, { ratePerSecond, dryRun: f.dryRun === true }));
      const verb = f.dryRun === true ? 'Would replay' : 'Replayed';
      process.stdout.write(`${verb} ${r.replayed} dead letter${r.replayed === 1 ? '' : 's'} to ${source}${r.skippedDuplicates > 0 ? ` (${r.skippedDuplicates} already replayed, skipped)` : ''}\n`);
    });

  withBroker(dlq.command('purge <source>').description('delete every dead letter of a queue')).action(async (source: string, f: CommonFlags) => {
    const purged = await withClient(f, (c) => c.admin().dlqPurge(source));
    process.stdout.write(`Purged ${purged} dead letter${purged === 1 ? '' : 's'} of ${source}\n`);
  });
}
