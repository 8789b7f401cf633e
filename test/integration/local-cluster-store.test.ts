import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { KmqClient } from '../../client/index.js';
import { BrokerProcess, tempDir } from '../utils/broker-process.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('a one-broker cluster on the local coordination store', () => {
  it('runs as its own controller and leader, and keeps topics, records and group offsets across kill -9', async () => {
    const dir = tempDir('kmq-local-cluster-');
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const args = ['--cluster-store', 'local', '--node-id', '1'];
    let broker = await BrokerProcess.start({ dataDir: dir, args });
    cleanups.push(() => broker.kill());
    let k = new KmqClient({ brokers: [broker.address] });
    await k.admin().createTopic('orders', { partitions: 2 });
    const described = await k.admin().describeCluster();
    expect(described.controllerId).toBe(1);
    expect(described.brokers.map((b) => b.id)).toEqual([1]);
    expect(described.topics.find((t) => t.name === 'orders')!.partitions.map((p) => [p.leader, p.replicas, p.isr])).toEqual([
      [1, [1], [1]],
      [1, [1], [1]],
    ]);
    await k.producer({ acks: 'all' }).send('orders', Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })));
    const consumer = k.consumer({ groupId: 'g', topics: ['orders'], fromBeginning: true, autoCommit: false });
    let seen = 0;
    for await (const b of consumer.batches()) {
      seen += b.records.length;
      if (seen === 10) break;
    }
    await consumer.commit();
    await consumer.close();
    await k.close();
    expect(fs.existsSync(`${dir}/cluster-store.json`)).toBe(true);

    await broker.kill();
    broker = await BrokerProcess.start({ dataDir: dir, args });
    k = new KmqClient({ brokers: [broker.address] });
    cleanups.push(() => k.close());
    const ends = await k.admin().listOffsets('orders', 'latest');
    expect([...ends.values()].reduce((a, b) => a + b, 0)).toBe(10);
    const committed = await k.admin().describeGroup('g');
    expect(committed.offsets.reduce((a, o) => a + o.offset, 0)).toBe(10);
  });
});
