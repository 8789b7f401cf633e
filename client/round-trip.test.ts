import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../lib/errors.js';
import { ApiKey } from '../protocol/apis.js';
import { readBatchHeader, stampBatch } from '../protocol/batch-header.js';
import { errorCodeToWire } from '../protocol/error-codes.js';
import { FrameReader, REQUEST_PREFIX_BYTES, encodeResponse, parseRequestBody } from '../protocol/frame.js';
import * as pb from '../protocol/gen/kmq/broker/v1/broker.js';
import { KmqClient } from './client.js';

/**
 * A one-node broker stand-in with just enough of the protocol for the producer
 * and consumer: in-memory logs, idempotent dedup by sequence, and hooks to fail
 * requests. The real broker is exercised by the integration tests.
 */
class TinyBroker {
  readonly logs: Buffer[][];
  readonly ends: number[];
  readonly committed = new Map<string, number>();
  /** Produce requests to fail with this error before appending, then count down. */
  failProduce = { code: ErrorCode.NotLeader as ErrorCode, times: 0 };
  produceRequests = 0;
  /** Group mode: partitions of `topic` the one member is assigned; owned as last reported. */
  groupAssignment: number[] = [];
  lastOwned: number[] | undefined;
  joins = 0;
  heartbeatError: ErrorCode | undefined;
  private readonly lastSeq = new Map<number, number>();
  private server!: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(readonly topic: string, readonly partitions: number) {
    this.logs = Array.from({ length: partitions }, () => []);
    this.ends = new Array<number>(partitions).fill(0);
  }

  async start(): Promise<void> {
    this.server = net.createServer((s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
      const reader = new FrameReader(REQUEST_PREFIX_BYTES, 64 << 20, (body) => this.handle(s, body), () => s.destroy());
      s.on('data', (c: Buffer) => reader.push(c));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }

  private reply(s: net.Socket, id: number, header: Uint8Array, payload: Buffer[] = []): void {
    for (const b of encodeResponse(id, 0, header, payload)) s.write(b);
  }

  private handle(s: net.Socket, body: Buffer): void {
    const f = parseRequestBody(body);
    const id = f.correlationId;
    switch (f.apiKey) {
      case ApiKey.Metadata: {
        const partitions = Array.from({ length: this.partitions }, (_, p) => ({ partition: p, leader: 0, replicas: [0], isr: [0], logStartOffset: 0, logEndOffset: this.ends[p]! }));
        const req = pb.MetadataRequest.decode(f.header);
        const topics = req.topics.map((name) =>
          name === this.topic
            ? { name, errorCode: 0, errorMessage: '', partitions, internal: false }
            : { name, errorCode: errorCodeToWire(ErrorCode.UnknownTopic), errorMessage: `Topic ${name} does not exist`, partitions: [], internal: false },
        );
        return this.reply(s, id, pb.MetadataResponse.encode({ brokers: [{ id: 0, host: '127.0.0.1', port: this.port }], topics, controllerId: 0, clusterId: 'tiny' }).finish());
      }
      case ApiKey.InitProducerId:
        return this.reply(s, id, pb.InitProducerIdResponse.encode({ errorCode: 0, producerId: 7, producerEpoch: 0 }).finish());
      case ApiKey.Produce: {
        this.produceRequests++;
        const req = pb.ProduceRequest.decode(f.header);
        const answer = (r: Partial<pb.ProduceResponse>): void => {
          if (req.acks !== pb.Acks.ACKS_NONE) this.reply(s, id, pb.ProduceResponse.encode({ errorCode: 0, errorMessage: '', baseOffset: -1, lastOffset: -1, logStartOffset: 0, duplicate: false, ...r }).finish());
        };
        if (this.failProduce.times > 0) {
          this.failProduce.times--;
          return answer({ errorCode: errorCodeToWire(this.failProduce.code), errorMessage: 'injected' });
        }
        const batch = Buffer.from(f.payload);
        const h = readBatchHeader(batch);
        const p = req.partition;
        if (h.producerId >= 0) {
          const last = this.lastSeq.get(p) ?? -1;
          if (h.baseSequence <= last) return answer({ duplicate: true });
          if (h.baseSequence !== last + 1) return answer({ errorCode: errorCodeToWire(ErrorCode.OutOfOrderSequence), errorMessage: 'gap' });
          this.lastSeq.set(p, h.baseSequence + h.recordCount - 1);
        }
        const base = this.ends[p]!;
        stampBatch(batch, 0, base, 0);
        this.logs[p]!.push(batch);
        this.ends[p] = base + h.recordCount;
        return answer({ baseOffset: base, lastOffset: base + h.recordCount - 1 });
      }
      case ApiKey.Fetch: {
        const req = pb.FetchRequest.decode(f.header);
        const results: pb.FetchPartitionResult[] = [];
        const payload: Buffer[] = [];
        for (const fp of req.partitions) {
          const out = this.logs[fp.partition]!.filter((b) => readBatchHeader(b).baseOffset + readBatchHeader(b).recordCount > fp.fetchOffset);
          const len = out.reduce((n, b) => n + b.length, 0);
          payload.push(...out);
          results.push({ topic: fp.topic, partition: fp.partition, errorCode: 0, errorMessage: '', highWatermark: this.ends[fp.partition]!, logStartOffset: 0, recordsLength: len });
        }
        const total = payload.reduce((n, b) => n + b.length, 0);
        const send = (): void => this.reply(s, id, pb.FetchResponse.encode({ partitions: results }).finish(), payload);
        if (total === 0) setTimeout(send, Math.min(req.maxWaitMs, 50));
        else send();
        return;
      }
      case ApiKey.ListOffsets: {
        const req = pb.ListOffsetsRequest.decode(f.header);
        const offsets = req.partitions.map((p) => ({ partition: p, errorCode: 0, offset: req.timestamp === -2 ? 0 : this.ends[p]!, timestamp: -1 }));
        return this.reply(s, id, pb.ListOffsetsResponse.encode({ errorCode: 0, errorMessage: '', offsets }).finish());
      }
      case ApiKey.OffsetFetch: {
        const req = pb.OffsetFetchRequest.decode(f.header);
        const offsets = req.partitions.flatMap((t) => t.partitions.map((p) => ({ topic: t.topic, partition: p, offset: this.committed.get(`${t.topic}/${p}`) ?? -1, metadata: '', logEndOffset: this.ends[p]!, lag: 0 })));
        return this.reply(s, id, pb.OffsetFetchResponse.encode({ errorCode: 0, errorMessage: '', offsets }).finish());
      }
      case ApiKey.OffsetCommit: {
        const req = pb.OffsetCommitRequest.decode(f.header);
        for (const o of req.offsets) this.committed.set(`${o.topic}/${o.partition}`, o.offset);
        const results = req.offsets.map((o) => ({ topic: o.topic, partition: o.partition, errorCode: 0 }));
        return this.reply(s, id, pb.OffsetCommitResponse.encode({ errorCode: 0, errorMessage: '', results }).finish());
      }
      case ApiKey.JoinGroup: {
        this.joins++;
        const assignment = [{ topic: this.topic, partitions: this.groupAssignment }];
        return this.reply(s, id, pb.JoinGroupResponse.encode({ errorCode: 0, errorMessage: '', memberId: `m${this.joins}`, generation: this.joins, assignment, heartbeatIntervalMs: 20 }).finish());
      }
      case ApiKey.Heartbeat: {
        const req = pb.HeartbeatRequest.decode(f.header);
        this.lastOwned = req.owned.flatMap((t) => t.partitions).sort();
        const errorCode = this.heartbeatError === undefined ? 0 : errorCodeToWire(this.heartbeatError);
        this.heartbeatError = undefined;
        const assignment = [{ topic: this.topic, partitions: this.groupAssignment }];
        return this.reply(s, id, pb.HeartbeatResponse.encode({ errorCode, errorMessage: '', generation: this.joins, assignment, heartbeatIntervalMs: 20 }).finish());
      }
      case ApiKey.LeaveGroup:
        return this.reply(s, id, pb.LeaveGroupResponse.encode({ errorCode: 0, errorMessage: '' }).finish());
      default:
        s.destroy();
    }
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(partitions: number): Promise<{ broker: TinyBroker; client: KmqClient }> {
  const broker = new TinyBroker('orders', partitions);
  await broker.start();
  cleanups.push(() => broker.stop());
  const client = new KmqClient({ brokers: [`127.0.0.1:${broker.port}`], retry: { initialMs: 5, maxMs: 20 } });
  cleanups.push(() => client.close());
  return { broker, client };
}

describe('producer and consumer against a broker stand-in', () => {
  it('produces in order, with offsets per record, and consumes everything back', async () => {
    const { broker, client } = await setup(3);
    const producer = client.producer({ lingerMs: 1, batchSizeBytes: 4096 });
    const records = Array.from({ length: 2000 }, (_, i) => ({ key: `k${i % 50}`, value: `v${i}` }));
    const md = await producer.send('orders', records);
    expect(md).toHaveLength(2000);
    // Same key, same partition; offsets per partition strictly increase in send order.
    const partitionOfKey = new Map<string, number>();
    const lastOffset = new Map<number, number>();
    md.forEach((m, i) => {
      const key = records[i]!.key;
      expect(partitionOfKey.get(key) ?? m.partition).toBe(m.partition);
      partitionOfKey.set(key, m.partition);
      expect(m.offset).toBeGreaterThan(lastOffset.get(m.partition) ?? -1);
      lastOffset.set(m.partition, m.offset);
    });
    expect(broker.ends.reduce((a, b) => a + b, 0)).toBe(2000);
    expect(broker.logs.flat().length).toBeGreaterThan(3); // split by batchSizeBytes

    const consumer = client.consumer({ groupId: undefined, topics: ['orders'], fromBeginning: true });
    const seen: string[] = [];
    for await (const batch of consumer.batches()) {
      for (const r of batch.records) seen.push(r.value!.toString());
      if (seen.length === 2000) break;
    }
    expect(new Set(seen).size).toBe(2000);
    await consumer.close();
  });

  it('retries a retriable error with the same sequence and writes the batch once', async () => {
    const { broker, client } = await setup(1);
    broker.failProduce = { code: ErrorCode.NotLeader, times: 2 };
    const producer = client.producer({ lingerMs: 0 });
    const md = await producer.send('orders', [{ value: 'a' }, { value: 'b' }]);
    expect(md.map((m) => m.offset)).toEqual([0, 1]);
    expect(broker.produceRequests).toBe(3);
    expect(broker.ends[0]).toBe(2);
  });

  it('rejects with a non-retriable error naming the topic, and later sends still succeed', async () => {
    const { broker, client } = await setup(1);
    const producer = client.producer({ lingerMs: 0 });
    await expect(producer.send('missing', [{ value: 'x' }])).rejects.toMatchObject({ code: ErrorCode.UnknownTopic, context: { topic: 'missing' } });
    broker.failProduce = { code: ErrorCode.MessageTooLarge, times: 1 };
    await expect(producer.send('orders', [{ value: 'big' }])).rejects.toMatchObject({ code: ErrorCode.MessageTooLarge, context: { topic: 'orders', partition: 0 } });
    // The failed batch's sequence is reused, so the broker sees no gap.
    await expect(producer.sendOne('orders', { value: 'ok' })).resolves.toMatchObject({ offset: 0 });
  });

  it('refuses a record over maxRequestBytes before sending anything', async () => {
    const { broker, client } = await setup(1);
    const producer = client.producer({ maxRequestBytes: 2048, batchSizeBytes: 1024 });
    await expect(producer.send('orders', [{ value: 'ok' }, { value: Buffer.alloc(4096) }])).rejects.toMatchObject({ code: ErrorCode.MessageTooLarge });
    await producer.flush();
    expect(broker.produceRequests).toBe(0);
  });

  it('with acks none sends without waiting for answers', async () => {
    const { broker, client } = await setup(1);
    const producer = client.producer({ acks: 'none', lingerMs: 0 });
    const md = await producer.send('orders', [{ value: 'a' }]);
    expect(md[0]!.offset).toBe(-1);
    await expect.poll(() => broker.ends[0]).toBe(1);
  });

  it('commits positions and resumes from them with a manual assignment', async () => {
    const { broker, client } = await setup(1);
    const producer = client.producer({ lingerMs: 0 });
    await producer.send('orders', Array.from({ length: 10 }, (_, i) => ({ value: `v${i}` })));
    const assignment = [{ topic: 'orders', partition: 0 }];
    const c1 = client.consumer({ groupId: 'g', assignment, fromBeginning: true, autoCommit: false });
    const it1 = c1.batches();
    const first = await it1.next();
    expect(first.value!.records[0]!.offset).toBe(0);
    // Handled but not yet released: the position stays, an explicit commit includes it.
    expect(c1.position('orders', 0)).toBe(0);
    await c1.commit();
    expect(broker.committed.get('orders/0')).toBe(10);
    await it1.return(undefined);
    await c1.close();
    await producer.send('orders', [{ value: 'after' }]);
    const c2 = client.consumer({ groupId: 'g', assignment, autoCommit: false });
    for await (const b of c2.batches()) {
      expect(b.records.map((r) => r.value!.toString())).toEqual(['after']);
      break;
    }
    await c2.close();
  });

  it('commitOffsets commits exactly the given offsets of owned partitions, leaves the position, and refuses others', async () => {
    const { broker, client } = await setup(2);
    const producer = client.producer({ lingerMs: 0 });
    await producer.send('orders', Array.from({ length: 6 }, (_, i) => ({ value: `v${i}`, partition: 0 })));
    broker.groupAssignment = [0];
    const consumer = client.consumer({ groupId: 'g', topics: ['orders'], fromBeginning: true, autoCommit: false });
    const iterator = consumer.batches();
    const first = await iterator.next();
    expect(first.value!.records.length).toBe(6);
    // Inside the batch being handled: only its handled prefix is committed.
    await consumer.commitOffsets([{ topic: 'orders', partition: 0, offset: 3 }]);
    expect(broker.committed.get('orders/0')).toBe(3);
    expect(consumer.position('orders', 0)).toBe(0);
    const refused = consumer.commitOffsets([
      { topic: 'orders', partition: 0, offset: 4 },
      { topic: 'orders', partition: 1, offset: 1 },
      { topic: 'other', partition: 0, offset: 1 },
    ]);
    await expect(refused).rejects.toMatchObject({ code: ErrorCode.NotPartitionOwner, message: expect.stringContaining('orders[1], other[0]') });
    expect(broker.committed.get('orders/0')).toBe(3);
    expect(broker.committed.has('orders/1')).toBe(false);
    // The fetch position still moves with the batches, and a later commit goes further.
    await producer.send('orders', [{ value: 'v6', partition: 0 }]);
    const second = await iterator.next();
    expect(second.value!.records.map((r) => r.offset)).toEqual([6]);
    expect(consumer.position('orders', 0)).toBe(6);
    await consumer.commitOffsets([{ topic: 'orders', partition: 0, offset: 7 }]);
    expect(broker.committed.get('orders/0')).toBe(7);
    await consumer.close();
  });

  it('follows the group assignment: revocation commits and stops reporting, UnknownMember rejoins', async () => {
    const { broker, client } = await setup(2);
    const producer = client.producer({ lingerMs: 0 });
    await producer.send('orders', [{ value: 'p0', partition: 0 }, { value: 'p1', partition: 1 }]);
    broker.groupAssignment = [0, 1];
    const consumer = client.consumer({ groupId: 'g', topics: ['orders'], fromBeginning: true });
    const seen = new Set<number>();
    const iterator = consumer.batches();
    while (seen.size < 2) {
      const next = await iterator.next();
      seen.add(next.value!.partition);
    }
    await expect.poll(() => broker.lastOwned).toEqual([0, 1]);

    broker.groupAssignment = [0];
    await expect.poll(() => broker.lastOwned).toEqual([0]);
    expect(consumer.assignment()).toEqual([{ topic: 'orders', partition: 0 }]);

    broker.heartbeatError = ErrorCode.UnknownMember;
    await expect.poll(() => broker.joins).toBe(2);
    await expect.poll(() => consumer.assignment()).toEqual([{ topic: 'orders', partition: 0 }]);
    const pending = iterator.next();
    await consumer.close();
    await expect(pending).resolves.toMatchObject({ done: true });
  });
});
