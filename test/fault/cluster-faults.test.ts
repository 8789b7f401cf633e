import { describe, expect, it } from 'vitest';
import { KmqClient, NO_BROKER } from '../../client/index.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { until } from '../utils/test-cluster.js';
import { faultFixture } from './fixture.js';
import { check, expectConsistent, readAll } from './checker.js';
import { ProduceWorkload } from './workload.js';

/**
 * Fault tests of a 3-broker cluster on a real etcd: an idempotent acks=all
 * producer runs while a nemesis kills (-9) or freezes (SIGSTOP) brokers; then
 * every acknowledged record must be in the log exactly once, in send order per
 * partition. KMQ_FAULT_SECONDS makes the runs longer (a long mode for minutes).
 */
const RUN_SECONDS = Number(process.env.KMQ_FAULT_SECONDS ?? 12);
const TEST_TIMEOUT_MS = 120_000 + RUN_SECONDS * 2000;

const fixture = faultFixture();


async function leaderOf(k: KmqClient, topic: string, partition: number): Promise<{ leader: number; isr: number[] }> {
  const d = await k.admin().describeTopic(topic);
  const p = d.topic.partitions.find((x) => x.partition === partition)!;
  return { leader: p.leader, isr: p.isr };
}

/** Narrates the nemesis and workload steps, with the time, as a fault test runs. */
function step(what: string): void {
  process.stdout.write(`${new Date().toISOString()} ${what}\n`);
}

function report(name: string, r: ReturnType<typeof check>, extra: Record<string, unknown> = {}): void {
  process.stdout.write(
    `${name}: acked ${r.acked}, read ${r.read}, failed sends ${r.failedSends}, lost ${r.lost.length}, moved ${r.moved.length}, duplicated ${r.duplicated.length}, unexpected ${r.unexpected.length}, out-of-order partitions ${r.outOfOrder.length} ${JSON.stringify(extra)}\n`,
  );
}

describe('cluster under faults', () => {
  it('kill -9 of the partition leader every few seconds: a new leader serves within 10 s and no acknowledged record is lost', async () => {
    const c = await fixture.start({ brokers: 3 });
    const k = fixture.client(c);
    await k.admin().createTopic('faults', { partitions: 4, replicationFactor: 3, config: { minInsyncReplicas: 2 } });
    const work = new ProduceWorkload(k, 'faults');
    work.start();
    const failovers: number[] = [];
    const deadline = Date.now() + RUN_SECONDS * 1000;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1500));
      const { leader } = await until('partition 0 has a leader', 20_000, async () => {
        const l = await leaderOf(k, 'faults', 0);
        return l.leader !== NO_BROKER ? l : undefined;
      });
      const killedAt = Date.now();
      await c.kill(leader);
      // Served again: another broker leads and takes an acks=all write.
      await until('a new leader of partition 0', 10_000, async () => {
        const l = await leaderOf(k, 'faults', 0);
        return l.leader !== leader && l.leader !== NO_BROKER ? l : undefined;
      });
      const probe = k.producer({ acks: 'all' });
      await probe.send('faults', [{ key: 'probe', value: 'probe' }]).finally(() => probe.close());
      failovers.push(Date.now() - killedAt);
      await c.restart(leader);
    }
    await work.stop();
    // Everyone back in sync, then read what the cluster has.
    await until('every partition fully in sync', 30_000, async () => {
      const d = await k.admin().describeTopic('faults');
      return d.topic.partitions.every((p) => p.isr.length === 3) ? true : undefined;
    });
    const log = (await readAll(k, 'faults')).filter((r) => r.value !== 'probe');
    const r = check(work.acked, work.sent, work.failedSends, log);
    report('leader kill', r, { failoversMs: failovers, errors: Object.fromEntries(work.errors) });
    expect(failovers.length).toBeGreaterThan(0);
    for (const ms of failovers) expect(ms).toBeLessThan(10_000);
    expect(r.acked).toBeGreaterThan(100);
    expectConsistent(r);
  }, TEST_TIMEOUT_MS);

  it('kill -9 of the controller: another broker takes over and keeps electing leaders; nothing acknowledged is lost', async () => {
    const c = await fixture.start({ brokers: 3 });
    const k = fixture.client(c);
    await k.admin().createTopic('ctl', { partitions: 3, replicationFactor: 3, config: { minInsyncReplicas: 2 } });
    const work = new ProduceWorkload(k, 'ctl');
    work.start();
    await new Promise((r) => setTimeout(r, 1500));
    const controller = (await k.admin().describeCluster()).controllerId;
    step(`kill controller ${controller}`);
    await c.kill(controller);
    const next = await until('a new controller', 15_000, async () => {
      const id = (await k.admin().describeCluster()).controllerId;
      return id !== controller && id !== NO_BROKER ? id : undefined;
    });
    step(`controller ${next}`);
    // The new controller does its job: the partitions the old one led get leaders from the in-sync set.
    await until('no partition led by the dead controller', 15_000, async () => {
      const d = await k.admin().describeTopic('ctl');
      return d.topic.partitions.every((p) => p.leader !== controller && p.leader !== NO_BROKER) ? true : undefined;
    });
    await c.restart(controller);
    await new Promise((r) => setTimeout(r, Math.max(2000, (RUN_SECONDS - 8) * 1000)));
    await work.stop();
    await until('every partition fully in sync', 30_000, async () => {
      const d = await k.admin().describeTopic('ctl');
      return d.topic.partitions.every((p) => p.isr.length === 3) ? true : undefined;
    });
    const r = check(work.acked, work.sent, work.failedSends, await readAll(k, 'ctl'));
    report('controller kill', r, { controller, next, errors: Object.fromEntries(work.errors) });
    expect(r.acked).toBeGreaterThan(100);
    expectConsistent(r);
  }, TEST_TIMEOUT_MS);

  it('links to the leader cut (it still reaches the store): it shrinks its in-sync set, and after the heal nothing acknowledged is lost', async () => {
    const c = await fixture.start({ brokers: 3, proxied: true });
    const k = fixture.client(c);
    await k.admin().createTopic('cut', { partitions: 2, replicationFactor: 3, config: { minInsyncReplicas: 2 } });
    const work = new ProduceWorkload(k, 'cut');
    work.start();
    await new Promise((r) => setTimeout(r, 1500));
    const { leader } = await leaderOf(k, 'cut', 0);
    step(`cut the links of leader ${leader}`);
    c.cutLinks(leader);
    // Its followers stop fetching; it is still registered, so it stays leader and drops them from the in-sync set.
    const observer = new KmqClient({ brokers: c.bootstrap(), requestTimeoutMs: 5000, retry: { retries: 60, initialMs: 50, maxMs: 500 } });
    fixture.track(observer);
    await until('the isolated leader alone in sync', 20_000, async () => {
      const l = await leaderOf(observer, 'cut', 0);
      return l.leader === leader && l.isr.length === 1 ? l : undefined;
    });
    step('in-sync set shrunk');
    await new Promise((r) => setTimeout(r, 2000));
    c.healLinks(leader);
    step('healed');
    await new Promise((r) => setTimeout(r, Math.max(3000, (RUN_SECONDS - 8) * 1000)));
    await work.stop();
    await until('every partition fully in sync', 30_000, async () => {
      const d = await k.admin().describeTopic('cut');
      return d.topic.partitions.every((p) => p.isr.length === 3) ? true : undefined;
    });
    const r = check(work.acked, work.sent, work.failedSends, await readAll(k, 'cut'));
    report('cut links', r, { leader, errors: Object.fromEntries(work.errors) });
    expect(r.acked).toBeGreaterThan(100);
    expectConsistent(r);
  }, TEST_TIMEOUT_MS);

  it('followers frozen, then the leader killed: the records only the leader had were never acknowledged', async () => {
    const c = await fixture.start({ brokers: 3 });
    const k = fixture.client(c);
    await k.admin().createTopic('lagging', { partitions: 1, replicationFactor: 3, config: { minInsyncReplicas: 2 } });
    const work = new ProduceWorkload(k, 'lagging');
    work.start();
    const rounds = Math.max(2, Math.floor(RUN_SECONDS / 6));
    for (let round = 0; round < rounds; round++) {
      await new Promise((r) => setTimeout(r, 1500));
      const { leader } = await until('partition 0 has a leader', 20_000, async () => {
        const l = await leaderOf(k, 'lagging', 0);
        return l.leader !== NO_BROKER ? l : undefined;
      });
      const followers = c.ids.filter((id) => id !== leader && c.isRunning(id));
      // Followers stop copying (shorter than the lag time: they stay in sync on paper) while the leader keeps taking writes.
      for (const f of followers) c.pause(f);
      await new Promise((r) => setTimeout(r, 800));
      await c.kill(leader);
      for (const f of followers) c.resume(f);
      await until('a new leader', 15_000, async () => {
        const l = await leaderOf(k, 'lagging', 0);
        return l.leader !== leader && l.leader !== NO_BROKER ? l : undefined;
      });
      await c.restart(leader);
    }
    await work.stop();
    await until('every partition fully in sync', 30_000, async () => {
      const d = await k.admin().describeTopic('lagging');
      return d.topic.partitions.every((p) => p.isr.length === 3) ? true : undefined;
    });
    const r = check(work.acked, work.sent, work.failedSends, await readAll(k, 'lagging'));
    report('frozen followers, leader killed', r, { errors: Object.fromEntries(work.errors) });
    expect(r.acked).toBeGreaterThan(100);
    expectConsistent(r);
  }, TEST_TIMEOUT_MS);

  it('a consumer group reads every acknowledged record while the group coordinator and partition leaders are killed', async () => {
    const c = await fixture.start({ brokers: 3 });
    const k = fixture.client(c);
    await k.admin().createTopic('grouped', { partitions: 4, replicationFactor: 3, config: { minInsyncReplicas: 2 } });
    const consumed = new Map<string, number>();
    const members = [fixture.client(c), fixture.client(c)].map((mk) => mk.consumer({ groupId: 'g', topics: ['grouped'], fromBeginning: true, sessionTimeoutMs: 6000, maxWaitMs: 200 }));
    let stopping = false;
    const loops = members.map(async (m) => {
      for await (const b of m.batches()) {
        for (const r of b.records) {
          const v = r.value?.toString() ?? '';
          consumed.set(v, (consumed.get(v) ?? 0) + 1);
        }
        if (stopping) break;
      }
    });
    const work = new ProduceWorkload(k, 'grouped');
    work.start();
    const deadline = Date.now() + RUN_SECONDS * 1000;
    let kills = 0;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2000));
      // Alternately the coordinator (leader of __consumer_offsets-0) and a data partition's leader.
      const target = kills % 2 === 0 ? '__consumer_offsets' : 'grouped';
      const { leader } = await until(`${target} has a leader`, 20_000, async () => {
        const l = await leaderOf(k, target, 0);
        return l.leader !== NO_BROKER ? l : undefined;
      });
      await c.kill(leader);
      await until(`a new leader of ${target}`, 15_000, async () => {
        const l = await leaderOf(k, target, 0);
        return l.leader !== leader && l.leader !== NO_BROKER ? l : undefined;
      });
      await c.restart(leader);
      kills++;
    }
    await work.stop();
    // Every acknowledged record reaches the group (at least once: a rebalance may repeat some).
    const ackedValues = work.acked.map((a) => `v-${a.seq}`);
    await until('the group consumed every acknowledged record', 60_000, async () => (ackedValues.every((v) => consumed.has(v)) ? true : undefined)).catch(() => undefined);
    stopping = true;
    const lost = ackedValues.filter((v) => !consumed.has(v));
    const unexpected = [...consumed.keys()].filter((v) => !/^v-\d+$/.test(v) || Number(v.slice(2)) >= work.sent);
    const redelivered = [...consumed.values()].filter((n) => n > 1).length;
    process.stdout.write(`consumer group: acked ${ackedValues.length}, consumed ${consumed.size} distinct, lost ${lost.length}, unexpected ${unexpected.length}, redelivered ${redelivered}, kills ${kills}\n`);
    for (const m of members) await m.close().catch(() => undefined);
    await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 5000))]);
    expect(kills).toBeGreaterThan(1);
    expect(ackedValues.length).toBeGreaterThan(100);
    expect(lost).toEqual([]);
    expect(unexpected).toEqual([]);
  }, TEST_TIMEOUT_MS);

  it('processed keys survive the loss of the broker keeping them: a key completed before is still processed on the new leader', async () => {
    const c = await fixture.start({ brokers: 3 });
    const k = fixture.client(c);
    const keys = k.processedKeys('orders-sub');
    // A claim is answered before its journal record is replicated; the completes after it wait for theirs, and the journal keeps order.
    expect(await keys.claim('order-in-flight', 'sidecar-a', 60_000)).toBe('claimed');
    const done = Array.from({ length: 50 }, (_, i) => `order-${i}`);
    for (const key of done) {
      expect(await keys.claim(key, 'sidecar-a', 5000)).toBe('claimed');
      await keys.complete(key, 'sidecar-a', 3_600_000);
    }
    const { leader } = await leaderOf(k, '__processed_keys', 0);
    await c.kill(leader);
    await until('a new leader of __processed_keys', 15_000, async () => {
      const l = await leaderOf(k, '__processed_keys', 0);
      return l.leader !== leader && l.leader !== NO_BROKER ? l : undefined;
    });
    for (const key of done) expect(await keys.claim(key, 'sidecar-b', 5000)).toBe('processed');
    // The claim came through too: another owner must wait for it to expire.
    expect(await keys.claim('order-in-flight', 'sidecar-b', 5000)).toBe('busy');
    expect(await keys.claim('order-new', 'sidecar-b', 5000)).toBe('claimed');
  }, TEST_TIMEOUT_MS);

  it('SIGSTOP of the leader past its lease: a new leader takes over, the frozen one is fenced when it wakes, nothing acknowledged is lost', async () => {
    const c = await fixture.start({ brokers: 3 });
    const k = fixture.client(c);
    await k.admin().createTopic('frozen', { partitions: 2, replicationFactor: 3, config: { minInsyncReplicas: 2 } });
    const work = new ProduceWorkload(k, 'frozen');
    work.start();
    await new Promise((r) => setTimeout(r, 1500));
    const { leader } = await leaderOf(k, 'frozen', 0);
    step(`pause leader ${leader}`);
    c.pause(leader);
    await until('a new leader of partition 0', 15_000, async () => {
      const l = await leaderOf(k, 'frozen', 0);
      return l.leader !== leader && l.leader !== NO_BROKER ? l : undefined;
    });
    step('new leader elected');
    await new Promise((r) => setTimeout(r, 2000));
    c.resume(leader);
    step(`resumed ${leader}`);
    await new Promise((r) => setTimeout(r, Math.max(3000, (RUN_SECONDS - 6) * 1000)));
    step('stopping the producer');
    await work.stop();
    step('producer stopped');
    await until('every partition fully in sync', 30_000, async () => {
      const d = await k.admin().describeTopic('frozen');
      return d.topic.partitions.every((p) => p.isr.length === 3) ? true : undefined;
    });
    const r = check(work.acked, work.sent, work.failedSends, await readAll(k, 'frozen'));
    report('leader pause', r, { errors: Object.fromEntries(work.errors) });
    expect(r.acked).toBeGreaterThan(100);
    expectConsistent(r);
  }, TEST_TIMEOUT_MS);

  it('etcd down for longer than the broker leases: produce goes on where it can, and nothing acknowledged is lost when it returns', async () => {
    const c = await fixture.start({ brokers: 3 });
    const k = fixture.client(c);
    await k.admin().createTopic('storeless', { partitions: 3, replicationFactor: 3, config: { minInsyncReplicas: 2 } });
    const work = new ProduceWorkload(k, 'storeless');
    work.start();
    await new Promise((r) => setTimeout(r, 1500));
    const etcd = c.etcd!;
    await etcd.kill();
    const ackedBefore = work.acked.length;
    await new Promise((r) => setTimeout(r, 6000));
    // Leaders keep their roles while the store is away: replication needs no store.
    const ackedDuring = work.acked.length - ackedBefore;
    await etcd.restart();
    await new Promise((r) => setTimeout(r, Math.max(4000, (RUN_SECONDS - 8) * 1000)));
    await work.stop();
    await until('every partition fully in sync', 30_000, async () => {
      const d = await k.admin().describeTopic('storeless');
      return d.topic.partitions.every((p) => p.isr.length === 3 && p.leader !== NO_BROKER) ? true : undefined;
    });
    const r = check(work.acked, work.sent, work.failedSends, await readAll(k, 'storeless'));
    report('etcd down', r, { ackedWhileStoreDown: ackedDuring, errors: Object.fromEntries(work.errors) });
    expect(ackedDuring).toBeGreaterThan(0);
    expectConsistent(r);
  }, TEST_TIMEOUT_MS);

  it('refuses acks=all below min.insync.replicas and never elects a leader from outside the in-sync set', async () => {
    const c = await fixture.start({ brokers: 3 });
    const k = fixture.client(c);
    await k.admin().createTopic('isr', { partitions: 1, replicationFactor: 3, config: { minInsyncReplicas: 2 } });
    const producer = k.producer({ acks: 'all' });
    await producer.send('isr', [{ value: 'a' }, { value: 'b' }]);
    await producer.close();
    // Every broker names the same cluster.
    const ids = await Promise.all(c.bootstrap().map(async (b) => {
      const one = new KmqClient({ brokers: [b] });
      fixture.track(one);
      return (await one.admin().describeCluster()).clusterId;
    }));
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(1);
    const { leader } = await leaderOf(k, 'isr', 0);
    const followers = c.ids.filter((id) => id !== leader);
    for (const f of followers) await c.kill(f);
    await until('the in-sync set shrinks to the leader', 15_000, async () => {
      const l = await leaderOf(k, 'isr', 0);
      return l.isr.length === 1 ? l : undefined;
    });
    // The leader reports it in its metrics.
    const metrics = await (await fetch(`http://127.0.0.1:${c.broker(leader)!.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^kmq_broker_under_replicated_partitions 1$/m);
    expect(metrics).toMatch(/^kmq_broker_partition_in_sync_replicas\{topic="isr",partition="0"\} 1$/m);
    expect(metrics).toMatch(/^kmq_broker_high_watermark\{topic="isr",partition="0"\} 2$/m);
    const lone = new KmqClient({ brokers: c.bootstrap(), retry: { retries: 0 } });
    fixture.track(lone);
    const refused = await lone
      .producer({ acks: 'all', retries: 0 })
      .send('isr', [{ value: 'refused' }])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(refused).toBeInstanceOf(KmqError);
    expect((refused as KmqError).code).toBe(ErrorCode.NotEnoughReplicas);
    // acks=leader is still taken: it asks for one copy.
    await lone.producer({ acks: 'leader' }).send('isr', [{ value: 'c' }]);

    // The leader dies too; a follower that fell out of the in-sync set comes back: it must not lead.
    await c.kill(leader);
    await c.restart(followers[0]!);
    const k2 = fixture.client(c);
    await new Promise((r) => setTimeout(r, 5000));
    const meanwhile = await leaderOf(k2, 'isr', 0);
    expect(meanwhile.leader).toBe(NO_BROKER);
    expect(meanwhile.isr).toEqual([leader]);
    // The in-sync member returns: it leads again, with every record it acknowledged.
    await c.restart(leader);
    await until('the old leader leads again', 20_000, async () => {
      const l = await leaderOf(k2, 'isr', 0);
      return l.leader === leader ? l : undefined;
    });
    const log = await readAll(k2, 'isr');
    expect(log.map((r) => r.value)).toEqual(['a', 'b', 'c']);
  }, TEST_TIMEOUT_MS);
});
