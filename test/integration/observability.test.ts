import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmqClient } from '../../client/index.js';
import { BrokerProcess } from '../utils/broker-process.js';

// /metrics, /healthz and /readyz on the broker's HTTP port, moved by real traffic.
describe('broker observability', () => {
  let broker: BrokerProcess;
  let client: KmqClient;

  beforeAll(async () => {
    broker = await BrokerProcess.start();
    client = new KmqClient({ brokers: [broker.address] });
  });
  afterAll(async () => {
    await client?.close();
    await broker?.cleanup();
  });

  const get = (path: string): Promise<Response> => fetch(`http://127.0.0.1:${broker.httpPort}${path}`);

  it('serves health and readiness', async () => {
    expect((await get('/healthz')).status).toBe(200);
    const ready = await get('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.text()).toContain('ready');
    expect((await get('/nope')).status).toBe(404);
  });

  it('exports records and bytes per topic, latencies, log end offsets and group lag', async () => {
    await client.admin().createTopic('observed', { partitions: 2 });
    await client.producer().send('observed', Array.from({ length: 300 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })));
    const consumer = client.consumer({ groupId: 'watchers', topics: ['observed'], fromBeginning: true, autoCommit: false });
    let read = 0;
    for await (const b of consumer.batches()) {
      read += b.records.length;
      if (read >= 100) break;
    }
    // Commit only the first 100 of partition positions handed out: lag stays visible.
    await consumer.commit();
    await consumer.close();

    const text = await (await get('/metrics')).text();
    const value = (pattern: RegExp): number => {
      const m = pattern.exec(text);
      expect(m, `${pattern} in\n${text.slice(0, 3000)}`).not.toBeNull();
      return Number(m![1]);
    };
    expect(value(/^kmq_broker_records_in_total\{topic="observed"\} (\d+)/m)).toBe(300);
    expect(value(/^kmq_broker_bytes_in_total\{topic="observed"\} (\d+)/m)).toBeGreaterThan(300 * 4);
    expect(value(/^kmq_broker_records_out_total\{topic="observed"\} (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^kmq_broker_produce_seconds_count (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^kmq_broker_fetch_seconds_count (\d+)/m)).toBeGreaterThan(0);
    const end0 = value(/^kmq_broker_log_end_offset\{topic="observed",partition="0"\} (\d+)/m);
    const end1 = value(/^kmq_broker_log_end_offset\{topic="observed",partition="1"\} (\d+)/m);
    expect(end0 + end1).toBe(300);
    const lag0 = value(/^kmq_broker_group_lag\{group="watchers",topic="observed",partition="0"\} (\d+)/m);
    const lag1 = value(/^kmq_broker_group_lag\{group="watchers",topic="observed",partition="1"\} (\d+)/m);
    const committed = await client.admin().fetchOffsets('watchers');
    expect(lag0 + lag1).toBe(300 - committed.reduce((s, o) => s + Math.max(0, o.offset), 0));
    expect(text).toMatch(/# HELP kmq_broker_records_in_total /);
  });

  it('reports not ready while stopping', async () => {
    const other = await BrokerProcess.start();
    try {
      expect((await fetch(`http://127.0.0.1:${other.httpPort}/readyz`)).status).toBe(200);
      expect(await other.stop()).toBe(0);
      expect(other.logs().some((l) => l.msg === 'Broker stopped')).toBe(true);
    } finally {
      await other.cleanup();
    }
  });
});
