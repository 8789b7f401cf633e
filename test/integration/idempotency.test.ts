import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { KmqClient } from '../../client/index.js';
import type { BrokerProcessedKeyStore, PublishMessage, PublishTarget } from '../../client/index.js';
import type { ProcessedKeyStore } from '../../sidecar/delivery/idempotency.js';
import { BrokerProcess, tempDir } from '../utils/broker-process.js';

const KEY = 'x-kmq-idempotency-key';

function keyed(key: string | null, value: string): PublishMessage {
  return key === null ? { value } : { value, headers: { [KEY]: key } };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Broker-kept idempotency against real broker processes: publish dedupe by idempotency
// key, and the processed-key store of effectively-once consumers.
describe('broker-kept idempotency', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(dataDir: string, args: string[] = []): Promise<{ broker: BrokerProcess; client: KmqClient }> {
    const broker = await BrokerProcess.start({ dataDir, args });
    cleanups.push(() => broker.kill());
    const client = new KmqClient({ brokers: [broker.address] });
    cleanups.push(() => client.close());
    return { broker, client };
  }

  function ownDir(): string {
    const dir = tempDir('kmq-idem-');
    // Runs last: after every broker using it is gone.
    cleanups.unshift(() => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  it('a publish repeated with one idempotency key lands once per destination, also after kill -9 and restart', async () => {
    const dir = ownDir();
    let { broker, client } = await start(dir);
    const admin = client.admin();
    await admin.createQueue('orders', { partitions: 2 });
    await admin.createQueue('audit');
    await admin.createTopic('events', { partitions: 1 });
    await admin.createExchange('fan', 'fanout');
    await admin.bind({ exchange: 'fan', destination: { kind: 'queue', name: 'audit' } });
    await admin.bind({ exchange: 'fan', destination: { kind: 'topic', name: 'events' } });
    const publish = (target: PublishTarget, messages: PublishMessage[]): ReturnType<ReturnType<KmqClient['publisher']>['publish']> => client.publisher().publish(target, messages);

    const first = await publish({ queue: 'orders' }, [keyed('order-1', 'a')]);
    expect(first.duplicates).toBe(0);
    const again = await publish({ queue: 'orders' }, [keyed('order-1', 'a again')]);
    expect(again.duplicates).toBe(1);
    // Answered with where the original landed.
    expect(again.routed[0]).toMatchObject({ partition: first.routed[0]!.partition, baseOffset: first.routed[0]!.baseOffset, duplicates: 1 });

    // A batch mixing a repeat, a new key twice, and an unkeyed message: the repeats go.
    const mixed = await publish({ queue: 'orders' }, [keyed('order-1', 'x'), keyed('order-2', 'b'), keyed(null, 'c'), keyed('order-2', 'y')]);
    expect(mixed.duplicates).toBe(2);
    expect((await admin.describeQueue('orders')).logEndOffset).toBe(3);

    // Through an exchange: each destination dedupes on its own.
    expect((await publish({ exchange: 'fan' }, [keyed('evt-1', 'e')])).duplicates).toBe(0);
    const fanAgain = await publish({ exchange: 'fan' }, [keyed('evt-1', 'e')]);
    expect(fanAgain.duplicates).toBe(2);
    expect(fanAgain.routed.map((r) => r.duplicates)).toEqual([1, 1]);
    // Publishing straight to the queue is the same destination.
    expect((await publish({ queue: 'audit' }, [keyed('evt-1', 'e')])).duplicates).toBe(1);
    // Counted per destination in the broker's metrics.
    const metrics = await (await fetch(`http://127.0.0.1:${broker.httpPort}/metrics`)).text();
    const dropped = (d: string): string | undefined => new RegExp(`^kmq_broker_publish_duplicates_dropped\\{destination="${d}"\\} (\\d+)$`, 'm').exec(metrics)?.[1];
    expect([dropped('orders'), dropped('audit'), dropped('events')]).toEqual(['3', '2', '1']);

    await broker.kill();
    await client.close();
    ({ broker, client } = await start(dir));
    expect((await publish({ queue: 'orders' }, [keyed('order-1', 'after restart'), keyed('order-2', 'after restart')])).duplicates).toBe(2);
    expect((await publish({ exchange: 'fan' }, [keyed('evt-1', 'e')])).duplicates).toBe(2);
    expect((await publish({ queue: 'orders' }, [keyed('order-3', 'new')])).duplicates).toBe(0);
    expect((await client.admin().describeQueue('orders')).logEndOffset).toBe(4);
    expect((await client.admin().describeQueue('audit')).logEndOffset).toBe(1);
    expect((await client.admin().listOffsets('events', 'latest')).get(0)).toBe(1);
  });

  it('forgets a key after the dedupe window, across a restart too', async () => {
    const dir = ownDir();
    let { broker, client } = await start(dir, ['--dedupe-window-ms', '4000']);
    await client.admin().createQueue('jobs');
    const pub = client.publisher();
    expect((await pub.publish({ queue: 'jobs' }, [keyed('j1', 'a')])).duplicates).toBe(0);
    expect((await pub.publish({ queue: 'jobs' }, [keyed('j1', 'a')])).duplicates).toBe(1);
    await sleep(4100);
    expect((await pub.publish({ queue: 'jobs' }, [keyed('j1', 'b')])).duplicates).toBe(0);

    await broker.kill();
    await client.close();
    ({ broker, client } = await start(dir, ['--dedupe-window-ms', '4000']));
    // Within the window of the second append: still a duplicate after the restart.
    expect((await client.publisher().publish({ queue: 'jobs' }, [keyed('j1', 'c')])).duplicates).toBe(1);
    await sleep(4100);
    expect((await client.publisher().publish({ queue: 'jobs' }, [keyed('j1', 'd')])).duplicates).toBe(0);
    expect((await client.admin().describeQueue('jobs')).logEndOffset).toBe(3);
  });

  it('claim, complete and release over the wire: exclusion, claim expiry, and completed keys surviving kill -9', async () => {
    const dir = ownDir();
    let { broker, client } = await start(dir);
    // The client's store has the sidecar's ProcessedKeyStore shape.
    const asSidecarStore = (s: BrokerProcessedKeyStore): ProcessedKeyStore => s;
    let store = asSidecarStore(client.processedKeys('orders-sub'));
    const other = client.processedKeys('audit-sub');

    expect(await store.claim('k1', 'a#1', 60_000)).toBe('claimed');
    expect(await store.claim('k1', 'b#1', 60_000)).toBe('busy');
    expect(await store.claim('k1', 'a#1', 60_000)).toBe('claimed'); // a repeat renews
    expect(await other.claim('k1', 'b#1', 60_000)).toBe('claimed'); // scopes are apart
    await store.release('k1', 'b#1'); // not b's claim: nothing changes
    expect(await store.claim('k1', 'b#1', 60_000)).toBe('busy');
    await store.release('k1', 'a#1');
    expect(await store.claim('k1', 'b#1', 60_000)).toBe('claimed');

    // A claim whose owner died expires, and another owner takes the key.
    expect(await store.claim('k2', 'dead#1', 300)).toBe('claimed');
    expect(await store.claim('k2', 'b#2', 60_000)).toBe('busy');
    await sleep(400);
    expect(await store.claim('k2', 'b#2', 60_000)).toBe('claimed');

    // Complete records the key whoever holds the claim; a late release does not drop it.
    await store.complete('k2', 'b#2', 86_400_000);
    await store.release('k2', 'b#2');
    expect(await store.claim('k2', 'c#1', 60_000)).toBe('processed');
    expect(await store.claim('held', 'c#2', 60_000)).toBe('claimed');
    await store.complete('brief', 'c#3', 1000);

    await expect(store.claim('', 'c#1', 1000)).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(store.claim('k3', 'c#1', 0)).rejects.toMatchObject({ code: 'INVALID_REQUEST' });

    await broker.kill();
    await client.close();
    ({ broker, client } = await start(dir));
    store = client.processedKeys('orders-sub');
    expect(await store.claim('k2', 'd#1', 60_000)).toBe('processed');
    expect(await store.claim('held', 'd#2', 60_000)).toBe('busy'); // claims are journaled too
    expect(await client.processedKeys('audit-sub').claim('k2', 'd#3', 60_000)).toBe('claimed');
    await sleep(1100);
    expect(await store.claim('brief', 'd#4', 60_000)).toBe('claimed'); // processed keys expire by their ttl
  });
});
