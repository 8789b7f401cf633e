import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { BrokerRegistry } from './broker-registry.js';
import { CONTROLLER_EPOCH_KEY, CONTROLLER_KEY, topicKey } from './cluster-metadata.js';
import type { ClusterTopic, PartitionState } from './cluster-metadata.js';
import { ClusterView } from './cluster-view.js';
import { Controller } from './controller.js';
import { electPartition } from './leader-election.js';
import { MemoryCoordinationStore } from './memory-coordination-store.js';
import { StoreClient, eventually } from './test-fixtures.js';

const fast = { initialMs: 5, maxMs: 20, multiplier: 2, jitter: 0 };

/** One simulated broker: its own store client, registry, view and controller. */
interface Node {
  id: number;
  client: StoreClient;
  registry: BrokerRegistry;
  view: ClusterView;
  controller: Controller;
  events: string[];
}

const nodes: Node[] = [];

async function startNode(shared: MemoryCoordinationStore, id: number, incarnation = `inc-${id}-${nodes.length}`): Promise<Node> {
  const client = new StoreClient(shared);
  const registry = new BrokerRegistry({ store: client, leaseTtlMs: 1000, registerTimeoutMs: 2000, retryBackoff: fast });
  const view = new ClusterView({ store: client, registry, retryBackoff: fast });
  const controller = new Controller({ store: client, registry, view, brokerId: id, retryBackoff: fast });
  const node: Node = { id, client, registry, view, controller, events: [] };
  controller.on('elected', (epoch) => node.events.push(`elected ${epoch}`));
  controller.on('deposed', (epoch, reason) => node.events.push(`deposed ${epoch} ${reason}`));
  nodes.push(node);
  await registry.register({ id, host: '127.0.0.1', port: 9000 + id, httpPort: -1, incarnation });
  await controller.start();
  return node;
}

async function stopNode(node: Node): Promise<void> {
  await node.controller.stop();
  await node.view.stop();
  await node.registry.deregister();
  await node.client.close();
}

/** kill -9: the store connection goes, and the lease expires at the store. */
async function killNode(node: Node): Promise<void> {
  await node.client.crash();
  await node.client.expireLeases();
}

afterEach(async () => {
  for (const n of nodes.splice(0)) await stopNode(n);
});

function controllerOf(ns: Node[]): Node | undefined {
  const acting = ns.filter((n) => n.controller.isController);
  expect(acting.length).toBeLessThanOrEqual(1);
  return acting[0];
}

async function putTopic(shared: MemoryCoordinationStore, name: string, partitions: PartitionState[]): Promise<void> {
  const topic: ClusterTopic = {
    topic: { name, id: `id-${name}`, partitions: partitions.length, replicationFactor: partitions[0]!.replicas.length, config: {}, internal: false, createdAt: 0 },
    partitions,
  };
  expect((await shared.put(topicKey(name), JSON.stringify(topic), { ifVersion: 'absent' })).ok).toBe(true);
}

async function partitionsOf(shared: MemoryCoordinationStore, name: string): Promise<PartitionState[]> {
  return (JSON.parse((await shared.get(topicKey(name)))!.value) as ClusterTopic).partitions;
}

describe('Controller', () => {
  it('elects exactly one controller, with epoch 1, and the others watch', async () => {
    const shared = new MemoryCoordinationStore();
    const ns = await Promise.all([1, 2, 3].map((id) => startNode(shared, id)));
    await eventually('a controller', 1000, () => controllerOf(ns) !== undefined);
    const leader = controllerOf(ns)!;
    // Concurrent campaigns may each bump the counter; the winner holds one of those epochs.
    const epoch = leader.controller.epoch!;
    expect(epoch).toBeGreaterThanOrEqual(1);
    expect(JSON.parse((await shared.get(CONTROLLER_KEY))!.value)).toEqual({ brokerId: leader.id, epoch });
    expect(Number((await shared.get(CONTROLLER_EPOCH_KEY))!.value)).toBeGreaterThanOrEqual(epoch);
    expect(Number((await shared.get(CONTROLLER_EPOCH_KEY))!.value)).toBeLessThanOrEqual(3);
    expect(leader.events).toEqual([`elected ${epoch}`]);
    for (const n of ns) if (n !== leader) expect(n.controller.epoch).toBeUndefined();
    await eventually('every view sees it', 1000, () => ns.every((n) => n.view.controller()?.brokerId === leader.id));
  });

  it("moves leadership from a broker whose registration expired to the next in-sync replica, in one write per topic", async () => {
    const shared = new MemoryCoordinationStore();
    const ns = [await startNode(shared, 1), await startNode(shared, 2), await startNode(shared, 3)];
    await eventually('a controller', 1000, () => controllerOf(ns) !== undefined);
    const controller = controllerOf(ns)!;
    // Kill a broker that is not the controller.
    const victim = ns.find((n) => n !== controller)!;
    const others = [1, 2, 3].filter((b) => b !== victim.id);
    const [a, b] = others as [number, number];
    await putTopic(shared, 't', [
      { replicas: [victim.id, a, b], leader: victim.id, leaderEpoch: 3, isr: [victim.id, a, b] },
      { replicas: [a, victim.id, b], leader: a, leaderEpoch: 7, isr: [a, victim.id, b] },
      { replicas: [b, a, victim.id], leader: victim.id, leaderEpoch: 2, isr: [b, victim.id] }, // b led before
    ]);
    await new Promise((r) => setTimeout(r, 50));
    const writesBefore = controller.client.writes.length;
    await killNode(victim);
    await eventually('new leaders', 1000, async () => (await partitionsOf(shared, 't')).every((p) => p.leader !== victim.id));
    expect(await partitionsOf(shared, 't')).toEqual([
      { replicas: [victim.id, a, b], leader: a, leaderEpoch: 4, isr: [a, b] },
      { replicas: [a, victim.id, b], leader: a, leaderEpoch: 7, isr: [a, b] },
      { replicas: [b, a, victim.id], leader: b, leaderEpoch: 3, isr: [b] },
    ]);
    await new Promise((r) => setTimeout(r, 50));
    const topicWrites = controller.client.writes.slice(writesBefore).filter((w) => w.key === topicKey('t'));
    expect(topicWrites).toHaveLength(1);
  });

  it('leaves a partition without a live in-sync replica leaderless until one returns', async () => {
    const shared = new MemoryCoordinationStore();
    const [n1, n2, n3] = [await startNode(shared, 1), await startNode(shared, 2), await startNode(shared, 3)];
    await eventually('broker 1 is controller', 1000, () => n1.controller.isController);
    // Only broker 3 is in sync; it dies.
    await putTopic(shared, 'solo', [{ replicas: [3, 2, 1], leader: 3, leaderEpoch: 5, isr: [3] }]);
    await killNode(n3);
    await eventually('leaderless', 1000, async () => (await partitionsOf(shared, 'solo'))[0]!.leader === -1);
    expect(await partitionsOf(shared, 'solo')).toEqual([{ replicas: [3, 2, 1], leader: -1, leaderEpoch: 6, isr: [3] }]);

    // Other changes make the controller reconcile again; brokers 1 and 2 are live but not in sync: still no leader.
    await putTopic(shared, 'other', [{ replicas: [2, 3], leader: 2, leaderEpoch: 0, isr: [2, 3] }]);
    await eventually('other reconciled', 1000, async () => (await partitionsOf(shared, 'other'))[0]!.isr.length === 1);
    expect(await partitionsOf(shared, 'solo')).toEqual([{ replicas: [3, 2, 1], leader: -1, leaderEpoch: 6, isr: [3] }]);
    expect(n2.controller.isController).toBe(false);

    await startNode(shared, 3, 'restarted');
    await eventually('broker 3 leads again', 1000, async () => (await partitionsOf(shared, 'solo'))[0]!.leader === 3);
    expect(await partitionsOf(shared, 'solo')).toEqual([{ replicas: [3, 2, 1], leader: 3, leaderEpoch: 7, isr: [3] }]);
  });

  it("hands over when the controller's lease is lost, and the old controller writes nothing after losing it", async () => {
    const shared = new MemoryCoordinationStore();
    const ns = [await startNode(shared, 1), await startNode(shared, 2), await startNode(shared, 3)];
    await eventually('broker 1 is controller', 1000, () => ns[0]!.controller.isController);
    const old = ns[0]!;
    await putTopic(shared, 't', [
      { replicas: [1, 2, 3], leader: 1, leaderEpoch: 0, isr: [1, 2, 3] },
      { replicas: [2, 3, 1], leader: 2, leaderEpoch: 0, isr: [2, 3, 1] },
    ]);
    await new Promise((r) => setTimeout(r, 50));

    // The store becomes unreachable for broker 1; its lease expires.
    old.client.cut();
    const writesAtLoss = old.client.writes.length;
    await old.client.expireLeases();
    await eventually('deposed', 1000, () => old.events.includes('deposed 1 lease lost'));
    expect(old.controller.isController).toBe(false);
    await eventually('another controller', 1000, () => controllerOf(ns.slice(1)) !== undefined);
    const successor = controllerOf(ns.slice(1))!;
    // Brokers 2 and 3 may both bump the counter; either way the epoch grows.
    expect(successor.controller.epoch).toBeGreaterThan(1);
    await eventually('reconciled by the successor', 1000, async () => (await partitionsOf(shared, 't'))[0]!.leader === 2);
    expect(await partitionsOf(shared, 't')).toEqual([
      { replicas: [1, 2, 3], leader: 2, leaderEpoch: 1, isr: [2, 3] },
      { replicas: [2, 3, 1], leader: 2, leaderEpoch: 0, isr: [2, 3] },
    ]);

    // Broker 1 reaches the store again and registers again; whatever it had pending, it writes no cluster state.
    old.client.heal();
    await eventually('broker 1 registered again', 2000, () => old.registry.registered);
    await putTopic(shared, 'later', [{ replicas: [1, 3], leader: 3, leaderEpoch: 0, isr: [3] }]);
    await new Promise((r) => setTimeout(r, 100));
    const after = old.client.writes.slice(writesAtLoss);
    expect(after.filter((w) => w.key !== 'brokers/1')).toEqual([]);
    expect(old.controller.isController).toBe(false);
    expect(controllerOf(ns)).toBe(successor);
    // The successor keeps acting: broker 1 is back, but leaders stay where they are.
    expect((await partitionsOf(shared, 't'))[0]!.leader).toBe(2);
  });

  it('campaigns again when the controller resigns, with a higher epoch', async () => {
    const shared = new MemoryCoordinationStore();
    const [n1, n2] = [await startNode(shared, 1), await startNode(shared, 2)];
    await eventually('broker 1 is controller', 1000, () => n1.controller.isController);
    await n1.controller.stop();
    expect(n1.events).toEqual(['elected 1', 'deposed 1 stopped']);
    await eventually('broker 2 takes over', 1000, () => n2.controller.isController);
    expect(n2.controller.epoch).toBe(2);
    expect(JSON.parse((await shared.get(CONTROLLER_KEY))!.value)).toEqual({ brokerId: 2, epoch: 2 });
  });

  it('recognises its own claim when the reply to it was lost', async () => {
    const shared = new MemoryCoordinationStore();
    const client = new StoreClient(shared);
    let lost = false;
    client.afterPut = (key) => {
      if (key !== CONTROLLER_KEY || lost) return;
      lost = true;
      throw new KmqError(ErrorCode.RequestTimedOut, 'reply lost');
    };
    const registry = new BrokerRegistry({ store: client, retryBackoff: fast });
    const view = new ClusterView({ store: client, registry, retryBackoff: fast });
    const controller = new Controller({ store: client, registry, view, brokerId: 1, retryBackoff: fast });
    try {
      await registry.register({ id: 1, host: 'h', port: 1, httpPort: -1, incarnation: 'x' });
      await controller.start();
      await eventually('controller', 1000, () => controller.isController);
      expect(lost).toBe(true);
      expect(controller.epoch).toBe(1);
      expect((await shared.get(CONTROLLER_EPOCH_KEY))!.value).toBe('1');
    } finally {
      await controller.stop();
      await view.stop();
      await registry.deregister();
    }
  });

  it('re-reads and decides again when its write conflicts with another writer', async () => {
    const shared = new MemoryCoordinationStore();
    const [n1, , n3] = [await startNode(shared, 1), await startNode(shared, 2), await startNode(shared, 3)];
    await eventually('broker 1 is controller', 1000, () => n1.controller.isController);
    await putTopic(shared, 't', [
      { replicas: [3, 1, 2], leader: 3, leaderEpoch: 0, isr: [3, 1, 2] },
      { replicas: [1, 2, 3], leader: 1, leaderEpoch: 0, isr: [1, 3] },
    ]);
    await new Promise((r) => setTimeout(r, 20));
    // Just before the controller's write, partition 1's leader adds broker 2 back to its isr.
    let interfered = false;
    n1.client.beforePut = async (key) => {
      if (key !== topicKey('t') || interfered) return;
      interfered = true;
      const stored = JSON.parse((await shared.get(key))!.value) as ClusterTopic;
      stored.partitions[1]!.isr = [1, 3, 2];
      await shared.put(key, JSON.stringify(stored));
    };
    await killNode(n3);
    await eventually('reconciled', 1000, async () => (await partitionsOf(shared, 't'))[0]!.leader === 1);
    expect(interfered).toBe(true);
    expect(await partitionsOf(shared, 't')).toEqual([
      { replicas: [3, 1, 2], leader: 1, leaderEpoch: 1, isr: [1, 2] },
      { replicas: [1, 2, 3], leader: 1, leaderEpoch: 0, isr: [1, 2] },
    ]);
  });

  it('keeps every leader inside the in-sync set through random deaths and returns', async () => {
    let leaderChanges = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ broker: fc.integer({ min: 1, max: 4 }), up: fc.boolean() }), { minLength: 1, maxLength: 8 }),
        fc.uniqueArray(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }),
        async (steps, isrOrder) => {
          const shared = new MemoryCoordinationStore();
          const up = new Map<number, Node>();
          for (const id of [1, 2, 3, 4]) up.set(id, await startNode(shared, id));
          const replicas = [...isrOrder, ...[1, 2, 3, 4].filter((b) => !isrOrder.includes(b))];
          await putTopic(shared, 'p', [{ replicas, leader: isrOrder[0]!, leaderEpoch: 0, isr: isrOrder }]);
          let previous = (await partitionsOf(shared, 'p'))[0]!;
          for (const step of steps) {
            const node = up.get(step.broker);
            if (step.up && node === undefined) up.set(step.broker, await startNode(shared, step.broker, `again-${Math.random()}`));
            if (!step.up && node !== undefined) {
              up.delete(step.broker);
              await killNode(node);
            }
            const live = new Set(up.keys());
            // Settled: a controller exists if any broker does, and nothing more is to change.
            await eventually('settled', 2000, async () => {
              if (live.size === 0) return true;
              if (controllerOf([...up.values()]) === undefined) return false;
              const p = (await partitionsOf(shared, 'p'))[0]!;
              return electPartition(p, live) === p;
            });
            const p = (await partitionsOf(shared, 'p'))[0]!;
            if (p.leader !== -1) {
              expect(previous.isr).toContain(p.leader);
              expect(p.isr).toContain(p.leader);
            }
            expect(p.isr.length).toBeGreaterThan(0);
            expect(p.leaderEpoch).toBeGreaterThanOrEqual(previous.leaderEpoch);
            if (p.leader !== previous.leader) expect(p.leaderEpoch).toBeGreaterThan(previous.leaderEpoch);
            if (p.leader !== previous.leader) leaderChanges++;
            previous = p;
          }
          for (const n of nodes.splice(0)) await stopNode(n);
        },
      ),
      { numRuns: 40 },
    );
    expect(leaderChanges).toBeGreaterThan(10);
  });
});
