import type { Command } from 'commander';
import type { ResetStrategyName } from '../../client/index.js';
import { intArg } from '../args.js';
import { outputOf, withBroker, withClient } from '../connect.js';
import type { CommonFlags } from '../connect.js';
import { CliError, printJson, printTable } from '../output.js';
import { parseFrom } from './consume.js';

interface ResetFlags extends CommonFlags {
  topic: string;
  to: string;
  partitions?: string;
  dryRun?: boolean;
}

export function registerGroupCommands(program: Command): void {
  const group = program.command('group').description('list, describe, reset and delete consumer groups');

  withBroker(group.command('list').description('list consumer groups'), true).action(async (f: CommonFlags) => {
    const groups = await withClient(f, (c) => c.admin().listGroups());
    const rows = groups.map((g) => ({ group: g.group, state: g.state, members: g.members })).sort((a, b) => a.group.localeCompare(b.group));
    if (outputOf(f) === 'json') printJson(rows);
    else printTable(['GROUP', 'STATE', 'MEMBERS'], rows.map((r) => [r.group, r.state, r.members]));
  });

  withBroker(group.command('describe <group>').description('members, assignment, committed offsets and lag'), true).action(async (name: string, f: CommonFlags) => {
    const d = await withClient(f, (c) => c.admin().describeGroup(name));
    const offsets = d.offsets.map((o) => ({ topic: o.topic, partition: o.partition, committed: o.offset, logEndOffset: o.logEndOffset, lag: o.lag }));
    const members = d.members.map((m) => ({
      memberId: m.memberId,
      clientId: m.clientId,
      host: m.host,
      assignment: m.assignment.map((a) => ({ topic: a.topic, partitions: a.partitions })),
    }));
    if (outputOf(f) === 'json') {
      printJson({ group: d.group, state: d.state, generation: d.generation, topics: d.topics, members, offsets });
      return;
    }
    process.stdout.write(`Group ${d.group}: ${d.state}, generation ${d.generation}, ${members.length} member${members.length === 1 ? '' : 's'}\n`);
    const owner = new Map<string, string>();
    for (const m of members) for (const a of m.assignment) for (const p of a.partitions) owner.set(`${a.topic}/${p}`, `${m.clientId}@${m.host} ${m.memberId.slice(0, 8)}`);
    printTable(
      ['TOPIC', 'PARTITION', 'COMMITTED', 'END', 'LAG', 'MEMBER'],
      offsets.map((o) => [o.topic, o.partition, o.committed, o.logEndOffset, o.lag, owner.get(`${o.topic}/${o.partition}`) ?? '-']),
    );
  });

  withBroker(group.command('reset <group>').description('move committed offsets (only while the group has no members)'), true)
    .requiredOption('--topic <topic>', 'topic whose offsets move')
    .requiredOption('--to <position>', 'earliest | latest | <offset> | <ISO time>')
    .option('--partitions <list>', 'comma-separated partitions (default: all)')
    .option('--dry-run', 'show the new offsets without setting them')
    .action(async (name: string, f: ResetFlags) => {
      const to = parseFrom(f.to);
      if (to === undefined) throw new CliError('--to is required');
      const partitions = f.partitions?.split(',').map((p) => intArg('--partitions', p.trim(), 0));
      const strategy: ResetStrategyName = to.kind === 'time' ? 'timestamp' : to.kind;
      const value = to.kind === 'offset' ? to.offset : to.kind === 'time' ? to.ms : undefined;
      const offsets = await withClient(f, (c) => c.admin().resetOffsets(name, f.topic, strategy, value, { ...(partitions === undefined ? {} : { partitions }), dryRun: f.dryRun === true }));
      const rows = offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset }));
      if (outputOf(f) === 'json') printJson(rows);
      else {
        process.stdout.write(`${f.dryRun === true ? 'Would reset' : 'Reset'} group ${name} on ${f.topic}:\n`);
        printTable(['TOPIC', 'PARTITION', 'NEW OFFSET'], rows.map((r) => [r.topic, r.partition, r.offset]));
      }
    });

  withBroker(group.command('delete <group>').description('delete a group and its committed offsets (only while it has no members)')).action(async (name: string, f: CommonFlags) => {
    await withClient(f, (c) => c.admin().deleteGroup(name));
    process.stdout.write(`Deleted group ${name}\n`);
  });
}
