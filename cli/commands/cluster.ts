import type { Command } from 'commander';
import { outputOf, withBroker, withClient } from '../connect.js';
import type { CommonFlags } from '../connect.js';
import { printJson, printTable } from '../output.js';

/** The id metadata gives a partition without a leader, or a cluster without a controller. */
const NONE = 0xffffffff;

export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('brokers, controller and partition replication of a cluster');

  withBroker(cluster.command('describe').description('brokers, the controller, partitions with leader and in-sync replicas, under-replicated partitions'), true).action(
    async (f: CommonFlags & { underReplicated?: boolean }) => {
      const md = await withClient(f, (c) => c.admin().describeCluster());
      const partitions = md.topics.flatMap((t) =>
        t.partitions.map((p) => ({
          topic: t.name,
          partition: p.partition,
          leader: p.leader === NONE ? null : p.leader,
          replicas: p.replicas,
          isr: p.isr,
          underReplicated: p.isr.length < p.replicas.length,
        })),
      );
      const shown = f.underReplicated === true ? partitions.filter((p) => p.underReplicated || p.leader === null) : partitions;
      const brokers = md.brokers.map((b) => ({ id: b.id, host: b.host, port: b.port, controller: b.id === md.controllerId })).sort((a, b) => a.id - b.id);
      const controller = md.controllerId === NONE ? null : md.controllerId;
      const under = partitions.filter((p) => p.underReplicated).length;
      const offline = partitions.filter((p) => p.leader === null).length;
      if (outputOf(f) === 'json') {
        printJson({ clusterId: md.clusterId, controller, brokers, partitions: shown, underReplicated: under, offline });
        return;
      }
      process.stdout.write(`Cluster ${md.clusterId}: ${brokers.length} broker${brokers.length === 1 ? '' : 's'}, controller ${controller ?? 'none'}, ${partitions.length} partitions, ${under} under-replicated, ${offline} without a leader\n`);
      printTable(['BROKER', 'ADDRESS', 'CONTROLLER'], brokers.map((b) => [b.id, `${b.host}:${b.port}`, b.controller ? 'yes' : '']));
      process.stdout.write('\n');
      if (shown.length === 0) {
        process.stdout.write(f.underReplicated === true ? 'No partition is under-replicated or without a leader\n' : 'No topics\n');
        return;
      }
      printTable(
        ['TOPIC', 'PARTITION', 'LEADER', 'REPLICAS', 'ISR', 'STATE'],
        shown.map((p) => [p.topic, p.partition, p.leader ?? 'none', p.replicas.join(','), p.isr.join(','), p.leader === null ? 'offline' : p.underReplicated ? 'under-replicated' : 'ok']),
      );
    },
  ).option('--under-replicated', 'only partitions that are under-replicated or without a leader');
}
