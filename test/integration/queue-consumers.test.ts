import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { KmqClient } from '../../client/index.js';
import type { Delivery, QueueConsumer } from '../../client/queue-consumer.js';
import { BrokerProcess, tempDir } from '../utils/broker-process.js';

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function publishAll(client: KmqClient, queue: string, n: number, prefix: string): Promise<void> {
  const publisher = client.publisher();
  for (let i = 0; i < n; i += 500) {
    const batch = Array.from({ length: Math.min(500, n - i) }, (_, j) => ({ value: `${prefix}${i + j}` }));
    await publisher.publish({ queue }, batch);
  }
}

/** Acks every delivery; records values whose ack the broker confirmed. */
function ackLoop(consumer: QueueConsumer, acked: string[], hold?: { stop: boolean; held: Delivery[] }): Promise<void> {
  return (async () => {
    for await (const batch of consumer.batches()) {
      if (hold?.stop) {
        // A hung consumer: keeps its locks, settles nothing.
        hold.held.push(...batch);
        continue;
      }
      await consumer.ackAll(batch);
      for (const d of batch) acked.push(d.value!.toString());
    }
  })().catch(() => undefined);
}

// Queue acceptance: competing consumers, a consumer that dies, a broker that dies.
describe('queue consumers', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('4 competing consumers ack each of 20,000 messages exactly once; a dead consumer’s messages go to the others after the lock timeout', async () => {
    const broker = await BrokerProcess.start();
    cleanups.push(() => broker.cleanup());
    const admin = new KmqClient({ brokers: [broker.address] });
    cleanups.push(() => admin.close());
    await admin.admin().createQueue('work', { partitions: 2, lockTimeoutMs: 1500 });

    const clients = Array.from({ length: 4 }, () => new KmqClient({ brokers: [broker.address] }));
    for (const c of clients) cleanups.push(() => c.close());
    const acked: string[][] = [[], [], [], []];
    const hung = { stop: false, held: [] as Delivery[] };
    const consumers = clients.map((c) => c.queueConsumer({ queue: 'work', prefetch: 200 }));
    const loops = consumers.map((c, i) => ackLoop(c, acked[i]!, i === 3 ? hung : undefined));

    const publishing = publishAll(admin, 'work', 20_000, 'm');
    // Consumer 3 hangs mid-stream holding its deliveries.
    await waitFor(() => acked[3]!.length >= 500);
    hung.stop = true;
    await waitFor(() => hung.held.length > 0);
    await publishing;
    await waitFor(() => acked.reduce((s, a) => s + a.length, 0) >= 20_000);

    // Then it dies: its connection goes away without a goodbye.
    const heldValues = hung.held.map((d) => d.value!.toString());
    await clients[3]!.close().catch(() => undefined);

    const all = acked.flat();
    expect(all).toHaveLength(20_000);
    expect(new Set(all).size).toBe(20_000);
    // Everything the hung consumer held was acked by the others.
    const byOthers = new Set(acked.slice(0, 3).flat());
    for (const v of heldValues) expect(byOthers.has(v)).toBe(true);
    expect(heldValues.length).toBeGreaterThan(0);
    // Its late acks are refused: the locks expired and the messages were settled by others.
    await expect(hung.held[0]!.ack()).rejects.toBeDefined();

    const d = await admin.admin().describeQueue('work');
    expect(d.depth).toEqual({ ready: 0, inFlight: 0, delayed: 0 });
    expect(d.redeliveries).toBeGreaterThanOrEqual(heldValues.length);
    for (const c of consumers.slice(0, 3)) await c.close();
    await Promise.all(loops.slice(0, 3));
  });

  it('after kill -9 of the broker no acked message comes back, every unacked one does, and delivery counts continue', async () => {
    const dataDir = tempDir('kmq-queue-kill-');
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    let broker = await BrokerProcess.start({ dataDir });
    cleanups.push(() => broker.kill());
    const client = new KmqClient({ brokers: [broker.address], retry: { retries: 0 } });
    await client.admin().createQueue('orders', { lockTimeoutMs: 60_000 });
    await publishAll(client, 'orders', 3000, 'o');

    const consumer = client.queueConsumer({ queue: 'orders', prefetch: 500 });
    const acked = new Set<string>();
    const inFlight = new Map<string, number>();
    let stop = false;
    const loop = (async () => {
      for await (const batch of consumer.batches()) {
        if (stop) {
          for (const d of batch) inFlight.set(d.value!.toString(), d.deliveryCount);
          continue;
        }
        const keep = batch.slice(0, Math.floor(batch.length / 2));
        const leave = batch.slice(keep.length);
        await consumer.ackAll(keep);
        for (const d of keep) acked.add(d.value!.toString());
        // The other half stays unacked, held under its lock, when the broker dies.
        for (const d of leave) inFlight.set(d.value!.toString(), d.deliveryCount);
        // Half of every batch is held: the prefetch fills up, so stop after the first batches.
        if (acked.size >= 200) stop = true;
      }
    })().catch(() => undefined);
    await waitFor(() => stop && inFlight.size > 0);
    await broker.kill();
    await client.close().catch(() => undefined);
    await loop;

    broker = await BrokerProcess.start({ dataDir });
    const after = new KmqClient({ brokers: [broker.address] });
    cleanups.push(() => after.close());
    const second = after.queueConsumer({ queue: 'orders', prefetch: 1000 });
    const seen = new Map<string, number>();
    const run = (async () => {
      for await (const batch of second.batches()) {
        for (const d of batch) seen.set(d.value!.toString(), d.deliveryCount);
        await second.ackAll(batch);
      }
    })();
    await waitFor(() => acked.size + seen.size >= 3000, 30_000);
    await second.close();
    await run;

    for (const v of acked) expect(seen.has(v), `acked ${v} came back`).toBe(false);
    expect(acked.size + seen.size).toBe(3000);
    for (const [v, count] of inFlight) expect(seen.get(v), v).toBe(count + 1);
  });
});
