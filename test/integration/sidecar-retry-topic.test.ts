import { randomUUID } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmqClient } from '../../client/index.js';
import type { DecodedRecord } from '../../client/index.js';
import type { SubscriptionConfig } from '../../sidecar/config.js';
import { SidecarClient } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import type { ConsumeRequest, ConsumeResponse, Delivery } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import { BrokerProcess } from '../utils/broker-process.js';
import { SidecarProcess } from '../utils/sidecar-process.js';
import { publishVia, readPartitionZero, recordHeader, until } from '../utils/sidecar-calls.js';

// Ordered subscriptions with `retry.mode: topic`, end to end: a real broker, real
// `kmq sidecar` processes and Consume streams. A failed record goes to the retry
// topic and its partition moves on; the retry group delivers it on the same stream
// when due, with the attempt and origin of its headers, and dead-letters it with
// its history after max attempts; the attempt count survives a SIGKILL.

const run = randomUUID().slice(0, 8);
const name = (s: string): string => `${s}-${run}`;

let broker: BrokerProcess;
let admin: KmqClient;
const sidecars: SidecarProcess[] = [];
const clients: SidecarClient[] = [];

beforeAll(async () => {
  broker = await BrokerProcess.start();
  admin = new KmqClient({ brokers: [broker.address] });
});

afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of sidecars) await s.cleanup();
  await admin?.close();
  await broker?.cleanup();
});

async function startSidecar(sub: SubscriptionConfig): Promise<{ sidecar: SidecarProcess; client: SidecarClient }> {
  const sidecar = await SidecarProcess.start({ broker: broker.address, config: { subscriptions: [sub] } });
  sidecars.push(sidecar);
  const client = new SidecarClient(sidecar.address, credentials.createInsecure());
  clients.push(client);
  return { sidecar, client };
}

const publish = publishVia;


const readTopic = (topic: string, count: number): Promise<DecodedRecord[]> => readPartitionZero(admin, topic, count);

const header = recordHeader;

/** The group's committed offset of partition 0 of the topic (-1: none). */
async function committed(group: string, topic: string): Promise<number> {
  const offsets = await admin.admin().fetchOffsets(group, [{ topic, partition: 0 }]);
  return offsets.find((o) => o.topic === topic && o.partition === 0)?.offset ?? -1;
}

/** A delivery as the app saw it, and when. */
interface Seen {
  at: number;
  d: Delivery;
}

/** What the app does with a delivery: answer now, or hold it (the test answers later, or never). */
type Answer = 'ack' | 'retry' | 'hold' | { deadLetter: string };

/** An app on one Consume stream answering each delivery with `handler`. */
class ConsumeApp {
  readonly seen: Seen[] = [];
  readonly call: ClientDuplexStream<ConsumeRequest, ConsumeResponse>;
  readonly started: Promise<boolean>;

  constructor(client: SidecarClient, subscription: string, handler: (d: Delivery) => Answer) {
    this.call = client.consume();
    this.started = new Promise<boolean>((resolve) => {
      this.call.on('data', (r: ConsumeResponse) => {
        if (r.started !== undefined) resolve(true);
        const d = r.delivery;
        if (d === undefined) return;
        this.seen.push({ at: Date.now(), d });
        const a = handler(d);
        if (a === 'ack') this.call.write({ ack: { deliveryId: d.deliveryId } });
        else if (a === 'retry') this.call.write({ retry: { deliveryId: d.deliveryId } });
        else if (a !== 'hold') this.call.write({ deadLetter: { deliveryId: d.deliveryId, reason: a.deadLetter } });
      });
      this.call.on('error', () => resolve(false));
    });
    this.call.write({ start: { subscription, maxInFlight: 0 } });
  }

  /** The deliveries of a payload, in order, as `payload#attempt`. */
  attempts(payload: string): Seen[] {
    return this.seen.filter((s) => s.d.payload.toString() === payload);
  }

  async find(payload: string, attempt: number, timeoutMs = 20_000): Promise<Seen> {
    let hit: Seen | undefined;
    await until(`${payload}#${attempt}`, () => (hit = this.seen.find((s) => s.d.payload.toString() === payload && s.d.attempt === attempt)) !== undefined, timeoutMs);
    return hit!;
  }

  ack(s: Seen): void {
    this.call.write({ ack: { deliveryId: s.d.deliveryId } });
  }

  end(): void {
    this.call.end();
  }
}

/** Opens a Consume stream as a restarted app would: retried while the subscription is still busy. */
async function reconnect(client: SidecarClient, subscription: string, handler: (d: Delivery) => Answer): Promise<ConsumeApp> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const app = new ConsumeApp(client, subscription, handler);
    if (await app.started) return app;
    if (Date.now() > deadline) throw new Error(`could not open a Consume stream on ${subscription}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const retryHeaders = (d: Delivery): string[] => Object.keys(d.headers).filter((k) => k.startsWith('x-kmq-retry-'));

describe('sidecar retry topic', () => {
  it('retries through the retry topic with the policy’s backoff while the partition moves on', async () => {
    const topic = name('flaky');
    await admin.admin().createTopic(topic, { partitions: 1 });
    const { client } = await startSidecar({
      name: topic,
      topic,
      retry: { mode: 'topic' },
      retryPolicy: { maxAttempts: 5, initialBackoffMs: 300, multiplier: 2, jitter: 0.1, handlerTimeoutMs: 10_000 },
      commit: { intervalMs: 50 },
    });
    // 'flaky' fails twice (the app asks for a retry), then its third attempt is held until the test acks it.
    // 'later' has the same key and comes after it in the partition; 'other' has another key.
    await publish(client, { destination: { topic }, key: Buffer.from('K'), payload: Buffer.from('flaky'), headers: { 'order-id': '7' } });
    await publish(client, { destination: { topic }, key: Buffer.from('K'), payload: Buffer.from('later') });
    await publish(client, { destination: { topic }, key: Buffer.from('L'), payload: Buffer.from('other') });
    const app = new ConsumeApp(client, topic, (d) => (d.payload.toString() !== 'flaky' ? 'ack' : d.attempt < 3 ? 'retry' : 'hold'));

    const f1 = await app.find('flaky', 1);
    const f2 = await app.find('flaky', 2);
    const f3 = await app.find('flaky', 3);
    const later = await app.find('later', 1);
    await app.find('other', 1);
    // The partition moved on: the same-key record after it was delivered while the first waited for its retry.
    expect(later.at).toBeLessThan(f2.at);
    // And every source record is committed while attempt 3 is still unanswered.
    await until('the source committed past the retried record', async () => (await committed(topic, topic)) === 3);
    app.ack(f3);

    expect(app.attempts('flaky').map((s) => s.d.attempt)).toEqual([1, 2, 3]);
    const gap1 = f2.at - f1.at;
    const gap2 = f3.at - f2.at;
    // 300 ms ± 10 %, then 600 ms ± 10 %; the upper bounds leave room for a loaded machine.
    expect(gap1).toBeGreaterThanOrEqual(270 - 5);
    expect(gap2).toBeGreaterThanOrEqual(540 - 5);
    expect(gap2).toBeGreaterThan(gap1);
    expect(gap1).toBeLessThan(330 + 3_000);
    expect(gap2).toBeLessThan(660 + 3_000);
    // A retried delivery names the original record and shows the app its own headers and timestamp.
    for (const s of [f2, f3]) {
      expect(s.d.source).toEqual({ topic, partition: 0, offset: 0 });
      expect(s.d.key?.toString()).toBe('K');
      expect(s.d.headers['order-id']).toBe('7');
      expect(retryHeaders(s.d)).toEqual([]);
      expect(s.d.timestampMs).toBe(f1.d.timestampMs);
    }

    // The retry topic holds one record per retry, with the next attempt, its due time, origin and history.
    const retries = await readTopic(`${topic}.retry`, 2);
    expect(retries.map((r) => header(r, 'x-kmq-retry-attempt'))).toEqual(['2', '3']);
    for (const r of retries) {
      expect(r.value!.toString()).toBe('flaky');
      expect(r.key!.toString()).toBe('K');
      expect(header(r, 'order-id')).toBe('7');
      expect(header(r, 'x-kmq-retry-subscription')).toBe(topic);
      expect(header(r, 'x-kmq-retry-source-topic')).toBe(topic);
      expect(header(r, 'x-kmq-retry-source-partition')).toBe('0');
      expect(header(r, 'x-kmq-retry-source-offset')).toBe('0');
      expect(header(r, 'x-kmq-retry-last-failure-reason')).toBe('the app asked for a retry');
      // Due after its backoff from the failure.
      expect(Number(header(r, 'x-kmq-retry-not-before'))).toBeGreaterThanOrEqual(Number(header(r, 'x-kmq-retry-last-failure-at')) + 270);
    }
    const [r2, r3] = retries as [DecodedRecord, DecodedRecord];
    expect(header(r3, 'x-kmq-retry-first-failure-at')).toBe(header(r2, 'x-kmq-retry-first-failure-at'));
    expect(Number(header(r3, 'x-kmq-retry-last-failure-at'))).toBeGreaterThan(Number(header(r2, 'x-kmq-retry-last-failure-at')));
    expect(f2.at).toBeGreaterThanOrEqual(Number(header(r2, 'x-kmq-retry-not-before')) - 5);
    expect(f3.at).toBeGreaterThanOrEqual(Number(header(r3, 'x-kmq-retry-not-before')) - 5);
    // Both retry records are done once attempt 3 is acked.
    await until('the retry group committed', async () => (await committed(`${topic}.retry`, `${topic}.retry`)) === 2);
    expect(app.seen.length).toBe(5);
    app.end();
  });

  it('dead-letters an always-failing record after max attempts with its history, and the source moves past it', async () => {
    const topic = name('poison');
    await admin.admin().createTopic(topic, { partitions: 1 });
    const { client } = await startSidecar({
      name: topic,
      topic,
      retry: { mode: 'topic' },
      retryPolicy: { maxAttempts: 3, initialBackoffMs: 100, jitter: 0, handlerTimeoutMs: 1_000 },
      commit: { intervalMs: 50 },
    });
    for (const p of ['poison', 'drop', 'ok']) await publish(client, { destination: { topic }, payload: Buffer.from(p), headers: { app: p } });
    // 'poison': a retry, a retry, then no answer (handler timeout) at the last attempt.
    // 'drop': a retry, then an explicit dead-letter. 'ok' succeeds.
    const app = new ConsumeApp(client, topic, (d) => {
      const p = d.payload.toString();
      if (p === 'poison') return d.attempt < 3 ? 'retry' : 'hold';
      if (p === 'drop') return d.attempt === 1 ? 'retry' : { deadLetter: 'malformed order' };
      return 'ack';
    });

    const letters = await readTopic(`${topic}.dlq`, 2);
    expect(letters.map((r) => r.value!.toString()).sort()).toEqual(['drop', 'poison']);
    const poison = letters.find((r) => r.value!.toString() === 'poison')!;
    const drop = letters.find((r) => r.value!.toString() === 'drop')!;
    expect(app.attempts('poison').map((s) => s.d.attempt)).toEqual([1, 2, 3]);
    expect(app.attempts('drop').map((s) => s.d.attempt)).toEqual([1, 2]);
    expect(app.attempts('ok').map((s) => s.d.attempt)).toEqual([1]);
    // 'ok' was not held behind the failing records.
    expect(app.attempts('ok')[0]!.at).toBeLessThan(app.attempts('poison')[1]!.at);
    for (const s of app.attempts('poison')) expect(s.d.source).toEqual({ topic, partition: 0, offset: 0 });

    // The dead letters name the original record, not the retry topic, and carry the whole history.
    expect(header(poison, 'x-kmq-dlq-subscription')).toBe(topic);
    expect(header(poison, 'x-kmq-dlq-source-topic')).toBe(topic);
    expect(header(poison, 'x-kmq-dlq-source-partition')).toBe('0');
    expect(header(poison, 'x-kmq-dlq-source-offset')).toBe('0');
    expect(header(poison, 'x-kmq-dlq-attempts')).toBe('3');
    expect(header(poison, 'x-kmq-dlq-reason')).toBe('max attempts (3) reached');
    expect(header(poison, 'x-kmq-dlq-last-failure-reason')).toBe('handler timeout (1000 ms)');
    const first = Date.parse(header(poison, 'x-kmq-dlq-first-failure-at')!);
    const last = Date.parse(header(poison, 'x-kmq-dlq-last-failure-at')!);
    // Two backoffs (100 ms, 200 ms) and a handler timeout (1 s) lie between the first and the last failure.
    expect(last - first).toBeGreaterThanOrEqual(1_300 - 10);
    expect(header(poison, 'app')).toBe('poison');
    expect(poison.headers.filter((h) => h.key.startsWith('x-kmq-retry-'))).toEqual([]);
    expect(header(drop, 'x-kmq-dlq-source-offset')).toBe('1');
    expect(header(drop, 'x-kmq-dlq-attempts')).toBe('2');
    expect(header(drop, 'x-kmq-dlq-reason')).toBe('malformed order');
    expect(header(drop, 'x-kmq-dlq-first-failure-at')).toBeDefined();
    expect(header(drop, 'x-kmq-dlq-last-failure-reason')).toBe('the app asked for a retry');

    // The source group passed every record; the retry group passed its three retry records.
    await until('the source committed', async () => (await committed(topic, topic)) === 3);
    await until('the retry group committed', async () => (await committed(`${topic}.retry`, `${topic}.retry`)) === 3);
    app.end();
  });

  it('keeps the attempt count across a sidecar killed (-9) while a record waits in the retry topic', async () => {
    const topic = name('kill9');
    await admin.admin().createTopic(topic, { partitions: 1 });
    const sub: SubscriptionConfig = {
      name: topic,
      topic,
      retry: { mode: 'topic' },
      retryPolicy: { maxAttempts: 5, initialBackoffMs: '3s', jitter: 0, handlerTimeoutMs: 10_000 },
      commit: { intervalMs: 50 },
    };
    const first = await startSidecar(sub);
    await publish(first.client, { destination: { topic }, payload: Buffer.from('survivor') });
    const app1 = new ConsumeApp(first.client, topic, () => 'retry');
    await app1.find('survivor', 1);
    // Stored in the retry topic, and the source committed past it: only the retry topic holds it now.
    const [waiting] = await readTopic(`${topic}.retry`, 1);
    expect(header(waiting!, 'x-kmq-retry-attempt')).toBe('2');
    const due = Number(header(waiting!, 'x-kmq-retry-not-before'));
    await until('the source committed', async () => (await committed(topic, topic)) === 1);
    expect(Date.now()).toBeLessThan(due);
    await first.sidecar.kill();
    expect(app1.seen.length).toBe(1);

    const second = await startSidecar(sub);
    const app2 = await reconnect(second.client, topic, () => 'ack');
    const again = await app2.find('survivor', 2, 40_000);
    expect(again.at).toBeGreaterThanOrEqual(due - 5);
    expect(again.d.source).toEqual({ topic, partition: 0, offset: 0 });
    await until('the retry group committed', async () => (await committed(`${topic}.retry`, `${topic}.retry`)) === 1);
    // Delivered once after the restart, as attempt 2: not from the source again as attempt 1.
    await new Promise((r) => setTimeout(r, 300));
    expect(app2.seen.map((s) => `${s.d.payload.toString()}#${s.d.attempt}`)).toEqual(['survivor#2']);
    expect(await committed(topic, topic)).toBe(1);
    app2.end();
  });
});
