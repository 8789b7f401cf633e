import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import { Apis } from './apis.js';
import { errorCodeToWire } from './error-codes.js';
import { FrameReader, REQUEST_PREFIX_BYTES, encodeResponse, parseRequestBody } from './frame.js';
import type { RequestFrame } from './frame.js';
import { ErrorResponse, MetadataRequest, MetadataResponse } from './gen/kmq/broker/v1/broker.js';
import { ShareFetchResponse } from './gen/kmq/broker/v1/queues.js';
import { BrokerConnection } from './connection.js';

/** A tiny broker stand-in speaking the frame format; `onRequest` decides what to answer. */
async function startServer(onRequest: (frame: RequestFrame, socket: net.Socket) => void): Promise<{ port: number; stop: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const reader = new FrameReader(REQUEST_PREFIX_BYTES, 1 << 20, (body) => onRequest(parseRequestBody(body), socket), () => socket.destroy());
    socket.on('data', (c: Buffer) => reader.push(c));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    stop: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

function respond(socket: net.Socket, correlationId: number, header: MetadataResponse, payload: Buffer[] = []): void {
  for (const b of encodeResponse(correlationId, 0, MetadataResponse.encode(header).finish(), payload)) socket.write(b);
}

function metadataAnswer(clusterId: string): MetadataResponse {
  return { brokers: [], topics: [], controllerId: 0, clusterId };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function connectTo(port: number, requestTimeoutMs = 5_000): Promise<BrokerConnection> {
  const conn = new BrokerConnection({ address: { host: '127.0.0.1', port }, connectTimeoutMs: 2_000, requestTimeoutMs, maxFrameBytes: 1 << 20, logger: silentLogger() });
  await conn.connect();
  cleanups.push(() => conn.close());
  return conn;
}

describe('BrokerConnection', () => {
  it('matches pipelined responses sent out of order by correlation id', async () => {
    const held: Array<{ id: number; topic: string; socket: net.Socket }> = [];
    const server = await startServer((frame, socket) => {
      const req = MetadataRequest.decode(frame.header);
      held.push({ id: frame.correlationId, topic: req.topics[0]!, socket });
      if (held.length === 5) for (const h of held.reverse()) respond(h.socket, h.id, metadataAnswer(`answer-${h.topic}`));
    });
    cleanups.push(server.stop);
    const conn = await connectTo(server.port);
    const names = ['a', 'b', 'c', 'd', 'e'];
    const results = await Promise.all(names.map((t) => conn.request(Apis.Metadata, { topics: [t], includeInternal: false })));
    expect(results.map((r) => r.header.clusterId)).toEqual(names.map((t) => `answer-${t}`));
    expect(conn.inFlight).toBe(0);
  });

  it('writes the payload after the header and returns the response payload', async () => {
    const server = await startServer((frame, socket) => {
      respond(socket, frame.correlationId, metadataAnswer('echo'), [Buffer.from('<'), Buffer.from(frame.payload), Buffer.from('>')]);
    });
    cleanups.push(server.stop);
    const conn = await connectTo(server.port);
    const res = await conn.request(Apis.Metadata, { topics: [], includeInternal: false }, [Buffer.from('hello '), Buffer.from('world')]);
    expect(res.header.clusterId).toBe('echo');
    expect(res.payload.toString()).toBe('<hello world>');
  });

  it('rejects with RequestTimedOut when no response arrives in time, and drops the connection (a silent broker may be frozen)', async () => {
    const server = await startServer(() => undefined);
    cleanups.push(server.stop);
    const conn = await connectTo(server.port, 100);
    const other = conn.request(Apis.Metadata, { topics: ['other'], includeInternal: false }, [], { timeoutMs: 60_000 }).catch((e: unknown) => e);
    const err = await conn.request(Apis.Metadata, { topics: [], includeInternal: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KmqError);
    expect((err as KmqError).code).toBe(ErrorCode.RequestTimedOut);
    expect((err as KmqError).retriable).toBe(true);
    // The request still waiting on it fails retriably, and the connection is done.
    expect(await other).toMatchObject({ code: ErrorCode.ConnectionClosed, retriable: true });
    expect(conn.closed).toBe(true);
  });

  it('rejects every pending request with a retriable ConnectionClosed when the broker goes away', async () => {
    let seen = 0;
    const server = await startServer((_frame, socket) => {
      if (++seen === 3) socket.destroy();
    });
    cleanups.push(server.stop);
    const conn = await connectTo(server.port);
    const all = [1, 2, 3].map(() => conn.request(Apis.Metadata, { topics: [], includeInternal: false }).catch((e: unknown) => e));
    const errors = await Promise.all(all);
    for (const e of errors) {
      expect(e).toMatchObject({ code: ErrorCode.ConnectionClosed, retriable: true });
    }
    expect(conn.closed).toBe(true);
    expect(() => conn.request(Apis.Metadata, { topics: [], includeInternal: false })).toThrow(KmqError);
  });

  it('maps a frame error to a KmqError with the broker message', async () => {
    const server = await startServer((frame, socket) => {
      const header = ErrorResponse.encode({ errorCode: errorCodeToWire(ErrorCode.UnsupportedVersion), errorMessage: 'api 3 version 9 not supported' }).finish();
      for (const b of encodeResponse(frame.correlationId, errorCodeToWire(ErrorCode.UnsupportedVersion), header)) socket.write(b);
    });
    cleanups.push(server.stop);
    const conn = await connectTo(server.port);
    await expect(conn.request(Apis.Metadata, { topics: [], includeInternal: false })).rejects.toMatchObject({
      code: ErrorCode.UnsupportedVersion,
      message: 'api 3 version 9 not supported',
      retriable: false,
    });
  });

  it('sends fire-and-forget requests without registering a pending response', async () => {
    const received: string[] = [];
    const server = await startServer((frame) => received.push(frame.payload.toString()));
    cleanups.push(server.stop);
    const conn = await connectTo(server.port);
    await conn.send(Apis.Produce, { topic: 't', partition: 0, acks: 1, timeoutMs: 0 }, [Buffer.from('x')]);
    await conn.send(Apis.Produce, { topic: 't', partition: 0, acks: 1, timeoutMs: 0 }, [Buffer.from('y')]);
    expect(conn.inFlight).toBe(0);
    await expect.poll(() => received).toEqual(['x', 'y']);
  });

  it('fails to connect with a retriable BrokerNotAvailable', async () => {
    const server = await startServer(() => {});
    const port = server.port;
    await server.stop();
    const conn = new BrokerConnection({ address: { host: '127.0.0.1', port }, connectTimeoutMs: 2_000, requestTimeoutMs: 1_000, maxFrameBytes: 1 << 20, logger: silentLogger() });
    await expect(conn.connect()).rejects.toMatchObject({ code: ErrorCode.BrokerNotAvailable, retriable: true });
  });

  it('closes the connection on a frame longer than the limit', async () => {
    const server = await startServer((frame, socket) => {
      respond(socket, frame.correlationId, metadataAnswer('x'.repeat(4096)));
    });
    cleanups.push(server.stop);
    const conn = new BrokerConnection({ address: { host: '127.0.0.1', port: server.port }, connectTimeoutMs: 2_000, requestTimeoutMs: 5_000, maxFrameBytes: 1024, logger: silentLogger() });
    await conn.connect();
    cleanups.push(() => conn.close());
    await expect(conn.request(Apis.Metadata, { topics: [], includeInternal: false })).rejects.toMatchObject({ code: ErrorCode.ConnectionClosed });
  });

  describe('stream', () => {
    const push = (socket: net.Socket, id: number, header: ShareFetchResponse, payload: Buffer[] = []): void => {
      for (const b of encodeResponse(id, 0, ShareFetchResponse.encode(header).finish(), payload)) socket.write(b);
    };
    const answer = (end: boolean, partition: number): ShareFetchResponse => ({
      acquired: [{ partition, firstOffset: 0, lastOffset: 0, deliveryCount: 1, lockExpiresAt: 0 }],
      data: [],
      endOfStream: end,
    });
    const subscribe = { queue: 'q', group: '', memberId: 'm', prefetch: 10 };

    it('delivers every answer under one correlation id until the last, then ends once', async () => {
      const server = await startServer((frame, socket) => {
        for (let i = 0; i < 3; i++) push(socket, frame.correlationId, answer(false, i), [Buffer.from(`p${i}`)]);
        push(socket, frame.correlationId, answer(true, 3));
        // Anything after the last answer has no one to go to.
        push(socket, frame.correlationId, answer(false, 4));
      });
      cleanups.push(server.stop);
      const conn = await connectTo(server.port, 50);
      const seen: Array<{ partition: number; payload: string }> = [];
      const ended = await new Promise<Array<KmqError | undefined>>((resolve) => {
        const ends: Array<KmqError | undefined> = [];
        conn.stream(Apis.ShareSubscribe, subscribe, (r) => seen.push({ partition: r.header.acquired[0]!.partition, payload: r.payload.toString() }), (err) => {
          ends.push(err);
          setTimeout(() => resolve(ends), 100);
        }, (h) => h.endOfStream);
      });
      expect(ended).toEqual([undefined]);
      expect(seen).toEqual([
        { partition: 0, payload: 'p0' },
        { partition: 1, payload: 'p1' },
        { partition: 2, payload: 'p2' },
        { partition: 3, payload: '' },
      ]);
      // No deadline applied although the request timeout is 50 ms, and nothing stays registered.
      expect(conn.inFlight).toBe(0);
    });

    it('ends with the frame error, or ConnectionClosed when the socket closes', async () => {
      let calls = 0;
      const server = await startServer((frame, socket) => {
        calls++;
        push(socket, frame.correlationId, answer(false, 0));
        if (calls === 1) {
          const header = ErrorResponse.encode({ errorCode: errorCodeToWire(ErrorCode.UnknownQueue), errorMessage: 'Queue q does not exist' }).finish();
          for (const b of encodeResponse(frame.correlationId, errorCodeToWire(ErrorCode.UnknownQueue), header)) socket.write(b);
        } else {
          setTimeout(() => socket.destroy(), 20);
        }
      });
      cleanups.push(server.stop);
      const conn = await connectTo(server.port);
      const run = (): Promise<{ messages: number; err: KmqError | undefined }> =>
        new Promise((resolve) => {
          let messages = 0;
          conn.stream(Apis.ShareSubscribe, subscribe, () => messages++, (err) => resolve({ messages, err }), (h) => h.endOfStream);
        });
      const first = await run();
      expect(first.messages).toBe(1);
      expect(first.err?.code).toBe(ErrorCode.UnknownQueue);
      expect(first.err?.message).toBe('Queue q does not exist');
      const second = await run();
      expect(second.messages).toBe(1);
      expect(second.err?.code).toBe(ErrorCode.ConnectionClosed);
    });

    it('cancel() drops later answers and never calls onEnd', async () => {
      const server = await startServer((frame, socket) => {
        push(socket, frame.correlationId, answer(false, 0));
        setTimeout(() => push(socket, frame.correlationId, answer(false, 1)), 30);
        setTimeout(() => push(socket, frame.correlationId, answer(true, 2)), 60);
      });
      cleanups.push(server.stop);
      const conn = await connectTo(server.port);
      let messages = 0;
      let ends = 0;
      await new Promise<void>((resolve) => {
        const handle = conn.stream(Apis.ShareSubscribe, subscribe, () => {
          messages++;
          handle.cancel();
          resolve();
        }, () => ends++, (h) => h.endOfStream);
      });
      await new Promise((r) => setTimeout(r, 120));
      expect(messages).toBe(1);
      expect(ends).toBe(0);
      expect(conn.inFlight).toBe(0);
    });
  });
});
