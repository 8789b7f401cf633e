import type { Command } from 'commander';
import { NO_BROKER } from '../../client/index.js';
import type { KmqClient, PartitionReassignment } from '../../client/index.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { outputOf, withBroker, withClient } from '../connect.js';
import type { CommonFlags } from '../connect.js';
import { printJson, printTable } from '../output.js';

const POLL_MS = 500;

interface ReassignFlags extends CommonFlags {
  dryRun?: boolean;
  wait?: boolean;
  timeoutMs?: string;
}

export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('brokers, controller and partition replication of a cluster');

  withBroker(cluster.command('describe').description('brokers, the controller, partitions with leader and in-sync replicas, under-replicated partitions, reassignments'), true).action(
    async (f: CommonFlags & { underReplicated?: boolean }) => {
      const [md, moving] = await withClient(f, async (c) => Promise.all([c.admin().describeCluster(), c.admin().listReassignments()]));
      const targets = new Map(moving.map((r) => [`${r.topic}/${r.partition}`, r.targetReplicas]));
      const partitions = md.topics.flatMap((t) =>
        t.partitions.map((p) => {
          const target = targets.get(`${t.name}/${p.partition}`) ?? null;
          return {
            topic: t.name,
            partition: p.partition,
            leader: p.leader === NO_BROKER ? null : p.leader,
            replicas: p.replicas,
            isr: p.isr,
            targetReplicas: target,
            // While a reassignment runs the new replicas are outside the in-sync set by design: the target's size counts.
            underReplicated: p.isr.length < (target ?? p.replicas).length,
          };
        }),
      );
      const shown = f.underReplicated === true ? partitions.filter((p) => p.underReplicated || p.leader === null) : partitions;
      const brokers = md.brokers.map((b) => ({ id: b.id, host: b.host, port: b.port, controller: b.id === md.controllerId })).sort((a, b) => a.id - b.id);
      const controller = md.controllerId === NO_BROKER ? null : md.controllerId;
      const under = partitions.filter((p) => p.underReplicated).length;
      const offline = partitions.filter((p) => p.leader === null).length;
      const reassigning = partitions.filter((p) => p.targetReplicas !== null).length;
      if (outputOf(f) === 'json') {
        printJson({ clusterId: md.clusterId, controller, brokers, partitions: shown, underReplicated: under, offline, reassigning });
        return;
      }
      process.stdout.write(
        `Cluster ${md.clusterId}: ${brokers.length} broker${brokers.length === 1 ? '' : 's'}, controller ${controller ?? 'none'}, ${partitions.length} partitions, ${under} under-replicated, ${offline} without a leader, ${reassigning} reassigning\n`,
      );
      printTable(['BROKER', 'ADDRESS', 'CONTROLLER'], brokers.map((b) => [b.id, `${b.host}:${b.port}`, b.controller ? 'yes' : '']));
      process.stdout.write('\n');
      if (shown.length === 0) {
        process.stdout.write(f.underReplicated === true ? 'No partition is under-replicated or without a leader\n' : 'No topics\n');
        return;
      }
      printTable(
        ['TOPIC', 'PARTITION', 'LEADER', 'REPLICAS', 'ISR', 'TARGET', 'STATE'],
        shown.map((p) => [p.topic, p.partition, p.leader ?? 'none', p.replicas.join(','), p.isr.join(','), p.targetReplicas?.join(',') ?? '', stateOf(p)]),
      );
    },
  ).option('--under-replicated', 'only partitions that are under-replicated or without a leader');

  withBroker(
    cluster
      .command('rebalance')
      .description("spread every topic's replicas and leadership evenly over the live brokers, with the fewest moves (the controller moves them, a few partitions at a time)")
      .option('--dry-run', 'show the moves without making them')
      .option('--wait', 'wait until every reassignment has finished')
      .option('--timeout-ms <n>', 'how long --wait waits', '600000'),
    true,
  ).action(async (f: ReassignFlags) => {
    await withClient(f, async (c) => {
      const moves = await c.admin().rebalance({ dryRun: f.dryRun === true });
      printMoves(f, moves, f.dryRun === true ? 'would move' : 'moving');
      if (f.wait === true && f.dryRun !== true) {
        await waitFor(c, timeoutOf(f), 'every reassignment to finish', (left) => left.length === 0);
        if (outputOf(f) === 'table') process.stdout.write('Rebalance complete\n');
      }
    });
  });

  withBroker(
    cluster
      .command('decommission')
      .argument('<brokerId>', 'the broker to empty')
      .description('move every replica off a broker (and place none on it while it runs), then wait until it holds none; refused when the other live brokers are fewer than a topic\'s replication factor')
      .option('--dry-run', 'show the moves without making them')
      .option('--no-wait', 'return once the moves are written')
      .option('--timeout-ms <n>', 'how long to wait', '600000'),
    true,
  ).action(async (id: string, f: ReassignFlags) => {
    const brokerId = Number(id);
    if (!(Number.isSafeInteger(brokerId) && brokerId >= 0)) throw new KmqError(ErrorCode.InvalidRequest, `brokerId must be a broker id (a whole number >= 0), got "${id}"`);
    await withClient(f, async (c) => {
      const moves = await c.admin().decommissionBroker(brokerId, { dryRun: f.dryRun === true });
      printMoves(f, moves, f.dryRun === true ? 'would move' : 'moving');
      if (f.wait !== false && f.dryRun !== true) {
        await waitFor(c, timeoutOf(f), `broker ${brokerId} to hold no replica`, async () => {
          const md = await c.admin().describeCluster();
          return md.topics.every((t) => t.partitions.every((p) => !p.replicas.includes(brokerId)));
        });
        if (outputOf(f) === 'table') process.stdout.write(`Broker ${brokerId} holds no replica; it can be stopped\n`);
      }
    });
  });
}

function stateOf(p: { leader: number | null; underReplicated: boolean; targetReplicas: number[] | null; replicas: number[] }): string {
  if (p.leader === null) return 'offline';
  if (p.targetReplicas !== null) return p.targetReplicas.every((b) => p.replicas.includes(b)) ? 'reassigning' : 'reassignment-waiting';
  return p.underReplicated ? 'under-replicated' : 'ok';
}

function printMoves(f: ReassignFlags, moves: PartitionReassignment[], verb: string): void {
  if (outputOf(f) === 'json') {
    printJson({ moves });
    return;
  }
  process.stdout.write(`${moves.length === 0 ? 'Nothing to move' : `${verb} ${moves.length} partition${moves.length === 1 ? '' : 's'}`}\n`);
  if (moves.length > 0) printTable(['TOPIC', 'PARTITION', 'REPLICAS', 'TARGET'], moves.map((m) => [m.topic, m.partition, m.replicas.join(','), m.targetReplicas.join(',')]));
}

function timeoutOf(f: ReassignFlags): number {
  const ms = Number(f.timeoutMs ?? 600_000);
  if (!(Number.isSafeInteger(ms) && ms > 0)) throw new KmqError(ErrorCode.InvalidRequest, `--timeout-ms must be a positive whole number, got "${f.timeoutMs}"`);
  return ms;
}

/** Polls until `done` holds (given the reassignments still running), or fails after `timeoutMs`. */
async function waitFor(c: KmqClient, timeoutMs: number, what: string, done: (left: PartitionReassignment[]) => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await c.admin().listReassignments();
    if (await done(left)) return;
    if (Date.now() > deadline) {
      throw new KmqError(ErrorCode.RequestTimedOut, `Timed out after ${timeoutMs} ms waiting for ${what}; ${left.length} partition(s) still reassigning`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
