import { randomUUID } from 'node:crypto';
import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { Client, Metadata, credentials, status } from '@grpc/grpc-js';
import type { ClientDuplexStream, ServiceError, StatusObject } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmqClient } from '../../client/index.js';
import type { DecodedRecord } from '../../client/index.js';
import { fileDescriptor as healthDescriptor } from '../../sidecar/gen/grpc/health/v1/health.descriptor.js';
import { HealthCheckResponse_ServingStatus, HealthClient } from '../../sidecar/gen/grpc/health/v1/health.js';
import { fileDescriptor as sidecarDescriptor } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.descriptor.js';
import { SidecarClient } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import type { ConsumeRequest, ConsumeResponse, Delivery, PublishRequest, PublishResponse, PublishStreamRequest, PublishStreamResponse } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import { BrokerProcess } from '../utils/broker-process.js';
import { SidecarProcess } from '../utils/sidecar-process.js';
import { readPartitionZero, recordHeader } from '../utils/sidecar-calls.js';

// A real broker, a real `kmq sidecar` process, and a real grpc-js client with the generated stubs.

const MAX_PAYLOAD = 64 * 1024;
const run = randomUUID().slice(0, 8);
const orders = `orders-${run}`;
const jobs = `jobs-${run}`;
const jobsDlq = `jobs-dlq-${run}`;
const events = `events-${run}`;
const stream = `stream-${run}`;

let broker: BrokerProcess;
let sidecar: SidecarProcess;
let admin: KmqClient;
let app: SidecarClient;

/** A Consume stream with awaitable responses and final status. */
class ConsumeStream {
  private readonly queue: ConsumeResponse[] = [];
  private waiters: Array<() => void> = [];
  readonly status: Promise<StatusObject>;
  ended = false;

  constructor(readonly call: ClientDuplexStream<ConsumeRequest, ConsumeResponse>) {
    call.on('data', (r: ConsumeResponse) => {
      this.queue.push(r);
      this.wake();
    });
    // Errors arrive as the status too.
    call.on('error', () => {});
    this.status = new Promise((resolve) =>
      call.on('status', (s: StatusObject) => {
        this.ended = true;
        this.wake();
        resolve(s);
      }),
    );
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The next response, or undefined when the stream ended first. */
  async next(timeoutMs = 15_000): Promise<ConsumeResponse | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.ended) return undefined;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no Consume response within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.queue.shift();
  }

  async delivery(timeoutMs?: number): Promise<Delivery> {
    const r = await this.next(timeoutMs);
    if (r?.delivery === undefined) throw new Error(`expected a delivery, got ${JSON.stringify(r)}`);
    return r.delivery;
  }

  /** Nothing arrives within `ms`. */
  async quiet(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.queue.length === 0;
  }

  send(req: ConsumeRequest): void {
    this.call.write(req);
  }

  async close(): Promise<StatusObject> {
    this.call.end();
    return this.status;
  }
}

/** Deliveries with `key` that arrive within `ms`; others are acked. */
async function keyed(s: ConsumeStream, key: Buffer, ms: number): Promise<Delivery[]> {
  const out: Delivery[] = [];
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return out;
    const r = await s.next(left).catch(() => undefined);
    if (r?.delivery === undefined) return out;
    if (r.delivery.key?.equals(key) === true) out.push(r.delivery);
    else s.send({ ack: { deliveryId: r.delivery.deliveryId } });
  }
}

function consume(subscription?: string, maxInFlight = 0): ConsumeStream {
  const s = new ConsumeStream(app.consume());
  if (subscription !== undefined) s.send({ start: { subscription, maxInFlight } });
  return s;
}

async function started(s: ConsumeStream): Promise<void> {
  const r = await s.next();
  if (r?.started === undefined) throw new Error(`expected started, got ${JSON.stringify(r)} (status ${JSON.stringify(s.ended ? await s.status : undefined)})`);
}

function publish(req: Partial<PublishRequest>): Promise<PublishResponse> {
  const full: PublishRequest = { destination: undefined, payload: Buffer.alloc(0), headers: {}, ...req };
  return new Promise((resolve, reject) => app.publish(full, (err, res) => (err === null ? resolve(res) : reject(err))));
}

async function publishError(req: Partial<PublishRequest>): Promise<ServiceError> {
  try {
    await publish(req);
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('publish succeeded');
}

const readTopic = (topic: string, count: number): Promise<DecodedRecord[]> => readPartitionZero(admin, topic, count);

const header = recordHeader;

beforeAll(async () => {
  broker = await BrokerProcess.start();
  admin = new KmqClient({ brokers: [broker.address] });
  const a = admin.admin();
  await a.createTopic(orders, { partitions: 2 });
  await a.createTopic(stream, { partitions: 1 });
  await a.createQueue(jobsDlq);
  await a.createQueue(jobs, { deadLetterQueue: jobsDlq });
  await a.createExchange(events, 'direct');
  await a.bind({ exchange: events, destination: { kind: 'queue', name: jobs }, routingKey: 'job.created' });
  sidecar = await SidecarProcess.start({
    broker: broker.address,
    config: {
      maxPayloadBytes: MAX_PAYLOAD,
      shutdownGraceMs: 3_000,
      subscriptions: [
        { name: `billing-${run}`, topic: orders, maxInFlight: 10, retryPolicy: { maxAttempts: 3, initialBackoffMs: 20 } },
        { name: `workers-${run}`, queue: jobs, retryPolicy: { maxAttempts: 5, initialBackoffMs: 20 } },
        { name: `ghost-${run}`, topic: `missing-${run}` },
        { name: `batched-${run}`, topic: stream, maxInFlight: 50 },
      ],
    },
  });
  app = new SidecarClient(sidecar.address, credentials.createInsecure());
});

afterAll(async () => {
  app?.close();
  await admin?.close();
  await sidecar?.cleanup();
  await broker?.cleanup();
});

describe('sidecar: health and reflection', () => {
  it('answers grpc.health.v1 Check with SERVING for the server and the Sidecar service', async () => {
    const health = new HealthClient(sidecar.address, credentials.createInsecure());
    try {
      const check = (service: string): Promise<HealthCheckResponse_ServingStatus> =>
        new Promise((resolve, reject) => health.check({ service }, (e, r) => (e === null ? resolve(r.status) : reject(e))));
      expect(await check('')).toBe(HealthCheckResponse_ServingStatus.SERVING);
      expect(await check('kmq.sidecar.v1.Sidecar')).toBe(HealthCheckResponse_ServingStatus.SERVING);
      await expect(check('no.such.Service')).rejects.toMatchObject({ code: status.NOT_FOUND });
    } finally {
      health.close();
    }
  });

  it('lists its services and serves the compiler’s descriptors through server reflection (v1 and v1alpha)', async () => {
    for (const version of ['v1', 'v1alpha']) {
      const names = listedServices(await reflect(version, 7, '*'));
      expect(names.sort(), version).toEqual(['grpc.health.v1.Health', 'kmq.sidecar.v1.AppCallback', 'kmq.sidecar.v1.Sidecar']);
    }
    // file_containing_symbol: the descriptor generated from sidecar.proto, byte for byte.
    expect(fileDescriptors(await reflect('v1', 4, 'kmq.sidecar.v1.Sidecar')).map((d) => Buffer.from(d))).toEqual([sidecarDescriptor]);
    expect(fileDescriptors(await reflect('v1', 4, 'grpc.health.v1.Health')).map((d) => Buffer.from(d))).toEqual([healthDescriptor]);
    const missing = await reflect('v1', 4, 'no.such.Symbol');
    expect(submessages(missing, 7)).toHaveLength(1);
  });
});

describe('sidecar: publish', () => {
  it('publishes to a topic with a generated idempotency key, or the app’s own', async () => {
    const res = await publish({ destination: { topic: orders }, key: Buffer.from('k0'), payload: Buffer.from('p0'), headers: { tenant: 'a' } });
    expect(res.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.placements).toEqual([{ destination: { topic: orders }, partition: expect.any(Number), offset: expect.any(Number) }]);
    const own = await publish({ destination: { topic: orders }, key: Buffer.from('k0'), payload: Buffer.from('p1'), idempotencyKey: 'order-42' });
    expect(own.idempotencyKey).toBe('order-42');
    expect(own.placements[0]!.partition).toBe(res.placements[0]!.partition);
    expect(own.placements[0]!.offset).toBe(res.placements[0]!.offset + 1);

    const c = admin.consumer({ assignment: [{ topic: orders, partition: res.placements[0]!.partition, offset: res.placements[0]!.offset }] });
    const [b] = await (async () => {
      for await (const batch of c.batches()) return [batch];
      return [];
    })();
    await c.close();
    const [r0, r1] = b!.records;
    expect(r0!.value!.toString()).toBe('p0');
    expect(header(r0!, 'x-kmq-idempotency-key')).toBe(res.idempotencyKey);
    expect(header(r0!, 'tenant')).toBe('a');
    expect(header(r1!, 'x-kmq-idempotency-key')).toBe('order-42');
  });

  it('publishes to a queue and through an exchange, reporting where the message went', async () => {
    const q = await publish({ destination: { queue: jobs }, payload: Buffer.from('direct') });
    expect(q.placements).toEqual([{ destination: { queue: jobs }, partition: 0, offset: expect.any(Number) }]);
    const ex = await publish({ destination: { exchange: { name: events, routingKey: 'job.created' } }, payload: Buffer.from('routed') });
    expect(ex.placements).toEqual([{ destination: { queue: jobs }, partition: 0, offset: q.placements[0]!.offset + 1 }]);
    const none = await publish({ destination: { exchange: { name: events, routingKey: 'nothing.bound' } }, payload: Buffer.from('dropped') });
    expect(none.placements).toEqual([]);
    // Leave the queue empty for the consume test.
    const qc = admin.queueConsumer({ queue: jobs, mode: 'pull', limit: 2 });
    for await (const d of qc.deliveries()) await d.ack();
    await qc.close();
  });

  it('answers each PublishStream message with its id, errors included, and goes on', async () => {
    const call = app.publishStream();
    const answers: PublishStreamResponse[] = [];
    const done = new Promise<StatusObject>((resolve) => call.on('status', resolve));
    call.on('data', (r: PublishStreamResponse) => answers.push(r));
    call.on('error', () => {});
    const reqs: PublishStreamRequest[] = [];
    for (let i = 1; i <= 200; i++) reqs.push({ id: i, message: { destination: { topic: orders }, key: Buffer.from(`s${i % 7}`), payload: Buffer.from(`m${i}`), headers: {} } });
    reqs.push({ id: 1000, message: { destination: { queue: `nope-${run}` }, payload: Buffer.from('x'), headers: {} } });
    reqs.push({ id: 1001, message: undefined });
    reqs.push({ id: 1002, message: { destination: { topic: orders }, payload: Buffer.alloc(MAX_PAYLOAD + 1), headers: {} } });
    for (const r of reqs) call.write(r);
    call.end();
    expect((await done).code).toBe(status.OK);
    expect(answers.map((a) => a.id).sort((x, y) => x - y)).toEqual(reqs.map((r) => r.id));
    const byId = new Map(answers.map((a) => [a.id, a]));
    for (let i = 1; i <= 200; i++) expect(byId.get(i)!.ok?.placements).toHaveLength(1);
    expect(byId.get(1000)!.error).toMatchObject({ code: status.NOT_FOUND });
    expect(byId.get(1001)!.error).toEqual({ code: status.INVALID_ARGUMENT, message: 'message is required: each PublishStreamRequest carries one PublishRequest, or a batch' });
    expect(byId.get(1002)!.error).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
  });

  it('answers the entries of PublishBatch requests in batched results, errors included', async () => {
    const call = app.publishStream();
    const answers: PublishStreamResponse[] = [];
    const done = new Promise<StatusObject>((resolve) => call.on('status', resolve));
    call.on('data', (r: PublishStreamResponse) => answers.push(r));
    call.on('error', () => {});
    const entries = (from: number, n: number): Array<{ id: number; message: PublishRequest }> =>
      Array.from({ length: n }, (_, i) => ({ id: from + i, message: { destination: { topic: stream }, payload: Buffer.from(`b${from + i}`), headers: { n: String(from + i) } } }));
    call.write({ id: 0, batch: { entries: entries(0, 150) } });
    call.write({
      id: 0,
      batch: {
        entries: [
          ...entries(150, 150),
          { id: 1000, message: { destination: { queue: `nope-${run}` }, payload: Buffer.from('x'), headers: {} } },
          { id: 1001, message: undefined },
          { id: 1002, message: { destination: { topic: stream }, payload: Buffer.alloc(MAX_PAYLOAD + 1), headers: {} } },
        ],
      },
    });
    call.end();
    expect((await done).code).toBe(status.OK);
    const results = answers.flatMap((a) => a.results);
    expect(results.map((r) => r.id).sort((x, y) => x - y)).toEqual([...Array.from({ length: 300 }, (_, i) => i), 1000, 1001, 1002]);
    // Batched answers: results that finished together share a response.
    expect(answers.length).toBeLessThan(20);
    for (const a of answers) expect([a.ok, a.error]).toEqual([undefined, undefined]);
    const byId = new Map(results.map((r) => [r.id, r]));
    const offsets = Array.from({ length: 300 }, (_, i) => byId.get(i)!.ok!.placements[0]!.offset);
    // One partition, in the order sent.
    expect(offsets).toEqual(Array.from({ length: 300 }, (_, i) => offsets[0]! + i));
    expect(byId.get(1000)!.error).toMatchObject({ code: status.NOT_FOUND });
    expect(byId.get(1001)!.error).toEqual({ code: status.INVALID_ARGUMENT, message: 'batch.entries[151].message is required' });
    expect(byId.get(1002)!.error).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    expect(byId.get(1002)!.error!.message).toContain('batch.entries[152].message.payload is');
    const stored = await readTopic(stream, 300);
    expect(stored.map((r) => r.value!.toString())).toEqual(Array.from({ length: 300 }, (_, i) => `b${i}`));
    expect(stored.map((r) => header(r, 'n'))).toEqual(Array.from({ length: 300 }, (_, i) => String(i)));
  });

  it('refuses bad publishes with precise statuses', async () => {
    const noDest = await publishError({ payload: Buffer.from('x') });
    expect([noDest.code, noDest.details]).toEqual([status.INVALID_ARGUMENT, 'destination is required: set topic, queue or exchange']);
    const emptyDest = await publishError({ destination: {}, payload: Buffer.from('x') });
    expect([emptyDest.code, emptyDest.details]).toEqual([status.INVALID_ARGUMENT, 'destination is empty: set topic, queue or exchange']);
    const reserved = await publishError({ destination: { topic: orders }, headers: { 'x-kmq-idempotency-key': 'k' } });
    expect(reserved.code).toBe(status.INVALID_ARGUMENT);
    expect(reserved.details).toContain('reserved; set idempotency_key instead');
    const big = await publishError({ destination: { topic: orders }, payload: Buffer.alloc(MAX_PAYLOAD + 1) });
    expect([big.code, big.details]).toEqual([status.RESOURCE_EXHAUSTED, `payload is ${MAX_PAYLOAD + 1} bytes, over the sidecar's maxPayloadBytes (${MAX_PAYLOAD})`]);
    const topic = await publishError({ destination: { topic: `missing-${run}` }, payload: Buffer.from('x') });
    expect(topic.code).toBe(status.NOT_FOUND);
    expect(topic.details).toContain(`missing-${run}`);
    expect(topic.metadata.get('x-kmq-error-code')).toEqual(['UNKNOWN_TOPIC']);
    // The key it would have carried comes back, so a retry can reuse it.
    expect(topic.metadata.get('x-kmq-idempotency-key')[0]).toMatch(/^[0-9a-f-]{36}$/);
    const queue = await publishError({ destination: { queue: `missing-${run}` }, payload: Buffer.from('x') });
    expect([queue.code, queue.metadata.get('x-kmq-error-code')]).toEqual([status.NOT_FOUND, ['UNKNOWN_QUEUE']]);
    const exchange = await publishError({ destination: { exchange: { name: `missing-${run}`, routingKey: '' } }, payload: Buffer.from('x') });
    expect([exchange.code, exchange.metadata.get('x-kmq-error-code')]).toEqual([status.NOT_FOUND, ['UNKNOWN_EXCHANGE']]);
  });
});

describe('sidecar: consume', () => {
  it('ordered: acks commit, a retry comes back in place as attempt 2, dead letters go to <subscription>.dlq', async () => {
    const sub = `billing-${run}`;
    const key = Buffer.from(`ordered-${run}`);
    const sent: PublishResponse[] = [];
    for (const p of ['m1', 'm2', 'm3']) sent.push(await publish({ destination: { topic: orders }, key, payload: Buffer.from(p) }));
    const partition = sent[0]!.placements[0]!.partition;

    const s = consume(sub);
    await started(s);
    // Earlier tests' records come first (the group starts at the earliest offset): ack them.
    // One record of a key at a time is with the app: the next comes once it is done.
    const next = async (): Promise<Delivery> => {
      for (;;) {
        const d = await s.delivery();
        if (d.key?.equals(key) === true) return d;
        s.send({ ack: { deliveryId: d.deliveryId } });
      }
    };
    const d1 = await next();
    expect(d1.attempt).toBe(1);
    expect(d1.payload.toString()).toBe('m1');
    expect(d1.source).toEqual({ topic: orders, partition, offset: sent[0]!.placements[0]!.offset });
    expect(d1.idempotencyKey).toBe(sent[0]!.idempotencyKey);
    expect(d1.headers['x-kmq-idempotency-key']).toBe(sent[0]!.idempotencyKey);

    s.send({ ack: { deliveryId: d1.deliveryId } });
    const d2 = await next();
    expect([d2.payload.toString(), d2.attempt]).toEqual(['m2', 1]);
    s.send({ retry: { deliveryId: d2.deliveryId, delayMs: 100 } });
    const again = await next();
    expect(again.payload.toString()).toBe('m2');
    expect(again.attempt).toBe(2);
    expect(again.deliveryId).not.toBe(d2.deliveryId);
    s.send({ ack: { deliveryId: again.deliveryId } });
    const d3 = await next();
    expect([d3.payload.toString(), d3.attempt]).toEqual(['m3', 1]);
    s.send({ deadLetter: { deliveryId: d3.deliveryId, reason: 'unparseable' } });

    const [letter] = await readTopic(`${sub}.dlq`, 1);
    expect(letter!.value!.toString()).toBe('m3');
    expect(letter!.key).toEqual(key);
    expect(header(letter!, 'x-kmq-dlq-reason')).toBe('unparseable');
    expect(header(letter!, 'x-kmq-dlq-source-topic')).toBe(orders);
    expect(header(letter!, 'x-kmq-dlq-source-offset')).toBe(String(sent[2]!.placements[0]!.offset));
    expect(header(letter!, 'x-kmq-idempotency-key')).toBe(sent[2]!.idempotencyKey);
    // Earlier tests' records still held back behind others of their key: ack them too.
    expect(await keyed(s, key, 500)).toEqual([]);
    expect((await s.close()).code).toBe(status.OK);

    // Everything settled was committed: a new stream starts after it.
    const m4 = await publish({ destination: { topic: orders }, key, payload: Buffer.from('m4') });
    const s2 = consume(sub);
    await started(s2);
    let d4: Delivery | undefined;
    while (d4 === undefined) {
      const d = await s2.delivery();
      if (d.key?.equals(key) === true) d4 = d;
      else s2.send({ ack: { deliveryId: d.deliveryId } });
    }
    expect([d4.payload.toString(), d4.source?.offset, d4.attempt]).toEqual(['m4', m4.placements[0]!.offset, 1]);

    // Retries past maxAttempts (3) dead-letter.
    s2.send({ retry: { deliveryId: d4.deliveryId, delayMs: 0 } });
    const a2 = await s2.delivery();
    s2.send({ retry: { deliveryId: a2.deliveryId } });
    const a3 = await s2.delivery();
    expect([a2.attempt, a3.attempt]).toEqual([2, 3]);
    s2.send({ retry: { deliveryId: a3.deliveryId } });
    const letters = await readTopic(`${sub}.dlq`, 2);
    expect(letters[1]!.value!.toString()).toBe('m4');
    expect(header(letters[1]!, 'x-kmq-dlq-reason')).toBe('max attempts (3) reached');
    expect(header(letters[1]!, 'x-kmq-dlq-attempts')).toBe('3');
    // Nothing of this key comes again (other keys' records may: ack them).
    expect(await keyed(s2, key, 300)).toEqual([]);
    expect((await s2.close()).code).toBe(status.OK);
  });

  it('ordered: a second Consume while one is active is FAILED_PRECONDITION', async () => {
    const sub = `billing-${run}`;
    const first = consume(sub);
    await started(first);
    const second = consume(sub);
    const st = await second.status;
    expect([st.code, st.details]).toEqual([status.FAILED_PRECONDITION, `Subscription "${sub}" is ordered (exclusive) and another Consume stream is consuming it; close that stream first`]);
    expect((await first.close()).code).toBe(status.OK);
    // Free again once the first stream is closed.
    const third = consume(sub);
    await started(third);
    expect((await third.close()).code).toBe(status.OK);
  });

  it('shared: ack, retry (attempt 2) and dead_letter on a queue', async () => {
    const sub = `workers-${run}`;
    for (const p of ['w1', 'w2', 'w3']) await publish({ destination: { queue: jobs }, payload: Buffer.from(p), headers: { n: p } });
    const s = consume(sub, 5);
    await started(s);
    const got = new Map<string, Delivery>();
    while (got.size < 3) {
      const d = await s.delivery();
      got.set(d.payload.toString(), d);
    }
    const w1 = got.get('w1')!;
    expect(w1.attempt).toBe(1);
    expect(w1.source).toMatchObject({ queue: jobs, partition: 0 });
    expect(w1.headers.n).toBe('w1');
    s.send({ ack: { deliveryId: w1.deliveryId } });
    s.send({ retry: { deliveryId: got.get('w2')!.deliveryId, delayMs: 50 } });
    s.send({ deadLetter: { deliveryId: got.get('w3')!.deliveryId, reason: 'poison' } });
    const again = await s.delivery();
    expect([again.payload.toString(), again.attempt]).toEqual(['w2', 2]);
    s.send({ ack: { deliveryId: again.deliveryId } });
    expect(await s.quiet(300)).toBe(true);
    expect((await s.close()).code).toBe(status.OK);

    const letters = await admin.admin().dlqPeek(jobs);
    expect(letters.map((l) => l.record.value!.toString())).toEqual(['w3']);
    const depth = (await admin.admin().describeQueue(jobs)).depth;
    expect(depth).toMatchObject({ ready: 0, inFlight: 0, delayed: 0 });
  });

  it('refuses bad Consume streams with precise statuses', async () => {
    const unknown = consume(`nope-${run}`);
    const st1 = await unknown.status;
    expect(st1.code).toBe(status.NOT_FOUND);
    expect(st1.details).toContain(`Unknown subscription "nope-${run}"; this sidecar serves "billing-${run}", "workers-${run}", "ghost-${run}", "batched-${run}"`);

    const ghost = await consume(`ghost-${run}`).status;
    expect(ghost.code).toBe(status.NOT_FOUND);
    expect(ghost.details).toContain(`missing-${run}`);

    const noStart = consume();
    noStart.send({ ack: { deliveryId: '1' } });
    expect(await noStart.status).toMatchObject({ code: status.INVALID_ARGUMENT, details: 'the first ConsumeRequest must be start (naming a subscription)' });

    const empty = consume();
    empty.send({});
    expect(await empty.status).toMatchObject({ code: status.INVALID_ARGUMENT, details: 'ConsumeRequest is empty: set start, ack, acks, retry or dead_letter' });

    const noName = consume('');
    expect(await noName.status).toMatchObject({ code: status.INVALID_ARGUMENT, details: 'start.subscription is required' });

    const badId = consume(`workers-${run}`);
    await started(badId);
    badId.send({ ack: { deliveryId: '12345' } });
    expect(await badId.status).toMatchObject({ code: status.NOT_FOUND, details: 'Delivery "12345" is not in flight on this stream (unknown, or already settled)' });

    const twice = consume(`workers-${run}`);
    await started(twice);
    twice.send({ start: { subscription: `workers-${run}`, maxInFlight: 0 } });
    expect(await twice.status).toMatchObject({ code: status.INVALID_ARGUMENT, details: 'start was already sent on this stream; open another stream for another subscription' });
  });

  it('max_batch: deliveries come in Deliveries of at most max_batch, in order, and Acks settle many at once', async () => {
    const sub = `batched-${run}`;
    // The 300 messages of the PublishBatch test.
    const s = new ConsumeStream(app.consume());
    s.send({ start: { subscription: sub, maxInFlight: 0, maxBatch: 20 } });
    const first = await s.next();
    expect(first?.started).toEqual({ subscription: sub, maxInFlight: 50 });
    const got: Delivery[] = [];
    let sizes: number[] = [];
    while (got.length < 300) {
      const r = await s.next();
      expect(r?.delivery).toBeUndefined();
      const ds = r!.deliveries!.deliveries;
      sizes.push(ds.length);
      got.push(...ds);
      s.send({ acks: { deliveryIds: ds.map((d) => d.deliveryId) } });
    }
    expect(Math.max(...sizes)).toBeLessThanOrEqual(20);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(got.map((d) => d.payload.toString())).toEqual(Array.from({ length: 300 }, (_, i) => `b${i}`));
    expect(got.map((d) => d.source!.offset)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(new Set(got.map((d) => d.deliveryId)).size).toBe(300);
    expect((await s.close()).code).toBe(status.OK);
    const g = await admin.admin().describeGroup(sub);
    expect(g.offsets.find((o) => o.topic === stream)?.offset).toBe(300);

    // An unknown id in Acks ends the stream after the ids before it were acked.
    await publish({ destination: { topic: stream }, payload: Buffer.from('c1') });
    await publish({ destination: { topic: stream }, payload: Buffer.from('c2') });
    const s2 = new ConsumeStream(app.consume());
    s2.send({ start: { subscription: sub, maxInFlight: 0, maxBatch: 20 } });
    await started(s2);
    const two: Delivery[] = [];
    sizes = [];
    while (two.length < 2) two.push(...(await s2.next())!.deliveries!.deliveries);
    s2.send({ acks: { deliveryIds: [two[0]!.deliveryId, 'bogus', two[1]!.deliveryId] } });
    expect(await s2.status).toMatchObject({ code: status.NOT_FOUND, details: 'Delivery "bogus" is not in flight on this stream (unknown, or already settled)' });
    const s3 = consume(sub);
    await started(s3);
    const again = await s3.delivery();
    expect([again.payload.toString(), again.source!.offset]).toEqual(['c2', 301]);
    s3.send({ ack: { deliveryId: again.deliveryId } });
    expect(await s3.quiet(300)).toBe(true);
    expect((await s3.close()).code).toBe(status.OK);
  });

  it('delivers a message again when the stream ends before it is settled', async () => {
    const sub = `workers-${run}`;
    await publish({ destination: { queue: jobs }, payload: Buffer.from('unsettled') });
    const s = consume(sub);
    await started(s);
    const d = await s.delivery();
    expect(d.payload.toString()).toBe('unsettled');
    s.call.cancel();
    await s.status;
    const s2 = consume(sub);
    await started(s2);
    const again = await s2.delivery();
    expect([again.payload.toString(), again.attempt]).toEqual(['unsettled', 2]);
    s2.send({ ack: { deliveryId: again.deliveryId } });
    expect((await s2.close()).code).toBe(status.OK);
  });
});

// ---- A minimal server-reflection client (grpc.reflection.{v1,v1alpha}.ServerReflection) ----

/** Sends one ServerReflectionRequest with field `field` (4 file_containing_symbol, 7 list_services) and returns the raw response. */
function reflect(version: string, field: number, value: string): Promise<Uint8Array> {
  const client = new Client(sidecar.address, credentials.createInsecure());
  return new Promise<Uint8Array>((resolve, reject) => {
    const call = client.makeBidiStreamRequest(
      `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
      (req: Uint8Array) => Buffer.from(req),
      (res: Buffer) => new Uint8Array(res),
      new Metadata(),
    );
    call.on('data', (res: Uint8Array) => {
      resolve(res);
      call.end();
    });
    call.on('error', (e: Error) => reject(e));
    call.on('status', () => client.close());
    call.write(new BinaryWriter().uint32((field << 3) | 2).string(value).finish());
  });
}

/** Nested length-delimited fields of `buf` with number `no`. */
function submessages(buf: Uint8Array, no: number): Uint8Array[] {
  const r = new BinaryReader(buf);
  const out: Uint8Array[] = [];
  while (r.pos < r.len) {
    const [n, type] = r.tag();
    if (n === no && type === 2) out.push(r.bytes());
    else r.skip(type);
  }
  return out;
}

/** ServerReflectionResponse.list_services_response (6) → ListServiceResponse.service (1) → ServiceResponse.name (1). */
function listedServices(res: Uint8Array): string[] {
  const names: string[] = [];
  for (const list of submessages(res, 6)) for (const svc of submessages(list, 1)) for (const name of submessages(svc, 1)) names.push(Buffer.from(name).toString());
  return names;
}

/** ServerReflectionResponse.file_descriptor_response (4) → FileDescriptorResponse.file_descriptor_proto (1). */
function fileDescriptors(res: Uint8Array): Uint8Array[] {
  return submessages(res, 4).flatMap((f) => submessages(f, 1));
}

describe('kmq sidecar: start-up', () => {
  it('refuses a bad setting before listening, naming it', async () => {
    const err = await SidecarProcess.start({ broker: broker.address, config: { subscriptions: [{ name: 'x', queue: 'q', mode: 'ordered' }] } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain('sidecar exited with 1');
    expect((err as Error).message).toContain("kmq: Invalid option subscriptions[0] (x).mode: a queue is always consumed 'shared'");
  });
});

describe('kmq sidecar: shutdown', () => {
  it('on SIGTERM ends open Consume streams with UNAVAILABLE and exits 0', async () => {
    const s = consume(`workers-${run}`);
    await started(s);
    const code = await sidecar.stop();
    const st = await s.status;
    expect(st.code).toBe(status.UNAVAILABLE);
    expect(st.details).toBe('The sidecar is shutting down; unsettled deliveries will be delivered again');
    expect(code).toBe(0);
    expect(sidecar.logs().map((l) => l.msg)).toEqual(expect.arrayContaining(['Sidecar started', 'Shutting down']));
  });
});
