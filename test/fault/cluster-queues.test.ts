import { describe, expect, it } from 'vitest';
import type { KmqClient, QueueConsumer } from '../../client/index.js';
import { until } from '../utils/test-cluster.js';
import { faultFixture } from './fixture.js';

/**
 * Queues in a 3-broker cluster on a real etcd: queues, exchanges and bindings made
 * through any broker are served by the queue host (the leader of __share_state
 * partition 0), whose queue partitions are replicated and led by it. Killing the
 * host (-9) under a publish and consume load moves the queues to a new host: every
 * acknowledged publish is delivered (at least once; the consumer acks each), the
 * bindings still route, and nothing arrives that was not published.
 */
const RUN_SECONDS = Number(process.env.KMQ_FAULT_SECONDS ?? 12);
const IDEMPOTENCY_KEY_HEADER = 'x-kmq-idempotency-key';

const fixture = faultFixture();


function step(what: string): void {
  process.stdout.write(`${new Date().toISOString()} ${what}\n`);
}

async function leaderOf(k: KmqClient, topic: string, partition: number): Promise<number> {
  const d = await k.admin().describeTopic(topic);
  return d.topic.partitions.find((x) => x.partition === partition)!.leader;
}

/** Acks every delivery; counts how often each value was delivered. */
function consume(consumer: QueueConsumer, seen: Map<string, number>): Promise<void> {
  return (async () => {
    for (;;) {
      try {
        for await (const batch of consumer.batches()) {
          await consumer.ackAll(batch).catch(() => undefined);
          for (const d of batch) {
            const v = d.value!.toString();
            seen.set(v, (seen.get(v) ?? 0) + 1);
          }
        }
        return;
      } catch {
        // The host moved: the consumer's next batches() call finds the new one.
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
}

describe('queues in a cluster', () => {
  it('kill -9 of the queue host under load: a new host serves, bindings still route, no acknowledged publish is lost', async () => {
    const c = await fixture.start({ brokers: 3 });
    const k = fixture.client(c);
    const admin = k.admin();
    await admin.createQueue('jobs', { partitions: 2, lockTimeoutMs: 2_000 });
    await admin.createExchange('events', 'direct');
    await admin.bind({ exchange: 'events', destination: { kind: 'queue', name: 'jobs' }, routingKey: 'job' });

    // The queue's partitions sit on the host's replicas and follow its leadership.
    const host = await leaderOf(k, '__share_state', 0);
    const jobs = await admin.describeTopic('jobs');
    expect(jobs.topic.partitions.map((p) => p.leader)).toEqual([host, host]);
    expect(jobs.topic.partitions.every((p) => p.replicas.length === 3)).toBe(true);
    // Only the host says so in its metrics.
    for (const id of [1, 2, 3]) {
      const metrics = await (await fetch(`http://127.0.0.1:${c.broker(id)!.httpPort}/metrics`)).text();
      expect(metrics).toMatch(new RegExp(`^kmq_broker_queue_host ${id === host ? 1 : 0}$`, 'm'));
    }
    // Every broker answers for the queue the same way (the request goes to the host).
    for (const id of [1, 2, 3]) {
      const one = fixture.client(c, [c.broker(id)!.address]);
      expect((await one.admin().describeQueue('jobs')).name).toBe('jobs');
    }

    const seen = new Map<string, number>();
    const consumers = [fixture.client(c), fixture.client(c)].map((x) => x.queueConsumer({ queue: 'jobs', prefetch: 50 }));
    const loops = consumers.map((x) => consume(x, seen));

    const acked = new Set<string>();
    const attempted = new Set<string>();
    let failedPublishes = 0;
    let stop = false;
    const publisher = k.publisher();
    const publishing = (async () => {
      for (let batch = 0; !stop; batch++) {
        const values = Array.from({ length: 10 }, (_, i) => `m-${batch}-${i}`);
        for (const v of values) attempted.add(v);
        const messages = values.map((v) => ({ value: v, headers: { [IDEMPOTENCY_KEY_HEADER]: v } }));
        try {
          // Half straight to the queue, half through the exchange.
          if (batch % 2 === 0) await publisher.publish({ queue: 'jobs' }, messages);
          else await publisher.publish({ exchange: 'events', routingKey: 'job', mandatory: true }, messages);
          for (const v of values) acked.add(v);
        } catch {
          failedPublishes++;
        }
      }
    })();

    const killAt = Date.now() + (RUN_SECONDS * 1000) / 3;
    await until('some messages consumed before the kill', RUN_SECONDS * 1000 + 30_000, async () => (Date.now() >= killAt && seen.size > 100 ? true : undefined));
    step(`killing the queue host, broker ${host}`);
    const killedAt = Date.now();
    await c.kill(host);
    const next = await until('a new queue host', 30_000, async () => {
      const l = await leaderOf(k, '__share_state', 0).catch(() => -1);
      return l > 0 && l !== host ? l : undefined;
    });
    const before = seen.size;
    await until('consumption resumes on the new host', 30_000, async () => (seen.size > before + 50 ? true : undefined));
    step(`broker ${next} hosts the queues; consuming again after ${Date.now() - killedAt} ms`);
    expect(Date.now() - killedAt).toBeLessThan(20_000);
    await new Promise((r) => setTimeout(r, (RUN_SECONDS * 1000) / 3));
    await c.restart(host);
    await new Promise((r) => setTimeout(r, (RUN_SECONDS * 1000) / 3));
    stop = true;
    await publishing;
    await until('every acknowledged publish consumed', 60_000, async () => ([...acked].every((v) => seen.has(v)) ? true : undefined)).catch(() => undefined);

    const lost = [...acked].filter((v) => !seen.has(v));
    const unexpected = [...seen.keys()].filter((v) => !attempted.has(v));
    const redelivered = [...seen.values()].filter((n) => n > 1).length;
    process.stdout.write(`queue host kill: acked ${acked.size}, consumed ${seen.size}, failed publishes ${failedPublishes}, lost ${lost.length}, unexpected ${unexpected.length}, redelivered ${redelivered}\n`);
    expect(acked.size).toBeGreaterThan(500);
    expect(lost).toEqual([]);
    expect(unexpected).toEqual([]);
    // The binding made before the kill still routes on the new host.
    expect((await admin.listExchanges()).find((e) => e.name === 'events')?.bindings).toHaveLength(1);
    for (const x of consumers) await x.close();
    await Promise.all(loops);
  }, 180_000 + RUN_SECONDS * 2000);

  it('followers frozen, then the queue host killed: what only the host had was never acknowledged, and every acknowledged publish is delivered', async () => {
    // Lag time past the test, so the frozen followers stay in the in-sync set and one of them is elected.
    const c = await fixture.start({ brokers: 3, replicaLagMs: 60_000 });
    const k = fixture.client(c);
    await k.admin().createQueue('frozen', { partitions: 1 });
    const host = await leaderOf(k, '__share_state', 0);
    const followers = [1, 2, 3].filter((b) => b !== host);
    const publisher = k.publisher();
    const acked = new Set<string>();
    const attempted = new Set<string>();
    const publish = async (values: string[]): Promise<void> => {
      for (const v of values) attempted.add(v);
      try {
        await publisher.publish({ queue: 'frozen' }, values.map((v) => ({ value: v, headers: { [IDEMPOTENCY_KEY_HEADER]: v } })));
        for (const v of values) acked.add(v);
      } catch {
        // Not acknowledged: may or may not be there.
      }
    };
    for (let i = 0; i < 20; i++) await publish(Array.from({ length: 10 }, (_, j) => `before-${i}-${j}`));
    expect(acked.size).toBe(200);

    step(`freezing the followers ${followers.join(', ')}`);
    for (const f of followers) c.pause(f);
    const during = Array.from({ length: 20 }, (_, i) => publish(Array.from({ length: 10 }, (_, j) => `frozen-${i}-${j}`)));
    await new Promise((r) => setTimeout(r, 1_500));
    // The host appended them, but no in-sync replica has them: nothing is acknowledged.
    expect([...acked].filter((v) => v.startsWith('frozen-'))).toEqual([]);
    step(`killing the queue host, broker ${host}, and thawing the followers`);
    await c.kill(host);
    for (const f of followers) c.resume(f);
    await Promise.all(during);
    const next = await until('a new queue host', 30_000, async () => {
      const l = await leaderOf(k, '__share_state', 0).catch(() => -1);
      return followers.includes(l) ? l : undefined;
    });
    step(`broker ${next} hosts the queues`);
    for (let i = 0; i < 10; i++) await publish(Array.from({ length: 10 }, (_, j) => `after-${i}-${j}`));

    const seen = new Map<string, number>();
    const consumer = fixture.client(c).queueConsumer({ queue: 'frozen', prefetch: 100 });
    const loop = consume(consumer, seen);
    await until('every acknowledged publish consumed', 60_000, async () => ([...acked].every((v) => seen.has(v)) ? true : undefined)).catch(() => undefined);
    const lost = [...acked].filter((v) => !seen.has(v));
    const unexpected = [...seen.keys()].filter((v) => !attempted.has(v));
    process.stdout.write(`queue followers frozen, host killed: acked ${acked.size}, consumed ${seen.size}, lost ${lost.length}, unexpected ${unexpected.length}\n`);
    expect(lost).toEqual([]);
    expect(unexpected).toEqual([]);
    await consumer.close();
    await loop;
  }, 180_000);

  it('a shared group on a topic reads the queue host\'s replicas: every record of a fully replicated topic, and a clear error where the host holds no replica', async () => {
    const c = await fixture.start({ brokers: 3 });
    const k = fixture.client(c);
    await k.admin().createQueue('anchor-maker', { partitions: 1 });
    const host = await leaderOf(k, '__share_state', 0);
    await k.admin().createTopic('everywhere', { partitions: 2, replicationFactor: 3 });
    const producer = k.producer({ acks: 'all' });
    await producer.send('everywhere', Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, value: `e-${i}` })));
    await producer.close();
    const seen = new Map<string, number>();
    const consumer = k.queueConsumer({ queue: 'everywhere', group: 'workers' });
    for await (const batch of consumer.batches()) {
      await consumer.ackAll(batch);
      for (const d of batch) seen.set(d.value!.toString(), 1);
      if (seen.size >= 40) break;
    }
    await consumer.close();
    expect(seen.size).toBe(40);

    // A topic of replication factor 1 whose only replica is another broker: said so, not an empty stream.
    await until('a single-replica topic away from the queue host', 30_000, async () => {
      await k.admin().deleteTopic('elsewhere', { ifExists: true });
      await k.admin().createTopic('elsewhere', { partitions: 1, replicationFactor: 1 });
      const p = (await k.admin().describeTopic('elsewhere')).topic.partitions[0]!;
      return p.replicas.includes(host) ? undefined : true;
    });
    const lonely = k.queueConsumer({ queue: 'elsewhere', group: 'workers' });
    const err = await (async () => {
      for await (const _ of lonely.batches()) return undefined;
      return undefined;
    })().catch((e: unknown) => e);
    await lonely.close();
    expect(String(err)).toMatch(/queue host holds no replica of partition\(s\) 0/);
  }, 120_000);
});
