import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Apis } from '../../protocol/apis.js';
import { errorCodeFromWire } from '../../protocol/error-codes.js';
import { encodeBatch, forEachRecord } from '../../protocol/record-batch.js';
import * as q from '../../protocol/gen/kmq/broker/v1/queues.js';
import { BrokerProcess, tempDir } from '../utils/broker-process.js';
import { RawConnection } from '../utils/raw-connection.js';

type Msg = { partition: number; offset: number; value: string; deliveryCount: number; headers: Record<string, string> };

async function call<Req, Res>(c: RawConnection, api: { key: number; request: { encode(m: Req): { finish(): Uint8Array } }; response: { decode(b: Uint8Array): Res } }, req: Req, payload: Buffer[] = []): Promise<Res> {
  const r = await c.request(api.key, api.request.encode(req).finish(), payload);
  if (r === undefined) throw new Error('closed');
  if (r.frameError !== 0) {
    const e = new Error(errorCodeFromWire(r.frameError)) as Error & { code: string };
    e.code = errorCodeFromWire(r.frameError);
    throw e;
  }
  return Object.assign(api.response.decode(r.header) as object, { payload: r.payload }) as Res;
}

function messages(res: q.ShareFetchResponse & { payload: Buffer }): Msg[] {
  const out: Msg[] = [];
  let at = 0;
  for (const d of res.data) {
    const bytes = res.payload.subarray(at, at + d.recordsLength);
    at += d.recordsLength;
    const ranges = res.acquired.filter((a) => a.partition === d.partition);
    forEachRecord(bytes, 0, (r) => {
      const range = ranges.find((a) => r.offset >= a.firstOffset && r.offset <= a.lastOffset);
      if (range === undefined) return;
      out.push({ partition: d.partition, offset: r.offset, value: r.value!.toString(), deliveryCount: range.deliveryCount, headers: Object.fromEntries(r.headers.map((h) => [h.key, h.value?.toString() ?? ''])) });
    });
  }
  return out;
}

const publish = (c: RawConnection, queue: string, values: string[]): Promise<q.PublishResponse> =>
  call(c, Apis.Publish, { exchange: '', routingKey: '', headers: {}, mandatory: false, queue, acks: 0 }, [encodeBatch(values.map((v) => ({ value: Buffer.from(v) })))]);
const fetchShare = (c: RawConnection, queue: string, memberId: string, max: number, maxWaitMs = 200): Promise<q.ShareFetchResponse & { payload: Buffer }> =>
  call(c, Apis.ShareFetch, { queue, group: '', memberId, maxRecords: max, maxWaitMs, prefetch: max }) as Promise<q.ShareFetchResponse & { payload: Buffer }>;
const ack = (c: RawConnection, queue: string, memberId: string, msgs: Msg[], type: q.AckType, delayMs = 0): Promise<q.ShareAckResponse> =>
  call(c, Apis.ShareAck, { queue, group: '', memberId, ranges: msgs.map((m) => ({ partition: m.partition, firstOffset: m.offset, lastOffset: m.offset, type, delayMs, reason: 'test' })) });

// Queues through the broker protocol: shared acquisition, acks, redelivery, dead letters, durability.
describe('queues in the broker', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(dataDir?: string): Promise<{ broker: BrokerProcess; c: RawConnection }> {
    const broker = await BrokerProcess.start(dataDir === undefined ? {} : { dataDir });
    const c = await RawConnection.connect(broker.port);
    cleanups.push(() => broker.cleanup());
    cleanups.push(() => c.close());
    return { broker, c };
  }

  it('hands each message to one member, redelivers nacks and expired locks, and dead-letters after max deliveries', async () => {
    const { c } = await start();
    await call(c, Apis.CreateQueue, { name: 'jobs-dlq', ifNotExists: false, config: undefined });
    await call(c, Apis.CreateQueue, { name: 'jobs', ifNotExists: false, config: { maxDeliveries: 2, deadLetterQueue: 'jobs-dlq', lockTimeoutMs: 300 } });
    await publish(c, 'jobs', ['a', 'b', 'c', 'd']);

    const m1 = messages(await fetchShare(c, 'jobs', 'm1', 2));
    const m2 = messages(await fetchShare(c, 'jobs', 'm2', 10));
    expect(m1.map((m) => m.value)).toEqual(['a', 'b']);
    expect(m2.map((m) => m.value)).toEqual(['c', 'd']);

    // Acking another member's delivery fails and changes nothing.
    const wrong = await ack(c, 'jobs', 'm2', [m1[0]!], q.AckType.ACK_ACCEPT);
    expect(wrong.errors.map((e) => errorCodeFromWire(e.errorCode))).toEqual(['INVALID_DELIVERY']);

    expect((await ack(c, 'jobs', 'm1', m1, q.AckType.ACK_ACCEPT)).errors).toEqual([]);
    expect((await ack(c, 'jobs', 'm2', [m2[0]!], q.AckType.ACK_RELEASE)).errors).toEqual([]);
    // 'd' is left to expire.
    await new Promise((r) => setTimeout(r, 500));
    const again = messages(await fetchShare(c, 'jobs', 'm3', 10, 1000));
    expect(again.map((m) => [m.value, m.deliveryCount]).sort()).toEqual([
      ['c', 2],
      ['d', 2],
    ]);
    // A third failure goes past max deliveries: dead letters with their history.
    await ack(c, 'jobs', 'm3', again, q.AckType.ACK_RELEASE);
    const none = await fetchShare(c, 'jobs', 'm3', 10, 300);
    expect(messages(none)).toEqual([]);
    const d = await call(c, Apis.DescribeQueue, { name: 'jobs' });
    expect(d.queue!.depth).toEqual({ ready: 0, inFlight: 0, delayed: 0 });
    expect(d.queue!.deadLettered).toBe(2);

    const peek = (await call(c, Apis.DlqPeek, { source: 'jobs', filter: undefined })) as q.DlqPeekResponse & { payload: Buffer };
    expect(peek.positions).toHaveLength(2);
    const letters: Array<Record<string, string>> = [];
    forEachRecord(peek.payload, 0, (r) => letters.push({ value: r.value!.toString(), ...Object.fromEntries(r.headers.map((h) => [h.key, h.value!.toString()])) }));
    expect(letters.map((l) => l.value).sort()).toEqual(['c', 'd']);
    expect(letters[0]).toMatchObject({ 'x-kmq-source': 'jobs', 'x-kmq-delivery-count': '2', 'x-kmq-reason': 'max-deliveries' });

    const replay = await call(c, Apis.DlqReplay, { source: 'jobs', filter: undefined, ratePerSecond: 0, dryRun: false });
    expect(replay.replayed).toBe(2);
    const twice = await call(c, Apis.DlqReplay, { source: 'jobs', filter: undefined, ratePerSecond: 0, dryRun: false });
    expect(twice.replayed).toBe(0);
    const back = messages(await fetchShare(c, 'jobs', 'm4', 10, 1000));
    expect(back.map((m) => [m.value, m.deliveryCount]).sort()).toEqual([
      ['c', 1],
      ['d', 1],
    ]);
    expect(back[0]!.headers['x-kmq-replayed-from']).toMatch(/^jobs-dlq\//);
  });

  it('keeps acks and delivery counts across kill -9', async () => {
    const dataDir = tempDir('kmq-queue-crash-');
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    let { broker, c } = await start(dataDir);
    await call(c, Apis.CreateQueue, { name: 'durable', ifNotExists: false, config: { lockTimeoutMs: 60_000 } });
    await publish(c, 'durable', Array.from({ length: 10 }, (_, i) => `m${i}`));
    const got = messages(await fetchShare(c, 'durable', 'x', 10));
    expect(got).toHaveLength(10);
    await ack(c, 'durable', 'x', got.slice(0, 6), q.AckType.ACK_ACCEPT);
    c.close();
    await broker.kill();

    ({ broker, c } = await start(dataDir));
    const after = messages(await fetchShare(c, 'durable', 'y', 100, 1000));
    expect(after.map((m) => m.value)).toEqual(['m6', 'm7', 'm8', 'm9']);
    expect(after.every((m) => m.deliveryCount === 2)).toBe(true);
  });

  it('routes through exchanges and refuses bad input without changing state', async () => {
    const { c } = await start();
    await call(c, Apis.CreateQueue, { name: 'emails', ifNotExists: false, config: undefined });
    await call(c, Apis.CreateQueue, { name: 'audit', ifNotExists: false, config: undefined });
    await call(c, Apis.CreateExchange, { name: 'notify', type: q.ExchangeType.EXCHANGE_TOPIC, alternate: undefined, ifNotExists: false });
    const bind = (dest: string, key: string): Promise<q.BindResponse> =>
      call(c, Apis.Bind, { binding: { exchange: 'notify', destination: { kind: q.DestinationKind.DESTINATION_QUEUE, name: dest }, routingKey: key, headers: {}, matchAny: false } });
    await bind('emails', 'email.#');
    await bind('audit', '#');
    await expect(bind('missing', 'x')).rejects.toMatchObject({ code: 'UNKNOWN_QUEUE' });
    await expect(bind('emails', 'a.b*')).rejects.toMatchObject({ code: 'INVALID_ROUTING_PATTERN' });
    await expect(call(c, Apis.Bind, { binding: { exchange: 'nope', destination: { kind: 0, name: 'emails' }, routingKey: 'x', headers: {}, matchAny: false } })).rejects.toMatchObject({ code: 'UNKNOWN_EXCHANGE' });

    const pub = (key: string, mandatory = false): Promise<q.PublishResponse> =>
      call(c, Apis.Publish, { exchange: 'notify', routingKey: key, headers: {}, mandatory, queue: '', acks: 0 }, [encodeBatch([{ value: Buffer.from(key) }])]);
    expect((await pub('email.welcome')).routed.map((r) => r.destination!.name).sort()).toEqual(['audit', 'emails']);
    expect((await pub('sms.code')).routed.map((r) => r.destination!.name)).toEqual(['audit']);
    const list = await call(c, Apis.ListExchanges, {});
    expect(list.exchanges[0]!.bindings).toHaveLength(2);

    await call(c, Apis.CreateExchange, { name: 'strict', type: q.ExchangeType.EXCHANGE_DIRECT, alternate: undefined, ifNotExists: false });
    await expect(call(c, Apis.Publish, { exchange: 'strict', routingKey: 'x', headers: {}, mandatory: true, queue: '', acks: 0 }, [encodeBatch([{ value: Buffer.from('x') }])])).rejects.toMatchObject({ code: 'UNROUTABLE' });
    const dropped = await call(c, Apis.Publish, { exchange: 'strict', routingKey: 'x', headers: {}, mandatory: false, queue: '', acks: 0 }, [encodeBatch([{ value: Buffer.from('x') }])]);
    expect(dropped.dropped).toBe(true);

    const emails = messages(await fetchShare(c, 'emails', 'e', 10));
    expect(emails.map((m) => m.value)).toEqual(['email.welcome']);
    const audit = messages(await fetchShare(c, 'audit', 'a', 10));
    expect(audit.map((m) => m.value)).toEqual(['email.welcome', 'sms.code']);
  });

  it('deletes queue segments once every record in them is acknowledged', async () => {
    const broker = await BrokerProcess.start({ args: ['--segment-bytes', '4096', '--retention-check-ms', '100'] });
    cleanups.push(() => broker.cleanup());
    const c = await RawConnection.connect(broker.port);
    cleanups.push(() => c.close());
    await call(c, Apis.CreateQueue, { name: 'reclaim', ifNotExists: false, config: undefined });
    for (let i = 0; i < 40; i++) await publish(c, 'reclaim', Array.from({ length: 5 }, (_, j) => `${i * 5 + j}-${'z'.repeat(100)}`));
    const got = messages(await fetchShare(c, 'reclaim', 'r', 150));
    expect(got).toHaveLength(150);
    await ack(c, 'reclaim', 'r', got, q.AckType.ACK_ACCEPT);
    const deadline = Date.now() + 10_000;
    let info = (await call(c, Apis.DescribeQueue, { name: 'reclaim' })).queue!;
    while (info.logStartOffset === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      info = (await call(c, Apis.DescribeQueue, { name: 'reclaim' })).queue!;
    }
    // Whole segments below the first unacked message (150) are gone; nothing unacked is.
    expect(info.logStartOffset).toBeGreaterThan(0);
    expect(info.logStartOffset).toBeLessThanOrEqual(150);
    expect(info.depth!.ready).toBe(50);
    const rest = messages(await fetchShare(c, 'reclaim', 'r', 100));
    expect(rest.map((m) => Number(m.value.split('-')[0]))).toEqual(Array.from({ length: 50 }, (_, i) => 150 + i));
  });

  it('keeps exchanges and bindings across a restart', async () => {
    const dataDir = tempDir('kmq-exchange-restart-');
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    let broker = await BrokerProcess.start({ dataDir });
    let c = await RawConnection.connect(broker.port);
    await call(c, Apis.CreateQueue, { name: 'fan-a', ifNotExists: false, config: undefined });
    await call(c, Apis.CreateExchange, { name: 'fan', type: q.ExchangeType.EXCHANGE_FANOUT, alternate: undefined, ifNotExists: false });
    await call(c, Apis.Bind, { binding: { exchange: 'fan', destination: { kind: q.DestinationKind.DESTINATION_QUEUE, name: 'fan-a' }, routingKey: '', headers: {}, matchAny: false } });
    c.close();
    await broker.kill();
    broker = await BrokerProcess.start({ dataDir });
    cleanups.push(() => broker.kill());
    c = await RawConnection.connect(broker.port);
    cleanups.push(() => c.close());
    const r = await call(c, Apis.Publish, { exchange: 'fan', routingKey: 'any', headers: {}, mandatory: true, queue: '', acks: 0 }, [encodeBatch([{ value: Buffer.from('after restart') }])]);
    expect(r.routed.map((x) => x.destination!.name)).toEqual(['fan-a']);
  });

  it('with per-key ordering holds at most one in-flight message per key, in order', async () => {
    const { c } = await start();
    await call(c, Apis.CreateQueue, { name: 'keyed', ifNotExists: false, config: { perKeyOrdering: true } });
    await call(c, Apis.Publish, { exchange: '', routingKey: '', headers: {}, mandatory: false, queue: 'keyed', acks: 0 }, [
      encodeBatch(['a1', 'b1', 'a2', 'c1', 'b2', 'a3'].map((v) => ({ key: Buffer.from(v[0]!), value: Buffer.from(v) }))),
    ]);
    const first = messages(await fetchShare(c, 'keyed', 'k1', 10));
    expect(first.map((m) => m.value)).toEqual(['a1', 'b1', 'c1']);
    const blocked = messages(await fetchShare(c, 'keyed', 'k2', 10, 100));
    expect(blocked).toEqual([]);
    await ack(c, 'keyed', 'k1', first.filter((m) => m.value !== 'b1'), q.AckType.ACK_ACCEPT);
    const second = messages(await fetchShare(c, 'keyed', 'k2', 10));
    expect(second.map((m) => m.value)).toEqual(['a2']);
  });

  it('ends a push subscription when its member leaves, from any connection', async () => {
    const { broker, c } = await start();
    await call(c, Apis.CreateQueue, { name: 'pushed', ifNotExists: false, config: undefined });
    const streamConn = await RawConnection.connect(broker.port);
    cleanups.push(() => streamConn.close());
    const first = streamConn.request(Apis.ShareSubscribe.key, Apis.ShareSubscribe.request.encode({ queue: 'pushed', group: '', memberId: 'pusher', prefetch: 10 }).finish());
    await publish(c, 'pushed', ['p1']);
    const delivered = Apis.ShareSubscribe.response.decode((await first)!.header);
    expect(delivered.acquired).toHaveLength(1);
    await call(c, Apis.ShareLeave, { queue: 'pushed', group: '', memberId: 'pusher' });
    // The stream's next answer says it ended; a later message goes to someone else.
    // The subscription was the stream connection's first request: correlation id 1.
    const end = await streamConn.next(1, 5000);
    expect(Apis.ShareSubscribe.response.decode(end!.header).endOfStream).toBe(true);
    await publish(c, 'pushed', ['p2']);
    const other = messages(await fetchShare(c, 'pushed', 'other', 10, 2000));
    expect(other.map((m) => m.value).sort()).toEqual(['p1', 'p2']);
  });

  it('dead-letters a rejected message at once with its reason, and refuses rejecting what the member does not hold', async () => {
    const { c } = await start();
    await call(c, Apis.CreateQueue, { name: 'rej-dlq', ifNotExists: false, config: undefined });
    await call(c, Apis.CreateQueue, { name: 'rej', ifNotExists: false, config: { deadLetterQueue: 'rej-dlq' } });
    await publish(c, 'rej', ['bad', 'good']);
    const got = messages(await fetchShare(c, 'rej', 'r1', 10));
    const wrong = await ack(c, 'rej', 'someone-else', [got[0]!], q.AckType.ACK_REJECT);
    expect(wrong.errors.map((e) => errorCodeFromWire(e.errorCode))).toEqual(['INVALID_DELIVERY']);
    expect((await ack(c, 'rej', 'r1', [got[0]!], q.AckType.ACK_REJECT)).errors).toEqual([]);
    const peek = (await call(c, Apis.DlqPeek, { source: 'rej', filter: undefined })) as q.DlqPeekResponse & { payload: Buffer };
    const letters: Array<Record<string, string>> = [];
    forEachRecord(peek.payload, 0, (r) => letters.push({ value: r.value!.toString(), ...Object.fromEntries(r.headers.map((h) => [h.key, h.value!.toString()])) }));
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ value: 'bad', 'x-kmq-reason': 'test', 'x-kmq-delivery-count': '1', 'x-kmq-source-offset': '0' });
    // A second reject of the same delivery is refused: it is settled.
    const again = await ack(c, 'rej', 'r1', [got[0]!], q.AckType.ACK_REJECT);
    expect(again.errors.map((e) => errorCodeFromWire(e.errorCode))).toEqual(['INVALID_DELIVERY']);
    const d = await call(c, Apis.DescribeQueue, { name: 'rej' });
    expect(d.queue!.deadLettered).toBe(1);
    expect(d.queue!.depth).toEqual({ ready: 0, inFlight: 1, delayed: 0 });
  });
});
