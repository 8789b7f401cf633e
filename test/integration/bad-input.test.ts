import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerProcess } from '../utils/broker-process.js';
import { RawConnection } from '../utils/raw-connection.js';
import { ApiKey, Apis } from '../../protocol/apis.js';
import { errorCodeFromWire } from '../../protocol/error-codes.js';
import { encodeBatch, forEachRecord } from '../../protocol/record-batch.js';
import * as pb from '../../protocol/gen/kmq/broker/v1/broker.js';

// Bad input gets a clear error and never harms stored data or other clients.
describe('bad input', () => {
  let broker: BrokerProcess;
  let conn: RawConnection;

  beforeAll(async () => {
    broker = await BrokerProcess.start({ args: ['--max-message-bytes', '4096'] });
    conn = await RawConnection.connect(broker.port);
    const created = await conn.request(ApiKey.CreateTopic, Apis.CreateTopic.request.encode({ name: 'bad-input', partitions: 1, replicationFactor: 1, ifNotExists: false, config: undefined }).finish());
    expect(created?.frameError).toBe(0);
    const produced = await produce(conn, 'bad-input', encodeBatch([{ key: Buffer.from('k'), value: Buffer.from('kept-1') }, { value: Buffer.from('kept-2') }]));
    expect(produced.frameError).toBe(0);
  });

  afterAll(async () => {
    conn?.close();
    await broker?.cleanup();
  });

  async function produce(c: RawConnection, topic: string, batch: Buffer): Promise<{ frameError: number; message: string }> {
    const r = await c.request(ApiKey.Produce, Apis.Produce.request.encode({ topic, partition: 0, acks: pb.Acks.ACKS_LEADER, timeoutMs: 5000 }).finish(), [batch]);
    if (r === undefined) throw new Error('connection closed');
    const message = r.frameError === 0 ? '' : pb.ErrorResponse.decode(r.header).errorMessage;
    return { frameError: r.frameError, message };
  }

  async function storedValues(): Promise<string[]> {
    const r = await conn.request(ApiKey.Fetch, Apis.Fetch.request.encode({ partitions: [{ topic: 'bad-input', partition: 0, fetchOffset: 0, maxBytes: 0 }], maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20 }).finish());
    const values: string[] = [];
    forEachRecord(r!.payload, 0, (rec) => values.push(rec.value!.toString()));
    return values;
  }

  it('refuses a batch with a wrong CRC and keeps what was stored', async () => {
    const batch = encodeBatch([{ value: Buffer.from('corrupted') }]);
    batch.writeUInt8(batch.readUInt8(batch.length - 3) ^ 0x10, batch.length - 3);
    const r = await produce(conn, 'bad-input', batch);
    expect(errorCodeFromWire(r.frameError)).toBe('CORRUPT_MESSAGE');
    expect(r.message).toMatch(/crc/i);
    expect(await storedValues()).toEqual(['kept-1', 'kept-2']);
  });

  it('refuses a record over the max message size', async () => {
    const r = await produce(conn, 'bad-input', encodeBatch([{ value: Buffer.alloc(10_000, 1) }]));
    expect(errorCodeFromWire(r.frameError)).toBe('MESSAGE_TOO_LARGE');
    expect(r.message).toContain('4096');
    expect(await storedValues()).toEqual(['kept-1', 'kept-2']);
  });

  it('names an unknown topic', async () => {
    const r = await produce(conn, 'no-such-topic', encodeBatch([{ value: Buffer.from('x') }]));
    expect(errorCodeFromWire(r.frameError)).toBe('UNKNOWN_TOPIC');
    expect(r.message).toContain('no-such-topic');
    const f = await conn.request(ApiKey.Fetch, Apis.Fetch.request.encode({ partitions: [{ topic: 'no-such-topic', partition: 0, fetchOffset: 0, maxBytes: 0 }], maxWaitMs: 0, minBytes: 0, maxBytes: 1024 }).finish());
    const result = Apis.Fetch.response.decode(f!.header).partitions[0]!;
    expect(errorCodeFromWire(result.errorCode)).toBe('UNKNOWN_TOPIC');
    expect(result.errorMessage).toContain('no-such-topic');
  });

  it('refuses truncated garbage as a batch', async () => {
    const r = await produce(conn, 'bad-input', Buffer.from('this is not a record batch at all, but it is long enough to have a header..'));
    expect(errorCodeFromWire(r.frameError)).toBe('CORRUPT_MESSAGE');
    expect(await storedValues()).toEqual(['kept-1', 'kept-2']);
  });

  it('disconnects an HTTP client without harm', async () => {
    const s = net.connect(broker.port, '127.0.0.1');
    const closed = new Promise<string>((resolve) => {
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('close', () => resolve(got));
      s.on('error', () => undefined);
    });
    s.write('GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n');
    expect(await closed).toBe('');
    // The broker still serves others, data intact.
    expect(await storedValues()).toEqual(['kept-1', 'kept-2']);
    expect(broker.logs().some((l) => l.msg === 'Closing connection: malformed frame')).toBe(true);
  });

  it('answers an unknown api with UNSUPPORTED_VERSION and closes', async () => {
    const c = await RawConnection.connect(broker.port);
    const r = await c.request(999, Buffer.alloc(0));
    expect(r).toBeDefined();
    expect(errorCodeFromWire(r!.frameError)).toBe('UNSUPPORTED_VERSION');
    expect(await c.waitClosed()).toBe(true);
    const v = await RawConnection.connect(broker.port);
    const r2 = await v.request(ApiKey.Metadata, Apis.Metadata.request.encode({ topics: [], includeInternal: false }).finish(), [], 7);
    expect(errorCodeFromWire(r2!.frameError)).toBe('UNSUPPORTED_VERSION');
    v.close();
  });

  it('closes on a frame length beyond the maximum, before reading the body', async () => {
    const c = await RawConnection.connect(broker.port);
    const prefix = Buffer.alloc(16);
    prefix.writeUInt32BE(0xfffffff0, 0);
    c.socket.write(prefix);
    expect(await c.waitClosed()).toBe(true);
  });
});
