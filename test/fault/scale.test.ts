import { describe, expect, it } from 'vitest';
import { NO_BROKER } from '../../client/index.js';
import type { KmqClient } from '../../client/index.js';
import { runCli } from '../utils/cli.js';
import { until } from '../utils/test-cluster.js';
import { faultFixture } from './fixture.js';
import { check, expectConsistent, readAll } from './checker.js';
import { ProduceWorkload } from './workload.js';

/**
 * Scale out and in under load (issue 6): 3 brokers + etcd as real processes, an
 * idempotent acks=all producer running throughout; brokers 4 and 5 join and get
 * partitions (the controller's rebalance on join, then `kmq cluster rebalance`),
 * then `kmq cluster decommission` empties them and they stop. Every acknowledged
 * record must be in the log exactly once, in send order per partition.
 */
const TOPIC = 'scale';

const fixture = faultFixture();

interface Placement {
  holds: Map<number, number>;
  leads: Map<number, number>;
  settled: boolean;
}

/** Replicas and leaderships per broker; settled: no reassignment left and every partition led with its 3 replicas in sync. */
async function placement(k: KmqClient): Promise<Placement> {
  const [d, moving] = await Promise.all([k.admin().describeTopic(TOPIC), k.admin().listReassignments()]);
  const holds = new Map<number, number>();
  const leads = new Map<number, number>();
  for (const p of d.topic.partitions) {
    for (const b of p.replicas) holds.set(b, (holds.get(b) ?? 0) + 1);
    if (p.leader !== NO_BROKER) leads.set(p.leader, (leads.get(p.leader) ?? 0) + 1);
  }
  const settled = moving.length === 0 && d.topic.partitions.every((p) => p.leader !== NO_BROKER && p.replicas.length === 3 && p.isr.length === 3);
  return { holds, leads, settled };
}

describe('cluster scaling under load', () => {
  it('scales 3 → 5 → 3 brokers while an acks=all producer runs: no acknowledged record lost, duplicated or reordered', async () => {
    // A low throttle makes the reassignments take turns, so describe can be seen mid-way.
    const c = await fixture.start({ brokers: 3, args: ['--max-concurrent-reassignments', '1'] });
    const k = fixture.client(c);
    const admin = c.bootstrap()[0]!;
    await k.admin().createTopic(TOPIC, { partitions: 6, replicationFactor: 3, config: { minInsyncReplicas: 2 } });
    // A queue rides along: its partitions follow the queue host (the leader of __share_state) wherever the moves take it.
    await k.admin().createQueue('jobs', { partitions: 2 });
    const published = new Set<string>();
    const publishJobs = async (tag: string): Promise<void> => {
      for (let i = 0; i < 20; i++) {
        const values = Array.from({ length: 25 }, (_, j) => `${tag}-${i}-${j}`);
        await k.publisher().publish({ queue: 'jobs' }, values.map((v) => ({ value: v, headers: { 'x-kmq-idempotency-key': v } })));
        for (const v of values) published.add(v);
      }
    };
    await publishJobs('before');
    const work = new ProduceWorkload(k, TOPIC);
    work.start();
    await new Promise((r) => setTimeout(r, 1500));

    // Scale out: brokers 4 and 5 join holding nothing; the controller proposes a rebalance.
    const outStarted = Date.now();
    await c.startBroker(4);
    // Broker 4 freezes as soon as it is given partitions: the reassignments wait for it (it cannot catch up), so
    // describe shows them; then it thaws and catches up.
    const deadline = Date.now() + 30_000;
    while (!(await k.admin().listReassignments()).some((r) => r.targetReplicas.includes(4))) {
      if (Date.now() > deadline) throw new Error('broker 4 was given no partition within 30 s of joining');
      await new Promise((r) => setTimeout(r, 20));
    }
    c.pause(4);
    const during = (await runCli(['cluster', 'describe', '--broker', admin])).stdout;
    // The controller counts the moves in its metrics: broker 4 cannot catch up while frozen.
    const controller = (await k.admin().describeCluster()).controllerId;
    const metrics = await (await fetch(`http://127.0.0.1:${c.broker(controller)!.httpPort}/metrics`)).text();
    c.resume(4);
    expect(Number(/^kmq_cluster_reassigning_partitions\{state="copying"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    expect(metrics).toMatch(/^kmq_broker_is_controller 1$/m);
    process.stdout.write(`kmq cluster describe during the scale-out:\n${during}\n`);
    expect(during).toMatch(/^scale\s.*\s(reassigning|reassignment-waiting)\s*$/m);
    await c.startBroker(5);
    // The command path too: whatever the joins left uneven (nothing, usually) is moved, and it waits.
    const rebalance = await runCli(['cluster', 'rebalance', '--wait', '--broker', admin], { timeoutMs: 180_000 });
    expect(rebalance.code, rebalance.stderr).toBe(0);
    process.stdout.write(`kmq cluster rebalance --wait:\n${rebalance.stdout}\n`);
    const out = await until('brokers 4 and 5 hold and lead partitions, every partition in sync', 120_000, async () => {
      const p = await placement(k);
      return p.settled && (p.leads.get(4) ?? 0) > 0 && (p.leads.get(5) ?? 0) > 0 ? p : undefined;
    });
    const scaleOutMs = Date.now() - outStarted;
    for (const b of [1, 2, 3, 4, 5]) expect(out.holds.get(b) ?? 0).toBeGreaterThanOrEqual(3);
    await publishJobs('scaled-out');
    const anchor = (await k.admin().describeTopic('__share_state')).topic.partitions[0]!;
    process.stdout.write(`After scale-out the queue host is broker ${anchor.leader}, __share_state on ${JSON.stringify(anchor.replicas)}\n`);
    process.stdout.write(`After scale-out (${scaleOutMs} ms): replicas ${JSON.stringify([...out.holds].sort())}, leaders ${JSON.stringify([...out.leads].sort())}\n`);

    // Scale in: decommission waits until the broker holds no replica; then it stops.
    const inStarted = Date.now();
    for (const id of [4, 5]) {
      const r = await runCli(['cluster', 'decommission', String(id), '--broker', admin], { timeoutMs: 180_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`Broker ${id} holds no replica`);
    }
    const after = await until('every partition back on brokers 1-3 and in sync', 60_000, async () => {
      const p = await placement(k);
      return p.settled ? p : undefined;
    });
    expect([...after.holds.keys()].sort()).toEqual([1, 2, 3]);
    await c.stopBroker(4);
    await c.stopBroker(5);
    const scaleInMs = Date.now() - inStarted;
    // Load goes on a little on the three brokers left.
    await new Promise((r) => setTimeout(r, 1500));
    await work.stop();

    // Three brokers cannot lose one more for a topic of replication factor 3: refused, nothing moves.
    const refused = await runCli(['cluster', 'decommission', '3', '--broker', admin]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/replication factor 3/);

    await until('every partition fully in sync', 30_000, async () => ((await placement(k)).settled ? true : undefined));
    const log = await readAll(k, TOPIC);
    const r = check(work.acked, work.sent, work.failedSends, log);
    process.stdout.write(
      `scale 3→5→3: acked ${r.acked}, read ${r.read}, failed sends ${r.failedSends}, lost ${r.lost.length}, moved ${r.moved.length}, duplicated ${r.duplicated.length}, unexpected ${r.unexpected.length}, out-of-order partitions ${r.outOfOrder.length} ${JSON.stringify({ scaleOutMs, scaleInMs, errors: Object.fromEntries(work.errors) })}\n`,
    );
    expect(r.acked).toBeGreaterThan(100);
    expectConsistent(r);

    // Every message published to the queue is still there, on brokers 1-3, led by the queue host.
    const host = (await k.admin().describeTopic('__share_state')).topic.partitions[0]!;
    const jobs = await k.admin().describeTopic('jobs');
    for (const p of jobs.topic.partitions) {
      expect(p.leader).toBe(host.leader);
      expect([...p.replicas].sort()).toEqual([...host.replicas].sort());
    }
    const seen = new Set<string>();
    const consumer = k.queueConsumer({ queue: 'jobs', prefetch: 500 });
    for await (const batch of consumer.batches()) {
      await consumer.ackAll(batch);
      for (const d of batch) seen.add(d.value!.toString());
      if (seen.size >= published.size) break;
    }
    await consumer.close();
    expect(seen.size).toBe(1000);
    expect([...published].filter((v) => !seen.has(v))).toEqual([]);
  }, 300_000);
});
