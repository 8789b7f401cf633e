import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { ApiKey, Apis } from '../../protocol/apis.js';
import { errorCodeFromWire } from '../../protocol/error-codes.js';
import { encodeBatch, forEachRecord } from '../../protocol/record-batch.js';
import * as pb from '../../protocol/gen/kmq/broker/v1/broker.js';
import { BrokerProcess, tempDir } from '../utils/broker-process.js';
import { RawConnection } from '../utils/raw-connection.js';

// A retried idempotent batch (same producer id and sequence) is written once, also across a restart.
describe('idempotent produce', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function produce(c: RawConnection, batch: Buffer): Promise<{ error: string; res?: pb.ProduceResponse }> {
    const r = await c.request(ApiKey.Produce, Apis.Produce.request.encode({ topic: 'idem', partition: 0, acks: pb.Acks.ACKS_LEADER, timeoutMs: 5000 }).finish(), [batch]);
    if (r!.frameError !== 0) return { error: errorCodeFromWire(r!.frameError) };
    return { error: '', res: Apis.Produce.response.decode(r!.header) };
  }

  async function values(c: RawConnection): Promise<string[]> {
    const r = await c.request(ApiKey.Fetch, Apis.Fetch.request.encode({ partitions: [{ topic: 'idem', partition: 0, fetchOffset: 0, maxBytes: 0 }], maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20 }).finish());
    const out: string[] = [];
    forEachRecord(r!.payload, 0, (rec) => out.push(rec.value!.toString()));
    return out;
  }

  it('writes a retried batch once and refuses sequence gaps', async () => {
    const dataDir = tempDir('kmq-idem-');
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    let broker = await BrokerProcess.start({ dataDir });
    cleanups.push(() => broker.kill());
    let c = await RawConnection.connect(broker.port);
    cleanups.push(() => c.close());
    await c.request(ApiKey.CreateTopic, Apis.CreateTopic.request.encode({ name: 'idem', partitions: 1, replicationFactor: 1, ifNotExists: false, config: undefined }).finish());
    const pid = Apis.InitProducerId.response.decode((await c.request(ApiKey.InitProducerId, Apis.InitProducerId.request.encode({}).finish()))!.header);

    const batch = (seq: number, vals: string[]): Buffer => encodeBatch(vals.map((v) => ({ value: Buffer.from(v) })), { producerId: pid.producerId, producerEpoch: pid.producerEpoch, baseSequence: seq });
    const first = await produce(c, batch(0, ['a', 'b']));
    expect(first.res).toMatchObject({ baseOffset: 0, lastOffset: 1, duplicate: false });
    const retry = await produce(c, batch(0, ['a', 'b']));
    expect(retry.res).toMatchObject({ baseOffset: 0, lastOffset: 1, duplicate: true });
    expect((await produce(c, batch(2, ['c']))).res).toMatchObject({ baseOffset: 2, duplicate: false });
    expect((await produce(c, batch(7, ['gap']))).error).toBe('OUT_OF_ORDER_SEQUENCE');
    expect(await values(c)).toEqual(['a', 'b', 'c']);

    // Producer state is rebuilt from the log: the same retry after a crash is still a duplicate.
    c.close();
    await broker.kill();
    broker = await BrokerProcess.start({ dataDir });
    c = await RawConnection.connect(broker.port);
    expect((await produce(c, batch(2, ['c']))).res).toMatchObject({ baseOffset: 2, duplicate: true });
    expect((await produce(c, batch(3, ['d']))).res).toMatchObject({ baseOffset: 3, duplicate: false });
    expect(await values(c)).toEqual(['a', 'b', 'c', 'd']);

    // Producer ids are never handed out twice, even after the restart.
    const pid2 = Apis.InitProducerId.response.decode((await c.request(ApiKey.InitProducerId, Apis.InitProducerId.request.encode({}).finish()))!.header);
    expect(pid2.producerId).not.toBe(pid.producerId);
  });
});
