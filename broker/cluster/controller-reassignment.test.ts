import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../lib/errors.js';
import { BrokerRegistry } from './broker-registry.js';
import { decommissionedKey, topicKey } from './cluster-metadata.js';
import type { ClusterTopic, PartitionState } from './cluster-metadata.js';
import { decommissionBroker, proposeRebalance } from './cluster-rebalance.js';
import { ClusterView } from './cluster-view.js';
import { Controller } from './controller.js';
import type { ControllerOptions } from './controller.js';
import { MemoryCoordinationStore } from './memory-coordination-store.js';
import { StoreClient, eventually } from './test-fixtures.js';

const fast = { initialMs: 5, maxMs: 20, multiplier: 2, jitter: 0 };
const stops: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

async function startNode(shared: MemoryCoordinationStore, id: number, extra: Partial<ControllerOptions> = {}): Promise<Controller> {
  const client = new StoreClient(shared);
  const registry = new BrokerRegistry({ store: client, leaseTtlMs: 1000, registerTimeoutMs: 2000, retryBackoff: fast });
  const view = new ClusterView({ store: client, registry, retryBackoff: fast });
  const controller = new Controller({ store: client, registry, view, brokerId: id, retryBackoff: fast, ...extra });
  stops.push(async () => {
    await controller.stop();
    await view.stop();
    await registry.deregister();
    await client.close();
  });
  await registry.register({ id, host: '127.0.0.1', port: 9000 + id, httpPort: -1, incarnation: `inc-${id}` });
  await controller.start();
  return controller;
}

async function putTopic(store: MemoryCoordinationStore, name: string, partitions: PartitionState[]): Promise<void> {
  const topic: ClusterTopic = { topic: { name, id: `id-${name}`, partitions: partitions.length, replicationFactor: 3, config: {}, internal: false, createdAt: 0 }, partitions };
  expect((await store.put(topicKey(name), JSON.stringify(topic), { ifVersion: 'absent' })).ok).toBe(true);
}

async function read(store: MemoryCoordinationStore, name: string): Promise<{ value: ClusterTopic; version: number }> {
  const v = (await store.get(topicKey(name)))!;
  return { value: JSON.parse(v.value) as ClusterTopic, version: v.version };
}

/** What partition leaders do: a replica outside the in-sync set that "caught up" joins it (compare-and-swap). */
async function catchUp(store: MemoryCoordinationStore, name: string): Promise<void> {
  const { value, version } = await read(store, name);
  let changed = false;
  const partitions = value.partitions.map((p) => {
    const missing = p.replicas.filter((b) => !p.isr.includes(b));
    if (p.leader < 0 || missing.length === 0) return p;
    changed = true;
    return { ...p, isr: [...p.isr, missing[0]!] };
  });
  if (changed) await store.put(topicKey(name), JSON.stringify({ ...value, partitions }), { ifVersion: version });
}

const settled = (replicas: number[]): PartitionState => ({ replicas, leader: replicas[0]!, leaderEpoch: 0, isr: [...replicas] });

describe('Controller reassignment', () => {
  it('carries reassignments out, no more at once over the cluster than the throttle allows', async () => {
    const shared = new MemoryCoordinationStore();
    for (const id of [1, 2, 3, 4]) await startNode(shared, id, { maxConcurrentReassignments: 2, autoRebalanceOnJoin: false });
    const moving = (replicas: number[]): PartitionState => ({ ...settled(replicas), targetReplicas: [4, 2, 3] });
    await putTopic(shared, 'a', [moving([1, 2, 3]), moving([1, 2, 3]), moving([1, 2, 3])]);
    await putTopic(shared, 'b', [moving([1, 2, 3]), moving([1, 2, 3])]);
    let most = 0;
    await eventually('every reassignment done', 5000, async () => {
      const all = [...(await read(shared, 'a')).value.partitions, ...(await read(shared, 'b')).value.partitions];
      most = Math.max(most, all.filter((p) => p.replicas.length === 4).length);
      if (all.every((p) => p.targetReplicas === undefined)) return true;
      await catchUp(shared, 'a');
      await catchUp(shared, 'b');
      return false;
    });
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(2);
    for (const name of ['a', 'b']) {
      for (const p of (await read(shared, name)).value.partitions) expect(p).toEqual({ replicas: [4, 2, 3], leader: 4, leaderEpoch: 1, isr: [2, 3, 4] });
    }
  });

  it('proposes a rebalance when a broker joins holding no replica', async () => {
    const shared = new MemoryCoordinationStore();
    for (const id of [1, 2, 3]) await startNode(shared, id);
    await putTopic(shared, 't', [[1, 2, 3], [2, 3, 1], [3, 1, 2], [1, 3, 2], [2, 1, 3], [3, 2, 1]].map(settled));
    await new Promise((r) => setTimeout(r, 50));
    expect((await read(shared, 't')).value.partitions.every((p) => p.targetReplicas === undefined)).toBe(true);
    await startNode(shared, 4);
    await eventually('broker 4 is given replicas', 2000, async () => (await read(shared, 't')).value.partitions.some((p) => p.replicas.includes(4)));
  });

  it('decommissions a broker: refuses when too few would remain, else records it and moves every replica off it', async () => {
    const shared = new MemoryCoordinationStore();
    for (const id of [1, 2, 3]) await startNode(shared, id, { autoRebalanceOnJoin: false });
    await putTopic(shared, 't', [settled([1, 2, 3])]);
    await expect(decommissionBroker(shared, 3)).rejects.toMatchObject({ code: ErrorCode.InvalidConfig });
    expect(await shared.get(decommissionedKey(3))).toBeUndefined();
    await startNode(shared, 4, { autoRebalanceOnJoin: false });
    const moves = await decommissionBroker(shared, 3);
    expect(moves).toEqual([{ topic: 't', partition: 0, replicas: [1, 2, 3], targetReplicas: [1, 2, 4] }]);
    expect(JSON.parse((await shared.get(decommissionedKey(3)))!.value)).toMatchObject({ brokerId: 3, incarnation: 'inc-3' });
    await eventually('broker 3 holds nothing', 3000, async () => {
      await catchUp(shared, 't');
      return !(await read(shared, 't')).value.partitions[0]!.replicas.includes(3);
    });
    expect((await read(shared, 't')).value.partitions[0]).toEqual({ replicas: [1, 2, 4], leader: 1, leaderEpoch: 0, isr: [1, 2, 4] });
    // Broker 3 may not hold replicas any more: a rebalance leaves it out.
    expect(await proposeRebalance(shared)).toEqual([]);
  });
});
