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
/** Each node's store client, to kill it (kill -9: the connection goes, the lease expires). */
const clients = new Map<number, StoreClient>();

afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
  clients.clear();
});

async function killNode(id: number): Promise<void> {
  await clients.get(id)!.crash();
  await clients.get(id)!.expireLeases();
}

async function startNode(shared: MemoryCoordinationStore, id: number, extra: Partial<ControllerOptions> = {}): Promise<Controller> {
  const client = new StoreClient(shared);
  clients.set(id, client);
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

async function putTopic(store: MemoryCoordinationStore, name: string, partitions: PartitionState[], queue = false): Promise<void> {
  const topic: ClusterTopic = {
    topic: {
      name,
      id: `id-${name}`,
      partitions: partitions.length,
      replicationFactor: 3,
      config: {},
      internal: false,
      createdAt: 0,
      ...(queue ? { queue: { maxDeliveries: 0, deadLetterQueue: '', lockTimeoutMs: 30_000, perKeyOrdering: false } } : {}),
    },
    partitions,
  };
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

describe('Controller queue alignment', () => {
  const ANCHOR = '__share_state';
  const led = (replicas: number[], leader: number): PartitionState => ({ replicas, leader, leaderEpoch: 0, isr: [...replicas] });
  const sameSet = (a: number[], b: number[]): boolean => a.length === b.length && a.every((x) => b.includes(x));

  /** Every queue partition is on the anchor's replicas, led by the anchor's leader, with no reassignment left. */
  async function aligned(store: MemoryCoordinationStore, queue: string, anchorTopic = ANCHOR): Promise<boolean> {
    const anchor = (await read(store, anchorTopic)).value.partitions[0]!;
    return (await read(store, queue)).value.partitions.every((p) => p.targetReplicas === undefined && p.leader === anchor.leader && sameSet(p.replicas, anchor.replicas));
  }

  it('moves queue partitions onto the anchor replicas and their leadership to the anchor leader', async () => {
    const shared = new MemoryCoordinationStore();
    for (const id of [1, 2, 3, 4]) await startNode(shared, id, { autoRebalanceOnJoin: false });
    await putTopic(shared, ANCHOR, [led([1, 2, 3], 2)]);
    // One led elsewhere on the right brokers, one on other brokers, one whose anchor leader is not in sync yet.
    await putTopic(shared, 'jobs', [led([1, 2, 3], 1), led([4, 3, 1], 4), { ...led([3, 1, 2], 3), isr: [3, 1] }], true);
    await putTopic(shared, 'orders', [led([1, 3, 4], 1)]);
    await eventually('the first is led by the anchor leader', 2000, async () => (await read(shared, 'jobs')).value.partitions[0]!.leader === 2);
    // Broker 2 is not in sync for the third: it keeps its leader until broker 2 catches up.
    await new Promise((r) => setTimeout(r, 50));
    expect((await read(shared, 'jobs')).value.partitions[2]).toEqual({ ...led([3, 1, 2], 3), isr: [3, 1] });
    await eventually('every queue partition aligned', 3000, async () => {
      await catchUp(shared, 'jobs');
      return aligned(shared, 'jobs');
    });
    const jobs = (await read(shared, 'jobs')).value.partitions;
    expect(jobs[0]).toEqual({ replicas: [1, 2, 3], leader: 2, leaderEpoch: 1, isr: [1, 2, 3] });
    expect(jobs[1]!.replicas).toEqual([2, 1, 3]);
    for (const p of jobs) expect(p.isr).toContain(p.leader);
    // Other topics are not touched.
    expect((await read(shared, 'orders')).value.partitions[0]).toEqual(led([1, 3, 4], 1));
  });

  it('follows the anchor when its leader dies, in the same reconcile', async () => {
    const shared = new MemoryCoordinationStore();
    // An anchor named to come after the queue in any listing: the controller still decides it first.
    const anchorTopic = 'zz-anchor';
    for (const id of [1, 2, 3]) await startNode(shared, id, { autoRebalanceOnJoin: false, queueAnchorTopic: anchorTopic });
    await putTopic(shared, 'jobs', [led([2, 1, 3], 2), led([2, 1, 3], 2)], true);
    await putTopic(shared, anchorTopic, [led([2, 3, 1], 2)]);
    await killNode(2);
    await eventually('the anchor and the queue have a new leader', 3000, async () => {
      const anchor = (await read(shared, anchorTopic)).value.partitions[0]!;
      return anchor.leader !== 2 && anchor.leader !== -1 && (await aligned(shared, 'jobs', anchorTopic));
    });
    // Failover order would pick broker 1 for the queue; the anchor picked broker 3, and the queue follows it.
    expect((await read(shared, anchorTopic)).value.partitions[0]!.leader).toBe(3);
    for (const p of (await read(shared, 'jobs')).value.partitions) expect(p).toMatchObject({ leader: 3, isr: [1, 3] });
    // The anchor was decided first: no write ever made broker 1 the queue's leader on the way.
    const jobsWrites = [...clients.values()].flatMap((c) => c.writes).filter((w) => w.key === topicKey('jobs') && w.op === 'put');
    expect(jobsWrites.length).toBeGreaterThan(0);
    for (const w of jobsWrites) for (const p of (JSON.parse(w.value!) as ClusterTopic).partitions) expect(p.leader).not.toBe(1);
  });

  it('decommissions a broker holding the anchor and queue replicas: the queue moves after the anchor, and it completes', async () => {
    const shared = new MemoryCoordinationStore();
    for (const id of [1, 2, 3, 4]) await startNode(shared, id, { autoRebalanceOnJoin: false });
    await putTopic(shared, ANCHOR, [led([3, 1, 2], 3)]);
    await putTopic(shared, 'jobs', [led([3, 1, 2], 3), led([3, 2, 1], 3)], true);
    await putTopic(shared, 'orders', [led([1, 2, 3], 1)]);
    const moves = await decommissionBroker(shared, 3);
    // Only the anchor and the ordinary topic get targets; the queue follows the anchor.
    expect(moves.map((m) => m.topic).sort()).toEqual([ANCHOR, 'orders']);
    await eventually('broker 3 holds nothing', 5000, async () => {
      for (const name of [ANCHOR, 'jobs', 'orders']) await catchUp(shared, name);
      for (const name of [ANCHOR, 'jobs', 'orders']) {
        if ((await read(shared, name)).value.partitions.some((p) => p.replicas.includes(3) || p.targetReplicas !== undefined)) return false;
      }
      return true;
    });
    const anchor = (await read(shared, ANCHOR)).value.partitions[0]!;
    expect(sameSet(anchor.replicas, [1, 2, 4])).toBe(true);
    expect(await aligned(shared, 'jobs')).toBe(true);
    for (const p of (await read(shared, 'jobs')).value.partitions) expect(p.isr).toContain(p.leader);
    // Settled: nothing more to move, and the controller writes nothing more.
    expect(await proposeRebalance(shared)).toEqual([]);
    const versions = await Promise.all([ANCHOR, 'jobs', 'orders'].map(async (n) => (await read(shared, n)).version));
    await new Promise((r) => setTimeout(r, 100));
    expect(await Promise.all([ANCHOR, 'jobs', 'orders'].map(async (n) => (await read(shared, n)).version))).toEqual(versions);
  });

  it('rebalances a joining broker without fighting the alignment', async () => {
    const shared = new MemoryCoordinationStore();
    for (const id of [1, 2, 3]) await startNode(shared, id);
    await putTopic(shared, ANCHOR, [led([1, 2, 3], 1)]);
    await putTopic(shared, 'jobs', [led([1, 2, 3], 1), led([1, 2, 3], 1), led([1, 2, 3], 1)], true);
    await putTopic(shared, 'orders', [[1, 2, 3], [2, 3, 1], [3, 1, 2]].map(settled));
    await startNode(shared, 4);
    await eventually('broker 4 holds replicas and everything settled', 5000, async () => {
      for (const name of [ANCHOR, 'jobs', 'orders']) await catchUp(shared, name);
      const all = await Promise.all([ANCHOR, 'jobs', 'orders'].map(async (n) => (await read(shared, n)).value.partitions));
      return all.flat().some((p) => p.replicas.includes(4)) && all.flat().every((p) => p.targetReplicas === undefined) && (await aligned(shared, 'jobs'));
    });
    expect(await proposeRebalance(shared)).toEqual([]);
  });
});
