import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmqClient, KmqError } from '../../client/index.js';
import type { Consumer } from '../../client/index.js';
import { BrokerProcess } from '../utils/broker-process.js';
import { runCli } from '../utils/cli.js';

async function firstBatchOrError(consumer: Consumer): Promise<{ offset?: number; error?: unknown }> {
  try {
    for await (const batch of consumer.batches()) return { offset: batch.records[0]!.offset };
    return {};
  } catch (error) {
    return { error };
  } finally {
    await consumer.close();
  }
}

async function waitFor(cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Retention drops whole old segments; a consumer below the log start is told so and can reset.
describe('retention', () => {
  let broker: BrokerProcess;
  let client: KmqClient;

  beforeAll(async () => {
    broker = await BrokerProcess.start({ args: ['--retention-check-ms', '100'] });
    client = new KmqClient({ brokers: [broker.address] });
  });
  afterAll(async () => {
    await client?.close();
    await broker?.cleanup();
  });

  const startOf = async (topic: string): Promise<number> => (await client.admin().describeTopic(topic)).topic.partitions[0]!.logStartOffset;

  it('drops whole oldest segments past retention.bytes', async () => {
    await client.admin().createTopic('by-bytes', { partitions: 1, config: { retentionBytes: 40_000, segmentBytes: 10_000 } });
    const producer = client.producer({ lingerMs: 0, batchSizeBytes: 2048 });
    for (let i = 0; i < 100; i++) await producer.send('by-bytes', Array.from({ length: 10 }, (_, j) => ({ value: `r${i * 10 + j}-${'x'.repeat(90)}` })));
    // Retention runs every 100 ms on the broker; wait for a pass after the last write.
    await waitFor(async () => (await client.admin().describeTopic('by-bytes')).sizeBytes <= 40_000 + 2 * 10_000);
    const d = await client.admin().describeTopic('by-bytes');
    const p = d.topic.partitions[0]!;
    expect(p.logEndOffset).toBe(1000);
    // Whole segments go, and only while what stays is at least retention.bytes (Kafka's rule).
    expect(d.sizeBytes).toBeLessThanOrEqual(40_000 + 2 * 10_000);
    expect(d.sizeBytes).toBeGreaterThanOrEqual(40_000);

    // The first record still stored is exactly the log start: a segment boundary, nothing half-deleted.
    const tail = await firstBatchOrError(client.consumer({ assignment: [{ topic: 'by-bytes', partition: 0, offset: p.logStartOffset }], autoCommit: false }));
    expect(tail.offset).toBe(p.logStartOffset);

    // Below the log start: a clear out-of-range answer.
    const below = await firstBatchOrError(client.consumer({ assignment: [{ topic: 'by-bytes', partition: 0, offset: 0 }], autoCommit: false, resetOnOutOfRange: false }));
    expect(below.error).toBeInstanceOf(KmqError);
    expect((below.error as KmqError).code).toBe('OFFSET_OUT_OF_RANGE');
    expect((below.error as KmqError).message).toMatch(new RegExp(`${p.logStartOffset}`));

    // With the default policy the consumer resets to the log start by itself.
    const reset = await firstBatchOrError(client.consumer({ assignment: [{ topic: 'by-bytes', partition: 0, offset: 0 }], autoCommit: false, fromBeginning: true }));
    expect(reset.offset).toBe(p.logStartOffset);
  });

  it('drops segments older than retention.ms, and a group below the start resets to earliest', async () => {
    await client.admin().createTopic('by-time', { partitions: 1, config: { retentionMs: 1500, segmentBytes: 4096 } });
    const producer = client.producer({ lingerMs: 0, batchSizeBytes: 1024 });
    for (let i = 0; i < 20; i++) await producer.send('by-time', [{ value: `old-${i}-${'y'.repeat(500)}` }]);
    // A group commits at offset 3, then the records age out.
    const cli = await runCli(['group', 'reset', 'late-group', '--topic', 'by-time', '--to', '3'], { env: { KMQ_BROKER: broker.address } });
    expect(cli.code, cli.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 1700));
    await producer.send('by-time', [{ value: 'new-0' }]);
    await waitFor(async () => (await startOf('by-time')) > 3);
    const start = await startOf('by-time');

    const out = await runCli(['consume', 'by-time', '--group', 'late-group', '--from', 'earliest', '--idle-timeout', '1500'], { env: { KMQ_BROKER: broker.address, KMQ_LOG_LEVEL: 'warn' } });
    expect(out.code, out.stderr).toBe(0);
    const values = out.stdout.trim().split('\n');
    expect(values[values.length - 1]).toBe('new-0');
    expect(values.every((v) => !v.startsWith('old-0-'))).toBe(true);
    expect(values.length).toBe(21 - start);
  });
});
