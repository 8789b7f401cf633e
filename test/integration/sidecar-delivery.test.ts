import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { Server, ServerCredentials, credentials, status } from '@grpc/grpc-js';
import type { ClientDuplexStream, ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmqClient } from '../../client/index.js';
import type { DecodedRecord } from '../../client/index.js';
import type { SubscriptionConfig } from '../../sidecar/config.js';
import { AppCallbackService, OnMessageResponse_Outcome, SidecarClient } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import type { ConsumeRequest, ConsumeResponse, Delivery, OnMessageRequest, OnMessageResponse } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import { BrokerProcess } from '../utils/broker-process.js';
import { SidecarProcess } from '../utils/sidecar-process.js';
import { publishVia, readPartitionZero, recordHeader, until } from '../utils/sidecar-calls.js';

// The sidecar's delivery engine end to end: a real broker, real `kmq sidecar`
// processes, an AppCallback server inside the test for push subscriptions, and
// a Consume stream for pull.

const run = randomUUID().slice(0, 8);
const name = (s: string): string => `${s}-${run}`;

/** One OnMessage call as the app saw it. */
interface Call {
  at: number;
  delivery: Delivery;
}

type Answer = Partial<OnMessageResponse> | Error | Promise<Partial<OnMessageResponse> | Error>;

/** The app's AppCallback server: per subscription, the calls seen and a handler. */
class CallbackApp {
  readonly calls = new Map<string, Call[]>();
  readonly handlers = new Map<string, (d: Delivery, n: number) => Answer>();
  private readonly server = new Server();
  port = 0;

  async start(): Promise<void> {
    this.server.addService(AppCallbackService, {
      onMessage: (call: ServerUnaryCall<OnMessageRequest, OnMessageResponse>, callback: sendUnaryData<OnMessageResponse>) => {
        const { subscription, delivery } = call.request;
        const list = this.calls.get(subscription) ?? [];
        this.calls.set(subscription, list);
        list.push({ at: Date.now(), delivery: delivery! });
        const handler = this.handlers.get(subscription);
        const answer = handler === undefined ? { outcome: OnMessageResponse_Outcome.OUTCOME_SUCCESS } : handler(delivery!, list.length);
        void Promise.resolve(answer).then((a) => {
          if (a instanceof Error) callback(Object.assign(a, { code: status.INTERNAL }));
          else callback(null, { outcome: OnMessageResponse_Outcome.OUTCOME_UNSPECIFIED, retryDelayMs: 0, reason: '', ...a });
        });
      },
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => (err === null ? resolve(port) : reject(err))),
    );
  }

  callsOf(subscription: string): Call[] {
    return this.calls.get(subscription) ?? [];
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

let broker: BrokerProcess;
let admin: KmqClient;
const app = new CallbackApp();
const sidecars: SidecarProcess[] = [];

async function startSidecar(subscriptions: SubscriptionConfig[], extra: Record<string, unknown> = {}): Promise<{ sidecar: SidecarProcess; client: SidecarClient }> {
  const sidecar = await SidecarProcess.start({ broker: broker.address, config: { subscriptions, ...extra } });
  sidecars.push(sidecar);
  return { sidecar, client: new SidecarClient(sidecar.address, credentials.createInsecure()) };
}

const publish = publishVia;


const readTopic = (topic: string, count: number): Promise<DecodedRecord[]> => readPartitionZero(admin, topic, count);

const header = recordHeader;

async function offsetOf(group: string, topic: string): Promise<{ offset: number; logEndOffset: number }> {
  const offsets = await admin.admin().fetchOffsets(group, [{ topic, partition: 0 }]);
  return offsets.find((o) => o.topic === topic && o.partition === 0) ?? { offset: -1, logEndOffset: 0 };
}

/** The group's committed offset of partition 0 (-1: none). */
async function committed(group: string, topic: string): Promise<number> {
  return (await offsetOf(group, topic)).offset;
}

async function httpGet(sidecar: SidecarProcess, path: string): Promise<{ status: number; body: string }> {
  const port = (sidecar.logs().find((l) => l.msg === 'Sidecar started') as { metricsPort: number }).metricsPort;
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

async function metrics(sidecar: SidecarProcess): Promise<string> {
  return (await httpGet(sidecar, '/metrics')).body;
}

function metric(text: string, line: string): number {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? 0 : Number(found.slice(line.length + 1));
}

/** A small deterministic PRNG (mulberry32), so a failing order can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pushRetry = name('push-retry');
const pushPoison = name('push-poison');
const pushOnce = name('push-once');
const pushNobody = name('push-nobody');

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

beforeAll(async () => {
  broker = await BrokerProcess.start();
  admin = new KmqClient({ brokers: [broker.address] });
  for (const t of [pushRetry, pushPoison, pushOnce, pushNobody, name('rand'), name('term')]) await admin.admin().createTopic(t, { partitions: 1 });
  await app.start();
});

afterAll(async () => {
  for (const s of sidecars) await s.cleanup();
  app.stop();
  await admin?.close();
  await broker?.cleanup();
});

describe('sidecar delivery: push subscriptions', () => {
  let sidecar: SidecarProcess;
  let client: SidecarClient;

  beforeAll(async () => {
    const push = { push: { port: app.port } };
    ({ sidecar, client } = await startSidecar([
      {
        name: pushRetry,
        topic: pushRetry,
        delivery: push,
        dlqPolicy: { maxAttempts: 5, backoff: { initial: '200ms', max: '5s', multiplier: 2, jitter: 0.1 }, handlerTimeoutMs: '5s' },
      },
      { name: pushPoison, topic: pushPoison, delivery: push, maxInFlight: 1, dlqPolicy: { maxAttempts: 3, backoff: { initial: 20, multiplier: 2, jitter: 0 }, handlerTimeoutMs: 300 } },
      { name: pushOnce, topic: pushOnce, delivery: push, guarantee: 'effectively-once', idempotencyKeyHeader: 'order-id', maxInFlight: 1 },
      { name: pushNobody, topic: pushNobody, delivery: { push: { port: await closedPort() } }, dlqPolicy: { maxAttempts: 3, backoff: { initial: 100, jitter: 0 } } },
    ]));
  });

  afterAll(() => client?.close());

  it('retries a failing handler with the policy’s growing backoff, then acks', async () => {
    // Fails twice (an error status, then RETRY without a delay), then succeeds.
    app.handlers.set(pushRetry, (_d, n) => (n === 1 ? new Error('boom') : n === 2 ? { outcome: OnMessageResponse_Outcome.OUTCOME_RETRY } : { outcome: OnMessageResponse_Outcome.OUTCOME_SUCCESS }));
    await publish(client, { destination: { topic: pushRetry }, payload: Buffer.from('flaky') });
    await until('3 calls', () => app.callsOf(pushRetry).length >= 3);
    await until('the ack committed', async () => (await committed(pushRetry, pushRetry)) === 1);
    const calls = app.callsOf(pushRetry);
    expect(calls.length).toBe(3);
    expect(calls.map((c) => c.delivery.attempt)).toEqual([1, 2, 3]);
    const gap1 = calls[1]!.at - calls[0]!.at;
    const gap2 = calls[2]!.at - calls[1]!.at;
    // 200 ms ± 10 %, then 400 ms ± 10 %; the upper bounds leave room for a loaded machine.
    expect(gap1).toBeGreaterThanOrEqual(180 - 5);
    expect(gap2).toBeGreaterThanOrEqual(360 - 5);
    expect(gap2).toBeGreaterThan(gap1);
    expect(gap1).toBeLessThan(220 + 3_000);
    expect(gap2).toBeLessThan(440 + 3_000);
    const m = await metrics(sidecar);
    expect(metric(m, `kmq_sidecar_retried_total{subscription="${pushRetry}"}`)).toBe(2);
    expect(metric(m, `kmq_sidecar_acked_total{subscription="${pushRetry}"}`)).toBe(1);
    expect(metric(m, `kmq_sidecar_delivered_total{subscription="${pushRetry}"}`)).toBe(3);
    expect(metric(m, `kmq_sidecar_handler_seconds_count{subscription="${pushRetry}"}`)).toBe(3);
    expect(metric(m, 'kmq_sidecar_published_total{kind="topic"}')).toBeGreaterThanOrEqual(1);
    expect(await httpGet(sidecar, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect(await httpGet(sidecar, '/readyz')).toEqual({ status: 200, body: 'ready\n' });
    expect((await httpGet(sidecar, '/nope')).status).toBe(404);
  });

  it('dead-letters an always-failing message after max attempts with its history, and the partition moves on', async () => {
    // 'poison' always fails (a timeout, then RETRY answers); 'drop' asks for the dead-letter queue; 'ok' succeeds.
    app.handlers.set(pushPoison, (d, n) => {
      const p = d.payload.toString();
      if (p === 'poison' && n === 1) return new Promise((r) => setTimeout(() => r({ outcome: OnMessageResponse_Outcome.OUTCOME_SUCCESS }), 1_000));
      if (p === 'poison') return { outcome: OnMessageResponse_Outcome.OUTCOME_RETRY, reason: `still failing (${n})` };
      if (p === 'drop') return { outcome: OnMessageResponse_Outcome.OUTCOME_DEAD_LETTER, reason: 'malformed order' };
      return { outcome: OnMessageResponse_Outcome.OUTCOME_SUCCESS };
    });
    for (const p of ['poison', 'drop', 'ok']) await publish(client, { destination: { topic: pushPoison }, payload: Buffer.from(p) });
    await until('ok handled', () => app.callsOf(pushPoison).some((c) => c.delivery.payload.toString() === 'ok'));
    const seen = app.callsOf(pushPoison).map((c) => `${c.delivery.payload.toString()}#${c.delivery.attempt}`);
    expect(seen).toEqual(['poison#1', 'poison#2', 'poison#3', 'drop#1', 'ok#1']);

    const letters = await readTopic(`${pushPoison}.dlq`, 2);
    expect(letters.map((r) => r.value!.toString())).toEqual(['poison', 'drop']);
    const [poison, drop] = letters as [DecodedRecord, DecodedRecord];
    expect(header(poison, 'x-kmq-dlq-attempts')).toBe('3');
    expect(header(poison, 'x-kmq-dlq-reason')).toBe('max attempts (3) reached');
    expect(header(poison, 'x-kmq-dlq-last-failure-reason')).toBe('still failing (3)');
    const first = Date.parse(header(poison, 'x-kmq-dlq-first-failure-at')!);
    const last = Date.parse(header(poison, 'x-kmq-dlq-last-failure-at')!);
    expect(last).toBeGreaterThan(first);
    expect(header(poison, 'x-kmq-dlq-source-offset')).toBe('0');
    expect(header(drop, 'x-kmq-dlq-attempts')).toBe('1');
    expect(header(drop, 'x-kmq-dlq-reason')).toBe('malformed order');
    expect(header(drop, 'x-kmq-dlq-first-failure-at')).toBeUndefined();
    await until('all three committed', async () => (await committed(pushPoison, pushPoison)) === 3);
    expect(metric(await metrics(sidecar), `kmq_sidecar_dead_lettered_total{subscription="${pushPoison}"}`)).toBe(2);
  });

  it('counts an unreachable app as a failed attempt, with backoff, and dead-letters after max attempts', async () => {
    const started = Date.now();
    await publish(client, { destination: { topic: pushNobody }, payload: Buffer.from('lost?') });
    const [letter] = await readTopic(`${pushNobody}.dlq`, 1);
    // Retries after 100 ms and 200 ms.
    expect(Date.now() - started).toBeGreaterThanOrEqual(300 - 5);
    expect(letter!.value!.toString()).toBe('lost?');
    expect(header(letter!, 'x-kmq-dlq-attempts')).toBe('3');
    expect(header(letter!, 'x-kmq-dlq-last-failure-reason')).toContain('the app is unreachable on port');
  });

  it('effectively-once: duplicate publishes with one idempotency key reach the handler once', async () => {
    // Repeats under fresh producer keys are all stored, so only the sidecar's processed-key check stops them;
    // a repeat under one producer key may also be dropped by the broker.
    for (const key of ['k1', 'k1', 'k2', 'k1', 'k2']) await publish(client, { destination: { topic: pushOnce }, payload: Buffer.from(key), headers: { 'order-id': key } });
    for (let i = 0; i < 2; i++) await publish(client, { destination: { topic: pushOnce }, payload: Buffer.from('k3'), headers: { 'order-id': 'k3' }, idempotencyKey: `k3-${run}` });
    await until('all records settled', async () => {
      const o = await offsetOf(pushOnce, pushOnce);
      return o.logEndOffset >= 6 && o.offset === o.logEndOffset;
    });
    const keys = app.callsOf(pushOnce).map((c) => c.delivery.headers['order-id']);
    expect(keys.sort()).toEqual(['k1', 'k2', 'k3']);
    const stored = (await offsetOf(pushOnce, pushOnce)).logEndOffset;
    expect(metric(await metrics(sidecar), `kmq_sidecar_duplicates_skipped_total{subscription="${pushOnce}"}`)).toBe(stored - 3);
  });
});

describe('sidecar delivery: guarantees on Consume streams', () => {
  it('at-most-once acks before the app answers; effectively-once skips a processed key', async () => {
    const most = name('most');
    const once = name('once');
    for (const t of [most, once]) await admin.admin().createTopic(t, { partitions: 1 });
    const { sidecar, client } = await startSidecar([
      { name: most, topic: most, guarantee: 'at-most-once', commit: { intervalMs: 50 } },
      { name: once, topic: once, guarantee: 'effectively-once', commit: { intervalMs: 50 } },
    ]);
    const stream = (subscription: string): { call: ClientDuplexStream<ConsumeRequest, ConsumeResponse>; got: Delivery[] } => {
      const call = client.consume();
      const got: Delivery[] = [];
      call.on('data', (r: ConsumeResponse) => r.delivery !== undefined && got.push(r.delivery));
      call.on('error', () => {});
      call.write({ start: { subscription, maxInFlight: 0 } });
      return { call, got };
    };

    await publish(client, { destination: { topic: most }, payload: Buffer.from('fire') });
    const m = stream(most);
    await until('delivered', () => m.got.length === 1);
    // Never answered, yet acked and committed.
    await until('committed', async () => (await committed(most, most)) === 1);

    for (let i = 0; i < 3; i++) await publish(client, { destination: { topic: once }, payload: Buffer.from(`copy ${i}`), idempotencyKey: `order-7-${i}` });
    await publish(client, { destination: { topic: once }, payload: Buffer.from('again'), idempotencyKey: 'order-7-0' });
    const o = stream(once);
    const stored = async (): Promise<number> => (await offsetOf(once, once)).logEndOffset;
    await until('all settled', async () => {
      for (const d of o.got.splice(0)) o.call.write({ ack: { deliveryId: d.deliveryId } });
      return (await committed(once, once)) === (await stored());
    });
    const text = await metrics(sidecar);
    const handled = metric(text, `kmq_sidecar_delivered_total{subscription="${once}"}`);
    const skipped = metric(text, `kmq_sidecar_duplicates_skipped_total{subscription="${once}"}`);
    // Three distinct keys reach the app; a stored repeat of order-7-0 is skipped.
    expect(handled).toBe(3);
    expect(skipped).toBe((await stored()) - 3);
    m.call.end();
    o.call.end();
    client.close();
  });
});

describe('sidecar delivery: per-key order on an ordered Consume stream', () => {
  it('holds later records of a key while an earlier one times out and is retried in place', async () => {
    const topic = name('keys');
    await admin.admin().createTopic(topic, { partitions: 1 });
    const { client } = await startSidecar([
      { name: topic, topic, maxInFlight: 10, retryPolicy: { maxAttempts: 5, initialBackoffMs: 20, jitter: 0, handlerTimeoutMs: 1_000 } },
    ]);
    for (const [key, p] of [['A', 'a1'], ['B', 'b1'], ['A', 'a2'], ['B', 'b2'], ['A', 'a3']] as const) {
      await publish(client, { destination: { topic }, key: Buffer.from(key), payload: Buffer.from(p) });
    }
    const call: ClientDuplexStream<ConsumeRequest, ConsumeResponse> = client.consume();
    const got: Array<{ at: number; d: Delivery }> = [];
    let ended = false;
    call.on('data', (r: ConsumeResponse) => {
      if (r.delivery !== undefined) got.push({ at: Date.now(), d: r.delivery });
    });
    call.on('error', () => {});
    call.on('status', () => (ended = true));
    call.write({ start: { subscription: topic, maxInFlight: 0 } });
    const find = async (payload: string, attempt: number): Promise<{ at: number; d: Delivery }> => {
      let hit: { at: number; d: Delivery } | undefined;
      await until(`${payload}#${attempt}`, () => (hit = got.find((g) => g.d.payload.toString() === payload && g.d.attempt === attempt)) !== undefined);
      return hit!;
    };

    const a1 = await find('a1', 1);
    const b1 = await find('b1', 1);
    await new Promise((r) => setTimeout(r, 100));
    // a2 and b2 wait for the earlier record of their key.
    expect(got.map((g) => g.d.payload.toString())).toEqual(['a1', 'b1']);
    call.write({ ack: { deliveryId: b1.d.deliveryId } });
    const b2 = await find('b2', 1);
    call.write({ ack: { deliveryId: b2.d.deliveryId } });
    // a1 is left unsettled: after the handler timeout it comes again as attempt 2.
    const a1again = await find('a1', 2);
    expect(a1again.at - a1.at).toBeGreaterThanOrEqual(1_000 - 5);
    // A late settlement of the timed-out delivery is ignored; the stream goes on.
    call.write({ ack: { deliveryId: a1.d.deliveryId } });
    call.write({ retry: { deliveryId: a1again.d.deliveryId, delayMs: 50 } });
    const a1third = await find('a1', 3);
    expect(got.some((g) => g.d.payload.toString() === 'a2')).toBe(false);
    call.write({ ack: { deliveryId: a1third.d.deliveryId } });
    const a2 = await find('a2', 1);
    call.write({ ack: { deliveryId: a2.d.deliveryId } });
    const a3 = await find('a3', 1);
    call.write({ ack: { deliveryId: a3.d.deliveryId } });
    const keyA = got.filter((g) => g.d.key?.toString() === 'A').map((g) => `${g.d.payload.toString()}#${g.d.attempt}`);
    expect(keyA).toEqual(['a1#1', 'a1#2', 'a1#3', 'a2#1', 'a3#1']);
    await until('all committed', async () => (await committed(topic, topic)) === 5);
    expect(ended).toBe(false);
    call.end();
    client.close();
  });
});

describe('sidecar delivery: ordered subscriptions keep maxInFlight when records arrive one by one', () => {
  it('hands out later fetches while the app holds earlier ones, keeping per-key order and in-place retry holds across them', async () => {
    const topic = name('trickle');
    await admin.admin().createTopic(topic, { partitions: 1 });
    const { client } = await startSidecar([{ name: topic, topic, maxInFlight: 10, retryPolicy: { maxAttempts: 5, initialBackoffMs: 20, jitter: 0, handlerTimeoutMs: 30_000 } }]);
    const call: ClientDuplexStream<ConsumeRequest, ConsumeResponse> = client.consume();
    const got: Array<{ at: number; d: Delivery }> = [];
    call.on('data', (r: ConsumeResponse) => {
      if (r.delivery !== undefined) got.push({ at: Date.now(), d: r.delivery });
    });
    call.on('error', () => {});
    call.write({ start: { subscription: topic, maxInFlight: 0 } });
    const seen = (payload: string, attempt = 1): { at: number; d: Delivery } | undefined => got.find((g) => g.d.payload.toString() === payload && g.d.attempt === attempt);
    const find = async (payload: string, attempt = 1): Promise<{ at: number; d: Delivery }> => {
      await until(`${payload}#${attempt}`, () => seen(payload, attempt) !== undefined);
      return seen(payload, attempt)!;
    };
    // Each record is published once the one before it was delivered: each comes in a fetch of its own.
    for (const k of ['k1', 'k2', 'k3', 'k4']) {
      await publish(client, { destination: { topic }, key: Buffer.from(k), payload: Buffer.from(k) });
      await find(k);
    }
    // None acked: the app holds all four at once (maxInFlight 10), not one fetch at a time.
    expect(got.map((g) => g.d.payload.toString())).toEqual(['k1', 'k2', 'k3', 'k4']);

    // A later record of a held key waits for it, though it came in a later fetch.
    await publish(client, { destination: { topic }, key: Buffer.from('k1'), payload: Buffer.from('k1-second') });
    await new Promise((r) => setTimeout(r, 300));
    expect(seen('k1-second')).toBeUndefined();
    call.write({ ack: { deliveryId: seen('k1')!.d.deliveryId } });
    const k1second = await find('k1-second');

    // A retry in place holds the partition: a record fetched meanwhile waits until the retried one went out again.
    call.write({ retry: { deliveryId: seen('k2')!.d.deliveryId, delayMs: 600 } });
    await publish(client, { destination: { topic }, key: Buffer.from('k5'), payload: Buffer.from('k5') });
    const k2again = await find('k2', 2);
    const k5 = await find('k5');
    expect(k5.at).toBeGreaterThanOrEqual(k2again.at);

    for (const d of [k1second, k2again, seen('k3')!, seen('k4')!, k5]) call.write({ ack: { deliveryId: d.d.deliveryId } });
    await until('all committed', async () => (await committed(topic, topic)) === 6);
    const order = got.map((g) => `${g.d.payload.toString()}#${g.d.attempt}`);
    expect(order).toEqual(['k1#1', 'k2#1', 'k3#1', 'k4#1', 'k1-second#1', 'k2#2', 'k5#1']);
    call.end();
    client.close();
  });
});

describe('sidecar delivery: an ordered subscription shared by two sidecars', () => {
  it('hands every record to an app while the group rebalances to a second sidecar, and commits all of them', async () => {
    const topic = name('shared-ordered');
    await admin.admin().createTopic(topic, { partitions: 2 });
    const sub: SubscriptionConfig = { name: topic, topic, maxInFlight: 20, commit: { maxCount: 10, intervalMs: 50 } };
    const acked = new Map<string, number>();
    const ackedBy = new Map<SidecarClient, number>();
    /** A Consume stream that acks each delivery a few ms after it came, as a handler would. */
    const consume = (client: SidecarClient): ClientDuplexStream<ConsumeRequest, ConsumeResponse> => {
      const call = client.consume();
      call.on('data', (r: ConsumeResponse) => {
        const d = r.delivery;
        if (d === undefined) return;
        setTimeout(() => {
          call.write({ ack: { deliveryId: d.deliveryId } });
          acked.set(d.payload.toString(), (acked.get(d.payload.toString()) ?? 0) + 1);
          ackedBy.set(client, (ackedBy.get(client) ?? 0) + 1);
        }, 3);
      });
      call.on('error', () => {});
      call.write({ start: { subscription: topic, maxInFlight: 0 } });
      return call;
    };
    const a = await startSidecar([sub]);
    const callA = consume(a.client);
    const sent: string[] = [];
    const send = async (i: number): Promise<void> => {
      const payload = `m${i}`;
      await publish(a.client, { destination: { topic }, key: Buffer.from(`k${i % 17}`), payload: Buffer.from(payload) });
      sent.push(payload);
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 20));
    };
    let i = 0;
    while (i < 150) await send(i++);
    // A second sidecar joins the group: once the rebalance is through, the partitions are split between the two.
    const joined = await startSidecar([sub]);
    const callB = consume(joined.client);
    const deadline = Date.now() + 30_000;
    while ((ackedBy.get(joined.client) ?? 0) < 10 && Date.now() < deadline) await send(i++);
    for (const end = i + 100; i < end; ) await send(i++);
    const total = sent.length;
    await until('every record acked by an app', () => sent.every((p) => acked.has(p)), 60_000);
    const offsets = async (): Promise<number> => {
      const o = await admin.admin().fetchOffsets(topic, [{ topic, partition: 0 }, { topic, partition: 1 }]);
      return o.reduce((n, x) => n + Math.max(0, x.offset), 0);
    };
    await until('both partitions committed to their end', async () => (await offsets()) === total, 30_000);
    // At-least-once: a record in flight across the rebalance may come twice, never more here.
    expect([...acked.values()].every((n) => n <= 2)).toBe(true);
    // The second sidecar did take a partition over.
    expect(ackedBy.get(joined.client) ?? 0).toBeGreaterThan(0);
    callA.end();
    callB.end();
    a.client.close();
    joined.client.close();
  }, 120_000);
});

describe('sidecar delivery: ordered commits', () => {
  it('commits the contiguous acked point while acks are outstanding, never past an unacked record, whatever the ack order', async () => {
    const topic = name('rand');
    const { sidecar, client } = await startSidecar([{ name: topic, topic, maxInFlight: 40, commit: { maxCount: 5, intervalMs: 20 } }]);
    const total = 300;
    await Promise.all(Array.from({ length: total }, (_, i) => publish(client, { destination: { topic }, payload: Buffer.from(String(i)) })));
    const call: ClientDuplexStream<ConsumeRequest, ConsumeResponse> = client.consume();
    const held: Delivery[] = [];
    const acked = new Set<number>();
    call.on('data', (r: ConsumeResponse) => {
      if (r.delivery !== undefined) held.push(r.delivery);
    });
    call.on('error', () => {});
    call.write({ start: { subscription: topic, maxInFlight: 0 } });

    const violations: string[] = [];
    let polls = 0;
    let polling = true;
    // The highest commit seen while some delivered record was still unacked.
    let committedWhileOutstanding = 0;
    const poller = (async () => {
      while (polling) {
        const outstanding = acked.size < total;
        // A read failing once the suite tore down (after a failed assertion) ends the poller.
        const c = await committed(topic, topic).catch(() => undefined);
        if (c === undefined) break;
        polls++;
        // Still outstanding after the answer: the read saw a commit made before the last ack.
        if (outstanding && acked.size < total) committedWhileOutstanding = Math.max(committedWhileOutstanding, c);
        for (let o = 0; o < c; o++) if (!acked.has(o)) violations.push(`committed ${c} while offset ${o} was unacked`);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();

    // One record in the middle is held back until everything else is acked: the
    // commit must still reach it (mid-batch) and stop there.
    const pinned = 150;
    let pinnedDelivery: Delivery | undefined;
    const random = prng(0x5eed);
    while (acked.size < total) {
      if (pinnedDelivery !== undefined && acked.size === total - 1) {
        await until('the commit reaches the held-back record', async () => {
          const c = await committed(topic, topic);
          committedWhileOutstanding = Math.max(committedWhileOutstanding, c);
          return c >= pinned;
        });
        acked.add(pinned);
        call.write({ ack: { deliveryId: pinnedDelivery.deliveryId } });
        break;
      }
      if (held.length === 0) {
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      // Ack a random held delivery, so acks arrive in a shuffled order.
      const i = Math.floor(random() * held.length);
      const d = held.splice(i, 1)[0]!;
      const offset = Number(d.source!.offset);
      if (offset === pinned) {
        pinnedDelivery = d;
        continue;
      }
      acked.add(offset);
      call.write({ ack: { deliveryId: d.deliveryId } });
      if (random() < 0.3) await new Promise((r) => setTimeout(r, 1));
    }
    await until('everything committed', async () => (await committed(topic, topic)) === total);
    polling = false;
    await poller;
    call.end();
    expect(violations).toEqual([]);
    expect(polls).toBeGreaterThan(3);
    expect(committedWhileOutstanding).toBe(pinned);
    expect(metric(await metrics(sidecar), `kmq_sidecar_commit_lag_records{subscription="${topic}",topic="${topic}",partition="0"}`)).toBe(0);
    client.close();
  });

  it('on SIGTERM lets the handler in flight finish, commits it, and exits 0', async () => {
    const topic = name('term');
    let finished = 0;
    // The second call is still running when SIGTERM comes.
    app.handlers.set(topic, (_d, n) => new Promise((r) => setTimeout(() => {
      finished++;
      r({ outcome: OnMessageResponse_Outcome.OUTCOME_SUCCESS });
    }, n === 2 ? 1_500 : 300)));
    const { sidecar, client } = await startSidecar([{ name: topic, topic, maxInFlight: 1, delivery: { push: { port: app.port } } }], { shutdownGraceMs: 5_000 });
    for (let i = 0; i < 5; i++) await publish(client, { destination: { topic }, payload: Buffer.from(String(i)) });
    client.close();
    await until('the second call started', () => app.callsOf(topic).length >= 2);
    const code = await sidecar.stop();
    expect(code).toBe(0);
    // The handler that held message 1 finished within the grace period; nothing after it was delivered.
    expect(finished).toBe(2);
    expect(app.callsOf(topic).length).toBe(2);
    expect(await committed(topic, topic)).toBe(2);
    expect(sidecar.logs().map((l) => l.msg)).toEqual(expect.arrayContaining(['Shutting down']));
  });
});
