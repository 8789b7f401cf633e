import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BrokerRegistry } from '../../broker/cluster/broker-registry.js';
import type { PartitionState } from '../../broker/cluster/cluster-metadata.js';
import { createClusterTopic } from '../../broker/cluster/cluster-topics.js';
import { ClusterView } from '../../broker/cluster/cluster-view.js';
import { Controller } from '../../broker/cluster/controller.js';
import { EtcdCoordinationStore } from '../../broker/cluster/etcd-coordination-store.js';
import { updateIsr } from '../../broker/cluster/partition-leadership.js';
import { EtcdProcess } from '../utils/etcd-process.js';

// etcd grants at least its minimum lease TTL (2 s with the default election timeout).
const LEASE_TTL_MS = 2000;
// A lease expires at etcd up to a TTL after its last keep-alive, and etcd checks expiry every 500 ms.
const FAILOVER_DEADLINE_MS = LEASE_TTL_MS + 4000;
const backoff = { initialMs: 50, maxMs: 500, multiplier: 2, jitter: 0.2 };

/** One broker's control plane, in process, on its own etcd client. */
interface Node {
  id: number;
  store: EtcdCoordinationStore;
  registry: BrokerRegistry;
  view: ClusterView;
  controller: Controller;
}

let etcd: EtcdProcess;
const nodes = new Set<Node>();

/** Timings of a test cluster; undefined: the defaults. */
interface Timings {
  leaseTtlMs?: number;
  retryBackoff?: typeof backoff;
}

async function startNode(prefix: string, id: number, timings: Timings = { leaseTtlMs: LEASE_TTL_MS, retryBackoff: backoff }): Promise<Node> {
  const store = new EtcdCoordinationStore({ endpoints: [etcd.clientUrl], prefix, callTimeoutMs: 2000 });
  const registry = new BrokerRegistry({ store, leaseTtlMs: timings.leaseTtlMs, retryBackoff: timings.retryBackoff });
  const view = new ClusterView({ store, registry, retryBackoff: timings.retryBackoff });
  const controller = new Controller({ store, registry, view, brokerId: id, retryBackoff: timings.retryBackoff });
  const node = { id, store, registry, view, controller };
  nodes.add(node);
  await registry.register({ id, host: '127.0.0.1', port: 9000 + id, httpPort: -1, incarnation: randomUUID() });
  await controller.start();
  return node;
}

/** As kill -9: the etcd client goes without revoking the lease, which then expires at etcd. */
async function killNode(node: Node): Promise<void> {
  nodes.delete(node);
  await node.store.close();
  await node.controller.stop();
  await node.view.stop();
  await node.registry.deregister();
}

async function stopNode(node: Node): Promise<void> {
  nodes.delete(node);
  await node.controller.stop();
  await node.view.stop();
  await node.registry.deregister();
  await node.store.close();
}

async function waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined | Promise<T | undefined>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return { value, ms: Date.now() - started };
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The ids of the brokers acting as controller among `ns`. */
function controllers(ns: Iterable<Node>): number[] {
  return [...ns].filter((n) => n.controller.isController).map((n) => n.id);
}

async function partitions(node: Node): Promise<PartitionState[]> {
  const stored = await node.store.get('topics/orders');
  return (JSON.parse(stored!.value) as { partitions: PartitionState[] }).partitions;
}

beforeAll(async () => {
  etcd = await EtcdProcess.start();
});

afterEach(async () => {
  for (const n of [...nodes]) await stopNode(n);
});

afterAll(async () => {
  await etcd?.stop();
});

describe('cluster control plane on etcd', () => {
  it('elects a controller, fails partitions over from a killed broker, recovers leaderless ones on its return, and survives the controller dying', async () => {
    const prefix = `/kmq/${randomUUID()}/`;
    // Broker 1 first, so it is the controller and broker 2's death is a plain broker's.
    const n1 = await startNode(prefix, 1);
    await waitFor('broker 1 is controller', 10_000, () => n1.controller.isController || undefined);
    let n2 = await startNode(prefix, 2);
    const n3 = await startNode(prefix, 3);
    await waitFor('every view sees 3 brokers', 10_000, () => [n1, n2, n3].every((n) => n.view.live().size === 3) || undefined);
    expect(controllers(nodes)).toEqual([1]);
    const firstEpoch = n1.controller.epoch!;

    const created = await createClusterTopic(
      n1.store,
      { name: 'orders', id: randomUUID(), partitions: 3, replicationFactor: 3, config: {}, internal: false, createdAt: Date.now() },
      n1.view.live().keys(),
    );
    const leaders = created.value.partitions.map((p) => p.leader).sort();
    expect(leaders).toEqual([1, 2, 3]);
    // Broker 2's partition falls behind: only its leader stays in sync.
    const solo = created.value.partitions.findIndex((p) => p.leader === 2);
    const shrunk = await updateIsr(n2.store, 'orders', solo, { leader: 2, leaderEpoch: 0 }, [2]);
    expect(shrunk.ok).toBe(true);
    const before = await partitions(n1);

    // kill -9 broker 2.
    await killNode(n2);
    const failover = await waitFor('broker 2 out of every partition', FAILOVER_DEADLINE_MS, async () => {
      const now = await partitions(n1);
      return now.every((p) => p.leader !== 2 && (p.leader === -1 || !p.isr.includes(2))) ? now : undefined;
    });
    console.log(`broker 2 killed: partitions reconciled after ${failover.ms} ms (lease TTL ${LEASE_TTL_MS} ms)`);
    failover.value.forEach((p, i) => {
      const was = before[i]!;
      if (i === solo) {
        // Its only in-sync replica is dead: no leader, isr kept, epoch bumped.
        expect(p).toEqual({ ...was, leader: -1, leaderEpoch: was.leaderEpoch + 1, isr: [2] });
      } else {
        expect(p.leader).toBe(was.leader);
        expect(p.leaderEpoch).toBe(was.leaderEpoch);
        expect(p.isr).toEqual(was.isr.filter((b) => b !== 2));
      }
    });

    // Broker 2 comes back (a new process): its leaderless partition gets it as leader again.
    n2 = await startNode(prefix, 2);
    const recovered = await waitFor('the leaderless partition recovers', 10_000, async () => {
      const p = (await partitions(n1))[solo]!;
      return p.leader === 2 ? p : undefined;
    });
    expect(recovered.value).toEqual({ ...before[solo]!, leader: 2, leaderEpoch: before[solo]!.leaderEpoch + 2, isr: [2] });
    const beforeControllerDeath = await partitions(n1);

    // kill -9 the controller (broker 1): another broker takes over and moves broker 1's partition.
    await killNode(n1);
    const handover = await waitFor('a new controller', FAILOVER_DEADLINE_MS, () => [n2, n3].find((n) => n.controller.isController));
    console.log(`controller killed: broker ${handover.value.id} took over after ${handover.ms} ms`);
    expect(controllers([n2, n3])).toEqual([handover.value.id]);
    expect(handover.value.controller.epoch!).toBeGreaterThan(firstEpoch);
    const survivor = handover.value;
    const reconciled = await waitFor('broker 1 out of every partition', 5000, async () => {
      const now = await partitions(survivor);
      return now.every((p) => p.leader !== 1 && !p.isr.includes(1)) ? now : undefined;
    });
    reconciled.value.forEach((p, i) => {
      const was = beforeControllerDeath[i]!;
      expect(p.isr).toEqual(was.isr.filter((b) => b !== 1));
      if (was.leader === 1) {
        expect(was.isr).toContain(p.leader);
        expect(p.leaderEpoch).toBe(was.leaderEpoch + 1);
      } else {
        expect(p.leader).toBe(was.leader);
        expect(p.leaderEpoch).toBe(was.leaderEpoch);
      }
    });
    for (const n of [n2, n3]) await waitFor('views agree on the controller', 5000, () => (n.view.controller()?.brokerId === survivor.id ? true : undefined));
  });

  it("with the default timings, gives a killed leader's partition a new leader within 10 s", async () => {
    const prefix = `/kmq/${randomUUID()}/`;
    const defaults: Timings = {};
    const n1 = await startNode(prefix, 1, defaults);
    await waitFor('broker 1 is controller', 10_000, () => n1.controller.isController || undefined);
    const n2 = await startNode(prefix, 2, defaults);
    await startNode(prefix, 3, defaults);
    await waitFor('the controller sees 3 brokers', 10_000, () => (n1.view.live().size === 3 ? true : undefined));
    const created = await createClusterTopic(
      n1.store,
      { name: 'orders', id: randomUUID(), partitions: 3, replicationFactor: 3, config: {}, internal: false, createdAt: Date.now() },
      n1.view.live().keys(),
    );
    const led = created.value.partitions.findIndex((p) => p.leader === 2);
    await killNode(n2);
    const failover = await waitFor('a new leader', 10_000, async () => {
      const p = (await partitions(n1))[led]!;
      return p.leader !== 2 ? p : undefined;
    });
    console.log(`default timings: broker 2 killed, partition ${led} led by broker ${failover.value.leader} after ${failover.ms} ms`);
    expect(created.value.partitions[led]!.isr).toContain(failover.value.leader);
    expect(failover.value.leaderEpoch).toBe(1);
    expect(failover.ms).toBeLessThan(10_000);
  });

  // Last: it kills the shared etcd.
  it('stops acting when etcd is gone for a lease TTL, and registers and elects again once it is back', async () => {
    const prefix = `/kmq/${randomUUID()}/`;
    const ns = [await startNode(prefix, 1), await startNode(prefix, 2), await startNode(prefix, 3)];
    await waitFor('a controller', 10_000, () => (controllers(ns).length === 1 ? true : undefined));
    await createClusterTopic(
      ns[0]!.store,
      { name: 'orders', id: randomUUID(), partitions: 3, replicationFactor: 3, config: {}, internal: false, createdAt: Date.now() },
      [1, 2, 3],
    );
    const before = await partitions(ns[0]!);
    const lost = ns.map((n) => new Promise<void>((resolve) => n.registry.once('lost', () => resolve())));

    await etcd.kill();
    const out = await waitFor('every broker knows it is out', FAILOVER_DEADLINE_MS, async () => {
      await Promise.all(lost);
      return true;
    });
    console.log(`etcd killed: every broker reported its lease lost after ${out.ms} ms`);
    expect(controllers(ns)).toEqual([]);
    expect(ns.every((n) => !n.registry.registered)).toBe(true);

    await etcd.restart();
    const back = await waitFor('registered again with a controller', 30_000, () =>
      ns.every((n) => n.registry.registered) && controllers(ns).length === 1 ? true : undefined,
    );
    console.log(`etcd restarted: registered again and a controller elected after ${back.ms} ms`);
    await waitFor('every view sees 3 brokers', 10_000, () => (ns.every((n) => n.view.live().size === 3) ? true : undefined));
    // Whoever registered first may have been elected before the others were back and moved leaders
    // (within their isr); every partition has a live leader from its earlier isr.
    const after = await partitions(ns[0]!);
    after.forEach((p, i) => {
      expect(before[i]!.isr).toContain(p.leader);
      expect(p.isr).toContain(p.leader);
      expect(p.isr.every((b) => before[i]!.isr.includes(b))).toBe(true);
    });
  });
});
