import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { topicKey } from './cluster-metadata.js';
import type { ClusterTopic } from './cluster-metadata.js';
import { MemoryCoordinationStore } from './memory-coordination-store.js';
import { updateIsr } from './partition-leadership.js';
import { StoreClient } from './test-fixtures.js';

function topic(): ClusterTopic {
  return {
    topic: { name: 't', id: 'id-t', partitions: 2, replicationFactor: 3, config: {}, internal: false, createdAt: 1 },
    partitions: [
      { replicas: [1, 2, 3], leader: 1, leaderEpoch: 4, isr: [1, 2, 3] },
      { replicas: [2, 3, 1], leader: 2, leaderEpoch: 0, isr: [2, 3, 1] },
    ],
  };
}

async function setup(): Promise<{ shared: MemoryCoordinationStore; client: StoreClient }> {
  const shared = new MemoryCoordinationStore();
  await shared.put(topicKey('t'), JSON.stringify(topic()));
  return { shared, client: new StoreClient(shared) };
}

async function stored(shared: MemoryCoordinationStore): Promise<ClusterTopic> {
  return JSON.parse((await shared.get(topicKey('t')))!.value) as ClusterTopic;
}

describe('updateIsr', () => {
  it("writes the leader's new in-sync set and returns the state and version", async () => {
    const { shared, client } = await setup();
    const shrunk = await updateIsr(client, 't', 0, { leader: 1, leaderEpoch: 4 }, [1, 3]);
    expect(shrunk).toEqual({ ok: true, state: { replicas: [1, 2, 3], leader: 1, leaderEpoch: 4, isr: [1, 3] }, version: (await shared.get(topicKey('t')))!.version });
    const grown = await updateIsr(client, 't', 0, { leader: 1, leaderEpoch: 4, topicId: 'id-t' }, [1, 3, 2]);
    expect(grown.ok && grown.state.isr).toEqual([1, 3, 2]);
    const s = await stored(shared);
    expect(s.partitions[0]).toEqual({ replicas: [1, 2, 3], leader: 1, leaderEpoch: 4, isr: [1, 3, 2] });
    expect(s.partitions[1]).toEqual(topic().partitions[1]);
    // Unchanged: nothing written.
    const writes = client.writes.length;
    expect((await updateIsr(client, 't', 0, { leader: 1, leaderEpoch: 4 }, [1, 3, 2])).ok).toBe(true);
    expect(client.writes).toHaveLength(writes);
  });

  it('is fenced once the stored state names another leader or epoch', async () => {
    const { shared, client } = await setup();
    expect(await updateIsr(client, 't', 0, { leader: 1, leaderEpoch: 3 }, [1])).toEqual({ ok: false, reason: 'fenced' });
    expect(await updateIsr(client, 't', 1, { leader: 3, leaderEpoch: 0 }, [3])).toEqual({ ok: false, reason: 'fenced' });
    expect(client.writes).toHaveLength(0);
    expect(await stored(shared)).toEqual(topic());
  });

  it('reports an unknown topic, partition, or a topic created again under the same name', async () => {
    const { client } = await setup();
    expect(await updateIsr(client, 'nope', 0, { leader: 1, leaderEpoch: 4 }, [1])).toEqual({ ok: false, reason: 'unknown-topic' });
    expect(await updateIsr(client, 't', 2, { leader: 1, leaderEpoch: 4 }, [1])).toEqual({ ok: false, reason: 'unknown-topic' });
    expect(await updateIsr(client, 't', 0, { leader: 1, leaderEpoch: 4, topicId: 'older' }, [1])).toEqual({ ok: false, reason: 'unknown-topic' });
  });

  it('never writes an empty set, a set without the leader, or a broker outside replicas', async () => {
    const { shared, client } = await setup();
    const cases: number[][] = [[], [2, 3], [1, 4], [1, 1]];
    for (const isr of cases) {
      const err = await updateIsr(client, 't', 0, { leader: 1, leaderEpoch: 4 }, isr).catch((e: unknown) => e);
      expect(err, JSON.stringify(isr)).toBeInstanceOf(KmqError);
      expect((err as KmqError).code).toBe(ErrorCode.InvalidRequest);
    }
    expect(client.writes).toHaveLength(0);
    expect(await stored(shared)).toEqual(topic());
  });

  it('retries when other partitions of the topic were written in between, keeping their changes', async () => {
    const { shared, client } = await setup();
    let interleaved = 0;
    client.beforePut = async () => {
      if (interleaved >= 3) return;
      interleaved++;
      const s = await stored(shared);
      s.partitions[1]!.isr = interleaved % 2 === 1 ? [2, 3] : [2, 3, 1];
      await shared.put(topicKey('t'), JSON.stringify(s));
    };
    const res = await updateIsr(client, 't', 0, { leader: 1, leaderEpoch: 4 }, [1, 2]);
    expect(res.ok).toBe(true);
    expect(interleaved).toBe(3);
    const s = await stored(shared);
    expect(s.partitions[0]!.isr).toEqual([1, 2]);
    expect(s.partitions[1]!.isr).toEqual([2, 3]);
  });

  it('is fenced when a new leader is elected between its read and its write', async () => {
    const { shared, client } = await setup();
    let elected = false;
    client.beforePut = async () => {
      if (elected) return;
      elected = true;
      const s = await stored(shared);
      s.partitions[0] = { replicas: [1, 2, 3], leader: 2, leaderEpoch: 5, isr: [2, 3] };
      await shared.put(topicKey('t'), JSON.stringify(s));
    };
    expect(await updateIsr(client, 't', 0, { leader: 1, leaderEpoch: 4 }, [1, 2, 3].slice(0, 2))).toEqual({ ok: false, reason: 'fenced' });
    expect((await stored(shared)).partitions[0]).toEqual({ replicas: [1, 2, 3], leader: 2, leaderEpoch: 5, isr: [2, 3] });
  });
});
