import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmqClient } from '../../client/index.js';
import type { Consumer } from '../../client/index.js';
import { ApiKey, Apis } from '../../protocol/apis.js';
import { BrokerProcess } from '../utils/broker-process.js';
import { RawConnection } from '../utils/raw-connection.js';

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Consumes in the background, recording which partition each value came from. */
function collect(consumer: Consumer, into: Array<{ value: string; partition: number; by: string }>, by: string): Promise<void> {
  return (async () => {
    for await (const b of consumer.batches()) {
      for (const r of b.records) into.push({ value: r.value!.toString(), partition: b.partition, by });
      await consumer.commit();
    }
  })();
}

// Ordered groups against a real broker: exclusive assignment, rebalance on join, leave and session timeout.
describe('ordered consumer groups', () => {
  let broker: BrokerProcess;
  let client: KmqClient;

  beforeAll(async () => {
    broker = await BrokerProcess.start();
    client = new KmqClient({ brokers: [broker.address] });
    await client.admin().createTopic('grouped', { partitions: 4 });
  });
  afterAll(async () => {
    await client?.close();
    await broker?.cleanup();
  });

  it('splits partitions between members, rebalances on join and leave, and delivers each record once', async () => {
    const producer = client.producer({ lingerMs: 1 });
    const seen: Array<{ value: string; partition: number; by: string }> = [];
    const a = client.consumer({ groupId: 'g-split', topics: ['grouped'], fromBeginning: true, sessionTimeoutMs: 3000 });
    const runA = collect(a, seen, 'a');
    await waitFor(() => a.assignment().length === 4);

    await producer.send('grouped', Array.from({ length: 400 }, (_, i) => ({ key: `k${i}`, value: `first-${i}` })));
    await waitFor(() => seen.length >= 400);

    const b = client.consumer({ groupId: 'g-split', topics: ['grouped'], fromBeginning: true, sessionTimeoutMs: 3000 });
    const runB = collect(b, seen, 'b');
    await waitFor(() => a.assignment().length === 2 && b.assignment().length === 2);
    const owned = [...a.assignment(), ...b.assignment()].map((tp) => tp.partition).sort();
    expect(owned).toEqual([0, 1, 2, 3]);

    await producer.send('grouped', Array.from({ length: 400 }, (_, i) => ({ key: `k${i}`, value: `second-${i}` })));
    await waitFor(() => seen.length >= 800);
    // While both are members, each partition's records go to its one owner.
    const second = seen.filter((s) => s.value.startsWith('second-'));
    for (const p of [0, 1, 2, 3]) expect(new Set(second.filter((s) => s.partition === p).map((s) => s.by)).size).toBe(1);
    expect(new Set(second.map((s) => s.by))).toEqual(new Set(['a', 'b']));

    await b.close();
    await runB;
    await waitFor(() => a.assignment().length === 4);
    await producer.send('grouped', Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: `third-${i}` })));
    await waitFor(() => seen.length >= 900);
    await a.close();
    await runA;
    expect(seen.filter((s) => s.value.startsWith('third-')).every((s) => s.by === 'a')).toBe(true);
    expect(new Set(seen.map((s) => s.value)).size).toBe(900);
    expect(seen).toHaveLength(900);
  });

  it('moves the partitions of a member that stops heartbeating once its session expires', async () => {
    // A member that joins and then goes silent, as a crashed process would.
    const raw = await RawConnection.connect(broker.port);
    const joined = await raw.request(ApiKey.JoinGroup, Apis.JoinGroup.request.encode({ group: 'g-expiry', memberId: '', topics: ['grouped'], sessionTimeoutMs: 1500, clientId: 'silent' }).finish());
    expect(joined?.frameError).toBe(0);
    const silent = Apis.JoinGroup.response.decode(joined!.header);
    expect(silent.assignment.flatMap((t) => t.partitions)).toHaveLength(4);

    const live = client.consumer({ groupId: 'g-expiry', topics: ['grouped'], fromBeginning: true, sessionTimeoutMs: 6000 });
    const seen: Array<{ value: string; partition: number; by: string }> = [];
    const run = collect(live, seen, 'live');
    // The silent member still holds everything: the live one waits, then takes all after expiry.
    await new Promise((r) => setTimeout(r, 500));
    expect(live.assignment()).toHaveLength(0);
    await waitFor(() => live.assignment().length === 4, 10_000);
    await waitFor(() => seen.length >= 900);
    const d = await client.admin().describeGroup('g-expiry');
    expect(d.members.map((m) => m.clientId)).not.toContain('silent');
    await live.close();
    await run;
    raw.close();
  });
});
