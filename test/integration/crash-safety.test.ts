import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KmqClient } from '../../client/index.js';
import type { Consumer } from '../../client/index.js';
import { BrokerProcess, tempDir } from '../utils/broker-process.js';

async function drain(consumer: Consumer, expected: number, idleMs = 2000): Promise<string[]> {
  const values: string[] = [];
  let idle: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(idle);
    idle = setTimeout(() => void consumer.close(), idleMs);
  };
  arm();
  for await (const batch of consumer.batches()) {
    for (const r of batch.records) values.push(r.value!.toString());
    if (values.length >= expected) break;
    arm();
  }
  clearTimeout(idle);
  await consumer.close();
  return values;
}

// kill -9 during a produce loop: nothing acknowledged is lost, committed offsets stay, torn writes are cut off.
describe('crash safety', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const flush of ['every-batch', 'none'] as const) {
    it(`keeps every acknowledged record and committed offset across kill -9 (flush ${flush})`, async () => {
      const dataDir = tempDir('kmq-crash-');
      cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
      let broker = await BrokerProcess.start({ dataDir, args: ['--flush', flush, '--segment-bytes', '262144'] });
      cleanups.push(() => broker.kill());

      const client = new KmqClient({ brokers: [broker.address], retry: { retries: 1, initialMs: 50, maxMs: 100 }, requestTimeoutMs: 3000, connectTimeoutMs: 1000 });
      cleanups.push(() => client.close());
      await client.admin().createTopic('crash', { partitions: 2 });

      // A committed offset before the crash.
      const producer = client.producer({ lingerMs: 1 });
      await producer.send('crash', Array.from({ length: 100 }, (_, i) => ({ key: `k${i % 7}`, value: `pre-${i}` })));
      const early = client.consumer({ groupId: 'crash-group', topics: ['crash'], fromBeginning: true, autoCommit: false });
      const seen = await drain(early, 100);
      expect(seen).toHaveLength(100);
      // drain() closed the consumer without auto-commit; commit explicitly with a fresh member.
      const committer = client.consumer({ assignment: [{ topic: 'crash', partition: 0, offset: 0 }, { topic: 'crash', partition: 1, offset: 0 }], groupId: 'crash-group' });
      await committer.start();
      const ends = await client.admin().listOffsets('crash', 'latest');
      for (const [p, end] of ends) committer.seek('crash', p, end);
      await committer.commit();
      await committer.close();
      const committedBefore = await client.admin().fetchOffsets('crash-group');

      // A produce loop; the broker dies in the middle of it.
      const acked = new Set<string>();
      let i = 0;
      let stop = false;
      const loop = (async () => {
        const inFlight: Array<Promise<void>> = [];
        while (!stop) {
          const chunk = Array.from({ length: 50 }, () => ({ key: `k${i % 13}`, value: `loop-${i++}` }));
          inFlight.push(
            producer.send('crash', chunk).then(
              () => chunk.forEach((r) => acked.add(r.value)),
              () => {
                stop = true;
              },
            ),
          );
          if (inFlight.length > 20) await inFlight.shift();
        }
        await Promise.allSettled(inFlight);
      })();
      await new Promise((r) => setTimeout(r, 1500));
      await broker.kill();
      await loop;
      expect(acked.size).toBeGreaterThan(1000);
      await client.close();

      broker = await BrokerProcess.start({ dataDir, args: ['--flush', flush, '--segment-bytes', '262144'] });
      const after = new KmqClient({ brokers: [broker.address] });
      cleanups.push(() => after.close());
      const reader = after.consumer({ topics: ['crash'], assignment: undefined, fromBeginning: true, autoCommit: false, groupId: undefined });
      const values = new Set(await drain(reader, Infinity));
      for (const v of acked) expect(values.has(v), `acknowledged ${v} lost`).toBe(true);
      for (let n = 0; n < 100; n++) expect(values.has(`pre-${n}`)).toBe(true);

      const committedAfter = await after.admin().fetchOffsets('crash-group');
      expect(committedAfter.map((o) => [o.topic, o.partition, o.offset])).toEqual(committedBefore.map((o) => [o.topic, o.partition, o.offset]));
    });
  }

  it('truncates a torn write at start, with a log line, and loses nothing before it', async () => {
    const dataDir = tempDir('kmq-torn-');
    cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
    let broker = await BrokerProcess.start({ dataDir });
    cleanups.push(() => broker.kill());
    const client = new KmqClient({ brokers: [broker.address] });
    await client.admin().createTopic('torn', { partitions: 1 });
    const producer = client.producer();
    await producer.send('torn', Array.from({ length: 500 }, (_, i) => ({ value: `torn-${i}` })));
    await client.close();
    await broker.kill();

    const dir = path.join(dataDir, 'logs', 'torn-0');
    const segment = fs.readdirSync(dir).filter((f) => f.endsWith('.log')).sort().pop()!;
    const file = path.join(dir, segment);
    const sizeBefore = fs.statSync(file).size;
    // Half a batch header and random bytes: what a crash in the middle of a write leaves.
    fs.appendFileSync(file, Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 1, 244, 0, 0, 0, 200, 0, 0, 0, 0, 2]), Buffer.alloc(40, 0xab)]));

    broker = await BrokerProcess.start({ dataDir });
    const line = broker.logs().find((l) => l.msg === 'Truncated torn write');
    expect(line, broker.lines.join('\n')).toBeDefined();
    expect(fs.statSync(file).size).toBe(sizeBefore);

    const after = new KmqClient({ brokers: [broker.address] });
    cleanups.push(() => after.close());
    const values = await drain(after.consumer({ topics: ['torn'], fromBeginning: true, autoCommit: false }), 500);
    expect(values).toEqual(Array.from({ length: 500 }, (_, i) => `torn-${i}`));
    // And it takes new writes after the cut.
    const meta = await after.producer().sendOne('torn', { value: 'after' });
    expect(meta.offset).toBe(500);
  });
});
