import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/logger.js';
import { BrokerRegistry } from './broker-registry.js';
import { CONTROLLER_EPOCH_KEY, CONTROLLER_KEY, brokerKey, topicKey } from './cluster-metadata.js';
import type { ClusterTopic } from './cluster-metadata.js';
import { ClusterView } from './cluster-view.js';
import { MemoryCoordinationStore } from './memory-coordination-store.js';
import { StoreClient, eventually } from './test-fixtures.js';

const fast = { initialMs: 5, maxMs: 20, multiplier: 2, jitter: 0 };
const views: ClusterView[] = [];

function clusterTopic(name: string, leader = 1): ClusterTopic {
  return {
    topic: { name, id: `id-${name}`, partitions: 2, replicationFactor: 2, config: {}, internal: false, createdAt: 1 },
    partitions: [
      { replicas: [1, 2], leader, leaderEpoch: 0, isr: [1, 2] },
      { replicas: [2, 1], leader: 2, leaderEpoch: 0, isr: [2, 1] },
    ],
  };
}

function view(store: StoreClient | MemoryCoordinationStore, extra: { registry?: BrokerRegistry; logs?: string[] } = {}): ClusterView {
  const logs = extra.logs;
  const logger =
    logs === undefined
      ? undefined
      : createLogger({
          level: 'error',
          destination: new Writable({
            write(chunk: Buffer, _enc, done) {
              logs.push(chunk.toString());
              done();
            },
          }),
        });
  const v = new ClusterView({ store, registry: extra.registry, retryBackoff: fast, logger });
  views.push(v);
  return v;
}

afterEach(async () => {
  for (const v of views.splice(0)) await v.stop();
});

describe('ClusterView', () => {
  it('lists topics on start and follows creates, changes and deletes with their versions', async () => {
    const shared = new MemoryCoordinationStore();
    const existing = await shared.put(topicKey('a'), JSON.stringify(clusterTopic('a')));
    const v = view(new StoreClient(shared));
    const events: [string, ClusterTopic | undefined, number][] = [];
    v.on('topicChanged', (name, topic, version) => events.push([name, topic, version]));
    await v.start();
    expect(v.topic('a')).toEqual({ value: clusterTopic('a'), version: existing.version });
    expect(events).toEqual([['a', clusterTopic('a'), existing.version]]);

    const created = await shared.put(topicKey('b'), JSON.stringify(clusterTopic('b')));
    const changed = await shared.put(topicKey('a'), JSON.stringify(clusterTopic('a', 2)));
    await shared.delete(topicKey('b'));
    expect(events.slice(1)).toEqual([
      ['b', clusterTopic('b'), created.version],
      ['a', clusterTopic('a', 2), changed.version],
      ['b', undefined, 0],
    ]);
    expect([...v.topics().keys()]).toEqual(['a']);
    expect(v.partitionState('a', 0)).toEqual({ replicas: [1, 2], leader: 2, leaderEpoch: 0, isr: [1, 2] });
    expect(v.partitionState('a', 2)).toBeUndefined();
    expect(v.partitionState('b', 0)).toBeUndefined();
  });

  it('follows the controller record and ignores the epoch counter', async () => {
    const shared = new MemoryCoordinationStore();
    const v = view(shared);
    const records: unknown[] = [];
    v.on('controllerChanged', (c) => records.push(c));
    await v.start();
    expect(v.controller()).toBeUndefined();
    await shared.put(CONTROLLER_EPOCH_KEY, '1');
    await shared.put(CONTROLLER_KEY, JSON.stringify({ brokerId: 3, epoch: 1 }));
    expect(v.controller()).toEqual({ brokerId: 3, epoch: 1 });
    await shared.delete(CONTROLLER_KEY);
    expect(v.controller()).toBeUndefined();
    expect(records).toEqual([{ brokerId: 3, epoch: 1 }, undefined]);
  });

  it('reports live brokers from its own watch or from a registry', async () => {
    const shared = new MemoryCoordinationStore();
    const own = view(shared);
    const registry = new BrokerRegistry({ store: shared, retryBackoff: fast });
    const viaRegistry = view(shared, { registry });
    const changes: number[][] = [];
    viaRegistry.on('brokersChanged', (live) => changes.push([...live.keys()]));
    await Promise.all([own.start(), viaRegistry.start()]);
    const broker = new BrokerRegistry({ store: shared, retryBackoff: fast });
    await broker.register({ id: 1, host: 'h', port: 1, httpPort: -1, incarnation: 'x' });
    expect([...own.live().keys()]).toEqual([1]);
    expect([...viaRegistry.live().keys()]).toEqual([1]);
    expect(changes).toEqual([[1]]);
    await broker.deregister();
    expect(own.live().size).toBe(0);
    expect(changes).toEqual([[1], []]);
    await registry.deregister();
  });

  it('logs a value that does not decode and keeps the last good one', async () => {
    const shared = new MemoryCoordinationStore();
    const logs: string[] = [];
    const v = view(shared, { logs });
    await v.start();
    const good = await shared.put(topicKey('t'), JSON.stringify(clusterTopic('t')));
    await shared.put(topicKey('t'), '{"topic":');
    await shared.put(topicKey('t'), JSON.stringify({ topic: { name: 't' }, partitions: [{ replicas: 'all', leader: 1 }] }));
    await shared.put(CONTROLLER_KEY, JSON.stringify({ brokerId: 1, epoch: 1 }));
    await shared.put(CONTROLLER_KEY, 'garbage');
    expect(v.topic('t')).toEqual({ value: clusterTopic('t'), version: good.version });
    expect(v.controller()).toEqual({ brokerId: 1, epoch: 1 });
    expect(logs.filter((l) => l.includes('does not decode'))).toHaveLength(3);
    expect(logs.join('')).toContain('topics/t');

    const fixed = await shared.put(topicKey('t'), JSON.stringify(clusterTopic('t', 2)));
    expect(v.topic('t')).toEqual({ value: clusterTopic('t', 2), version: fixed.version });
  });

  it('re-lists after a resync: what changed while cut off shows, and the rest stays', async () => {
    const shared = new MemoryCoordinationStore();
    await shared.put(topicKey('kept'), JSON.stringify(clusterTopic('kept')));
    await shared.put(topicKey('gone'), JSON.stringify(clusterTopic('gone')));
    const client = new StoreClient(shared);
    const v = view(client);
    await v.start();
    const events: [string, boolean][] = [];
    v.on('topicChanged', (name, topic) => events.push([name, topic !== undefined]));
    client.cut();
    await shared.delete(topicKey('gone'));
    await shared.put(topicKey('new'), JSON.stringify(clusterTopic('new')));
    await shared.put(brokerKey(4), JSON.stringify({ id: 4, host: 'h', port: 1, httpPort: -1, incarnation: 'x' }));
    expect(v.topic('gone')).toBeDefined();
    client.heal();
    await eventually('caught up', 1000, () => v.topic('new') !== undefined && v.topic('gone') === undefined && v.live().has(4));
    expect(events.sort()).toEqual([
      ['gone', false],
      ['new', true],
    ]);
    expect(v.topic('kept')).toBeDefined();
  });
});
