import { randomUUID } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmqClient } from '../../client/index.js';
import { SidecarClient } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import type { ConsumeRequest, ConsumeResponse, Delivery, PublishRequest, PublishResponse } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import { BrokerProcess } from '../utils/broker-process.js';
import { SidecarProcess } from '../utils/sidecar-process.js';

// Effectively-once across failures: the processed-key store is kept by the broker,
// so it outlives a sidecar killed with SIGKILL and an app that dies mid-handling.

const run = randomUUID().slice(0, 8);
let broker: BrokerProcess;
let admin: KmqClient;
const sidecars: SidecarProcess[] = [];

beforeAll(async () => {
  broker = await BrokerProcess.start();
  admin = new KmqClient({ brokers: [broker.address] });
});
afterAll(async () => {
  for (const s of sidecars) await s.cleanup();
  await admin?.close();
  await broker?.cleanup();
});

async function sidecarFor(topic: string): Promise<{ sidecar: SidecarProcess; client: SidecarClient }> {
  // Commits are slow on purpose: the kill lands after the app's ack and before the commit.
  const sidecar = await SidecarProcess.start({ broker: broker.address, config: { subscriptions: [{ name: topic, topic, guarantee: 'effectively-once', commit: { intervalMs: 600_000, maxCount: 100_000 } }] } });
  sidecars.push(sidecar);
  return { sidecar, client: new SidecarClient(sidecar.address, credentials.createInsecure()) };
}

function publish(client: SidecarClient, req: Partial<PublishRequest>): Promise<PublishResponse> {
  const full: PublishRequest = { destination: undefined, payload: Buffer.alloc(0), headers: {}, ...req };
  return new Promise((resolve, reject) => client.publish(full, (err, res) => (err === null ? resolve(res) : reject(err))));
}

function consume(client: SidecarClient, subscription: string): { call: ClientDuplexStream<ConsumeRequest, ConsumeResponse>; got: Delivery[]; started: Promise<boolean> } {
  const call = client.consume();
  const got: Delivery[] = [];
  const started = new Promise<boolean>((resolve) => {
    call.on('data', (r: ConsumeResponse) => {
      if (r.started !== undefined) resolve(true);
      if (r.delivery !== undefined) got.push(r.delivery);
    });
    call.on('error', () => resolve(false));
  });
  call.write({ start: { subscription, maxInFlight: 0 } });
  return { call, got, started };
}

/** Opens a Consume stream as a restarted app would: while the old stream is still closing, the ordered subscription is busy, so try again. */
async function reconnect(client: SidecarClient, subscription: string): Promise<ReturnType<typeof consume>> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = consume(client, subscription);
    if (await s.started) return s;
    if (Date.now() > deadline) throw new Error(`could not reopen a Consume stream on ${subscription}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('sidecar failures with effectively-once', () => {
  it('a sidecar killed (-9) between handler success and commit: the app sees each key once', async () => {
    const topic = `kill9-${run}`;
    await admin.admin().createTopic(topic, { partitions: 1 });
    const first = await sidecarFor(topic);
    await publish(first.client, { destination: { topic }, payload: Buffer.from('order-1'), idempotencyKey: `order-1-${run}` });
    const s1 = consume(first.client, topic);
    await until('delivery', () => s1.got.length === 1);
    s1.call.write({ ack: { deliveryId: s1.got[0]!.deliveryId } });
    // The key is recorded as processed (durably, by the broker) once the ack is handled; give it a moment.
    await until('key processed', async () => {
      const store = admin.processedKeys(topic);
      return (await store.claim(`order-1-${run}`, 'probe', 1000)) === 'processed';
    });
    await first.sidecar.kill();
    expect((await admin.admin().fetchOffsets(topic)).find((o) => o.topic === topic)?.offset ?? -1).toBeLessThan(1);

    const second = await sidecarFor(topic);
    const s2 = await reconnect(second.client, topic);
    await publish(second.client, { destination: { topic }, payload: Buffer.from('order-2'), idempotencyKey: `order-2-${run}` });
    await until('the next message', () => s2.got.length >= 1);
    // order-1 came back from the log (not committed) but the sidecar skipped it.
    expect(s2.got.map((d) => d.payload.toString())).toEqual(['order-2']);
    s2.call.write({ ack: { deliveryId: s2.got[0]!.deliveryId } });
    s2.call.end();
  });

  it('an app that dies mid-handling: the message is not lost and is handled once after it comes back', async () => {
    const topic = `appdies-${run}`;
    await admin.admin().createTopic(topic, { partitions: 1 });
    const { client } = await sidecarFor(topic);
    await publish(client, { destination: { topic }, payload: Buffer.from('job-1'), idempotencyKey: `job-1-${run}` });
    const dying = consume(client, topic);
    await until('delivery', () => dying.got.length === 1);
    // The app process goes away before answering.
    dying.call.cancel();

    const back = await reconnect(client, topic);
    await until('redelivery', () => back.got.length === 1, 30_000);
    expect(back.got[0]!.payload.toString()).toBe('job-1');
    back.call.write({ ack: { deliveryId: back.got[0]!.deliveryId } });
    await new Promise((r) => setTimeout(r, 500));
    expect(back.got).toHaveLength(1);
    back.call.end();
  });
});
