import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import { ApiKey } from '../protocol/apis.js';
import * as pb from '../protocol/gen/kmq/broker/v1/broker.js';
import { errorCodeToWire } from '../protocol/error-codes.js';
import { FrameReader, REQUEST_PREFIX_BYTES, encodeResponse, parseRequestBody } from '../protocol/frame.js';
import type { RequestFrame } from '../protocol/frame.js';
import {
  AckType,
  ShareAckRequest,
  ShareAckResponse,
  ShareFetchRequest,
  ShareFetchResponse,
  ShareLeaveRequest,
  ShareLeaveResponse,
  ShareSubscribeRequest,
} from '../protocol/gen/kmq/broker/v1/queues.js';
import type { AckRange } from '../protocol/gen/kmq/broker/v1/queues.js';
import { encodeBatch } from '../protocol/record-batch.js';
import { KmqClient } from './client.js';
import { compileQueueConsumerOptions } from './queue-consumer.js';
import type { Delivery } from './queue-consumer.js';

/** A broker stand-in for the shared-consumption apis; `events` records what it was asked, in order. */
async function startShareBroker(handlers: { onAck?: (ranges: AckRange[]) => ShareAckResponse; fetchAnswers?: ShareFetchResponse[] } = {}) {
  const events: string[] = [];
  const acks: AckRange[][] = [];
  const fetches: ShareFetchRequest[] = [];
  const sockets = new Set<net.Socket>();
  const fetchAnswers = [...(handlers.fetchAnswers ?? [])];
  const answer = (socket: net.Socket, id: number, header: Uint8Array, payload: Buffer[] = []): void => {
    for (const b of encodeResponse(id, 0, header, payload)) socket.write(b);
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const onRequest = (frame: RequestFrame): void => {
      switch (frame.apiKey) {
        case ApiKey.Metadata: {
          // The client looks up the queue host (the leader of __share_state partition 0): this broker.
          const req = pb.MetadataRequest.decode(frame.header);
          const topics = req.topics.map((name) => ({ name, errorCode: 0, errorMessage: '', internal: true, partitions: [{ partition: 0, leader: 0, replicas: [0], isr: [0], logStartOffset: 0, logEndOffset: 0 }] }));
          const port = (server.address() as net.AddressInfo).port;
          answer(socket, frame.correlationId, pb.MetadataResponse.encode({ brokers: [{ id: 0, host: '127.0.0.1', port }], topics, controllerId: 0, clusterId: 'stand-in' }).finish());
          break;
        }
        case ApiKey.ShareSubscribe: {
          const req = ShareSubscribeRequest.decode(frame.header);
          events.push(`subscribe ${req.queue} prefetch=${req.prefetch}`);
          answer(socket, frame.correlationId, ShareFetchResponse.encode(firstAnswer()).finish(), [sixRecords()]);
          break;
        }
        case ApiKey.ShareFetch: {
          const req = ShareFetchRequest.decode(frame.header);
          fetches.push(req);
          events.push('fetch');
          const next = fetchAnswers.shift();
          if (next === undefined) setTimeout(() => answer(socket, frame.correlationId, ShareFetchResponse.encode({ acquired: [], data: [], endOfStream: false }).finish()), req.maxWaitMs);
          else answer(socket, frame.correlationId, ShareFetchResponse.encode(next).finish(), next.data.length > 0 ? [sixRecords()] : []);
          break;
        }
        case ApiKey.ShareAck: {
          const req = ShareAckRequest.decode(frame.header);
          events.push('ack');
          acks.push(req.ranges);
          answer(socket, frame.correlationId, ShareAckResponse.encode(handlers.onAck?.(req.ranges) ?? { errors: [] }).finish());
          break;
        }
        case ApiKey.ShareLeave: {
          ShareLeaveRequest.decode(frame.header);
          events.push('leave');
          answer(socket, frame.correlationId, ShareLeaveResponse.encode({}).finish());
          break;
        }
        default:
          socket.destroy();
      }
    };
    const reader = new FrameReader(REQUEST_PREFIX_BYTES, 1 << 20, (body) => onRequest(parseRequestBody(body)), () => socket.destroy());
    socket.on('data', (c: Buffer) => reader.push(c));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    events,
    acks,
    fetches,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Offsets 0..5 of partition 0, values v0..v5, each with a header. */
function sixRecords(): Buffer {
  return encodeBatch(Array.from({ length: 6 }, (_, i) => ({ value: Buffer.from(`v${i}`), headers: [{ key: 'n', value: Buffer.from(String(i)) }], timestamp: 1000 + i })));
}

/** Acquires 0-2 (first delivery) and 4 (second delivery): 3 and 5 belong to someone else. */
function firstAnswer(): ShareFetchResponse {
  return {
    acquired: [
      { partition: 0, firstOffset: 4, lastOffset: 4, deliveryCount: 2, lockExpiresAt: 99 },
      { partition: 0, firstOffset: 0, lastOffset: 2, deliveryCount: 1, lockExpiresAt: 98 },
    ],
    data: [{ partition: 0, recordsLength: sixRecords().length }],
    endOfStream: false,
  };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function clientFor(port: number): KmqClient {
  const client = new KmqClient({ brokers: [`127.0.0.1:${port}`], logger: silentLogger(), retry: { retries: 0 } });
  cleanups.push(() => client.close());
  return client;
}

async function take(it: AsyncIterator<Delivery>, n: number): Promise<Delivery[]> {
  const out: Delivery[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done === true) break;
    out.push(r.value);
  }
  return out;
}

describe('QueueConsumer', () => {
  it('keeps only acquired records, batches one turn of settlements into one request, and leaves after they are answered', async () => {
    const broker = await startShareBroker({
      onAck: (ranges) => ({
        errors: ranges.some((r) => r.type === AckType.ACK_REJECT) ? [{ partition: 0, offset: 4, errorCode: errorCodeToWire(ErrorCode.InvalidDelivery), errorMessage: 'lock expired' }] : [],
      }),
    });
    cleanups.push(broker.stop);
    const consumer = clientFor(broker.port).queueConsumer({ queue: 'jobs', prefetch: 10 });
    const it = consumer.deliveries();
    const got = await take(it, 4);
    expect(got.map((d) => [d.offset, d.deliveryCount, d.value?.toString(), d.header('n'), d.timestamp, d.lockExpiresAt])).toEqual([
      [0, 1, 'v0', '0', 1000, 98],
      [1, 1, 'v1', '1', 1001, 98],
      [2, 1, 'v2', '2', 1002, 98],
      [4, 2, 'v4', '4', 1004, 99],
    ]);
    expect(consumer.heldCount).toBe(4);

    // Fire-and-forget acks and an awaited reject, all in one turn.
    got[0]!.ack();
    got[1]!.ack();
    const ack2 = got[2]!.ack();
    const rejected = got[3]!.reject('bad input');
    expect(consumer.heldCount).toBe(0);
    await expect(ack2).resolves.toBeUndefined();
    const err = await Promise.resolve(rejected).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KmqError);
    expect((err as KmqError).code).toBe(ErrorCode.InvalidDelivery);
    expect((err as KmqError).context).toMatchObject({ queue: 'jobs', partition: 0, offset: 4 });
    expect(broker.acks).toEqual([
      [
        { partition: 0, firstOffset: 0, lastOffset: 2, type: AckType.ACK_ACCEPT, delayMs: 0, reason: '' },
        { partition: 0, firstOffset: 4, lastOffset: 4, type: AckType.ACK_REJECT, delayMs: 0, reason: 'bad input' },
      ],
    ]);
    // A second settlement of one delivery fails without a request.
    await expect(got[0]!.ack()).rejects.toMatchObject({ code: ErrorCode.InvalidDelivery });

    await consumer.close();
    expect(await it.next()).toEqual({ done: true, value: undefined });
    expect(broker.events).toEqual(['subscribe jobs prefetch=10', 'ack', 'leave']);
  });

  it('close() sends the settlements issued just before it, then leaves; ackAll shares one promise', async () => {
    const broker = await startShareBroker();
    cleanups.push(broker.stop);
    const consumer = clientFor(broker.port).queueConsumer({ queue: 'jobs' });
    const got = await take(consumer.deliveries(), 4);
    const all = consumer.ackAll(got.slice(0, 3));
    got[3]!.nack(250);
    await consumer.close();
    await expect(all).resolves.toBeUndefined();
    expect(broker.acks).toEqual([
      [
        { partition: 0, firstOffset: 0, lastOffset: 2, type: AckType.ACK_ACCEPT, delayMs: 0, reason: '' },
        { partition: 0, firstOffset: 4, lastOffset: 4, type: AckType.ACK_RELEASE, delayMs: 250, reason: '' },
      ],
    ]);
    expect(broker.events).toEqual(['subscribe jobs prefetch=100', 'ack', 'leave']);
  });

  it('drops a renew made pointless by an ack of the same record in the same turn', async () => {
    const broker = await startShareBroker();
    cleanups.push(broker.stop);
    const consumer = clientFor(broker.port).queueConsumer({ queue: 'jobs' });
    const [d] = await take(consumer.deliveries(), 1);
    const renewed = d!.renew();
    await d!.ack();
    await expect(renewed).resolves.toBeUndefined();
    expect(broker.acks).toEqual([[{ partition: 0, firstOffset: 0, lastOffset: 0, type: AckType.ACK_ACCEPT, delayMs: 0, reason: '' }]]);
    await consumer.close();
  });

  it('pull mode asks for prefetch minus what it holds', async () => {
    const broker = await startShareBroker({ fetchAnswers: [firstAnswer()] });
    cleanups.push(broker.stop);
    const consumer = clientFor(broker.port).queueConsumer({ queue: 'jobs', mode: 'pull', prefetch: 6, maxWaitMs: 30 });
    const got = await take(consumer.deliveries(), 4);
    expect(got.map((d) => d.offset)).toEqual([0, 1, 2, 4]);
    await got[0]!.ack();
    await new Promise((r) => setTimeout(r, 60));
    await consumer.close();
    expect(broker.fetches[0]!.maxRecords).toBe(6);
    expect(broker.fetches.slice(1).map((f) => f.maxRecords)).toContain(3);
    expect(broker.fetches.every((f) => f.maxWaitMs === 30 && f.prefetch === 6 && f.queue === 'jobs')).toBe(true);
    expect(broker.events.at(-1)).toBe('leave');
  });
});

describe('QueueConsumer with a limit', () => {
  it('asks for no more than the limit, stops fetching and ends the deliveries there', async () => {
    const broker = await startShareBroker({ fetchAnswers: [firstAnswer()] });
    cleanups.push(broker.stop);
    const consumer = clientFor(broker.port).queueConsumer({ queue: 'jobs', mode: 'pull', prefetch: 6, limit: 4, maxWaitMs: 30 });
    const got: number[] = [];
    for await (const d of consumer.deliveries()) {
      got.push(d.offset);
      d.nack();
    }
    expect(got).toEqual([0, 1, 2, 4]);
    await new Promise((r) => setTimeout(r, 60));
    expect(broker.fetches.map((f) => f.maxRecords)).toEqual([4]);
    await consumer.close();
    expect(broker.events).toEqual(['fetch', 'ack', 'leave']);
  });
});

describe('compileQueueConsumerOptions', () => {
  it('fills defaults and names the bad setting', () => {
    expect(compileQueueConsumerOptions({ queue: 'q' })).toEqual({ queue: 'q', group: '', prefetch: 100, mode: 'push', maxWaitMs: 500, limit: Number.MAX_SAFE_INTEGER, onError: undefined });
    expect(compileQueueConsumerOptions({ queue: 'q', mode: 'pull', limit: 3 }).limit).toBe(3);
    expect(() => compileQueueConsumerOptions({ queue: 'q', limit: 3 })).toThrow(/limit/);
    expect(() => compileQueueConsumerOptions({ queue: 'q', mode: 'pull', limit: 0 })).toThrow(/limit/);
    expect(() => compileQueueConsumerOptions({ queue: '' })).toThrow(/queue/);
    expect(() => compileQueueConsumerOptions({ queue: 'q', prefetch: 0 })).toThrow(/prefetch/);
    expect(() => compileQueueConsumerOptions({ queue: 'q', mode: 'poll' as 'pull' })).toThrow(/mode/);
    expect(() => compileQueueConsumerOptions({ queue: 'q', maxWaitMs: -1 })).toThrow(/maxWaitMs/);
  });
});
