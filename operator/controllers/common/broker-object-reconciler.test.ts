import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../../lib/errors.js';
import type { BrokerCluster, DeletionPolicy, Topic } from '../../api/v1alpha1/index.js';
import { BrokerClientPool } from './broker-clients.js';
import { BrokerObjectReconciler } from './broker-object-reconciler.js';
import type { BrokerObjectHandler, EnsureOutcome } from './broker-object-reconciler.js';
import { FINALIZER } from './finalizer.js';
import type { JsonPatchOp, KmqObjectClient } from './kube.js';

const NOW = new Date('2026-01-02T03:04:05Z');
const signal = new AbortController().signal;

function topic(opts: { finalizer?: boolean; deleting?: boolean; policy?: DeletionPolicy; status?: Topic['status'] } = {}): Topic {
  return {
    apiVersion: 'kmq.dev/v1alpha1',
    kind: 'Topic',
    metadata: {
      namespace: 'shop',
      name: 'orders',
      generation: 3,
      resourceVersion: '10',
      ...(opts.finalizer === false ? {} : { finalizers: [FINALIZER] }),
      ...(opts.deleting === true ? { deletionTimestamp: NOW } : {}),
    },
    spec: opts.policy === undefined ? {} : { deletionPolicy: opts.policy },
    ...(opts.status === undefined ? {} : { status: opts.status }),
  };
}

const main: BrokerCluster = { apiVersion: 'kmq.dev/v1alpha1', kind: 'BrokerCluster', metadata: { namespace: 'shop', name: 'main' }, spec: {} };

interface Fake {
  reconciler: BrokerObjectReconciler<Topic, { messages?: number }>;
  calls: string[];
  patches: JsonPatchOp[][];
  statuses: JsonPatchOp[][];
  handler: BrokerObjectHandler<Topic, { messages?: number }>;
}

function setup(obj: Topic | undefined, opts: { clusters?: BrokerCluster[]; terminating?: boolean; ensure?: () => Promise<EnsureOutcome<{ messages?: number }>>; empty?: boolean; brokerDown?: boolean } = {}): Fake {
  const calls: string[] = [];
  const patches: JsonPatchOp[][] = [];
  const statuses: JsonPatchOp[][] = [];
  const clusters = opts.clusters ?? [main];
  const down = (): void => {
    if (opts.brokerDown === true) throw new KmqError(ErrorCode.BrokerNotAvailable, 'connect ECONNREFUSED 127.0.0.1:9092');
  };
  const handler: BrokerObjectHandler<Topic, { messages?: number }> = {
    kind: 'Topic',
    plural: 'topics',
    ensure: async (ctx) => {
      calls.push(`ensure ${ctx.brokerName} on ${ctx.cluster.ref.name}`);
      down();
      return opts.ensure ? opts.ensure() : { status: { messages: 5 } };
    },
    readyMessage: (_ctx, s) => `${s.messages} messages`,
    detach: async () => {
      calls.push('detach');
      down();
    },
    isEmpty: async () => {
      calls.push('isEmpty');
      return opts.empty ?? true;
    },
    deleteOnBroker: async () => {
      calls.push('delete');
    },
  };
  const kube: KmqObjectClient = {
    patch: async (_p, _o, ops) => {
      patches.push(ops);
    },
    patchStatus: async (_p, _o, ops) => {
      statuses.push(ops);
    },
    namespaceTerminating: async () => opts.terminating ?? false,
  };
  const reconciler = new BrokerObjectReconciler(handler, {
    objects: { get: (key) => (key === 'shop/orders' ? obj : undefined), list: () => (obj === undefined ? [] : [obj]) },
    brokerClusters: { get: (key) => clusters.find((c) => `${c.metadata.namespace}/${c.metadata.name}` === key), list: (ns) => clusters.filter((c) => c.metadata.namespace === ns) },
    clients: new BrokerClientPool({ resolveAddress: () => '127.0.0.1:1' }),
    kube,
    resyncMs: 1234,
    now: () => NOW,
  });
  return { reconciler, calls, patches, statuses, handler };
}

function writtenStatus(f: Fake): Record<string, unknown> & { conditions: Array<Record<string, unknown>> } {
  const last = f.statuses.at(-1);
  if (last === undefined) throw new Error('no status written');
  return last[0]!.value as Record<string, unknown> & { conditions: Array<Record<string, unknown>> };
}

const removesFinalizer = [
  [
    { op: 'test', path: '/metadata/finalizers/0', value: FINALIZER },
    { op: 'remove', path: '/metadata/finalizers/0' },
  ],
];

describe('BrokerObjectReconciler', () => {
  it('an object gone from the cache is done', async () => {
    const f = setup(undefined);
    expect(await f.reconciler.reconcile('shop/orders', signal)).toEqual({});
    expect(f.calls).toEqual([]);
  });

  it('adds the finalizer, ensures on the broker, writes figures and Ready with observedGeneration, and requeues after the resync period', async () => {
    const f = setup(topic({ finalizer: false }));
    expect(await f.reconciler.reconcile('shop/orders', signal)).toEqual({ requeueAfterMs: 1234 });
    expect(f.patches).toEqual([[{ op: 'test', path: '/metadata/resourceVersion', value: '10' }, { op: 'add', path: '/metadata/finalizers', value: [FINALIZER] }]]);
    expect(f.calls).toEqual(['ensure shop.orders on main']);
    expect(writtenStatus(f)).toEqual({
      messages: 5,
      observedGeneration: 3,
      conditions: [{ type: 'Ready', status: 'True', observedGeneration: 3, lastTransitionTime: '2026-01-02T03:04:05Z', reason: 'Ready', message: '5 messages' }],
    });
  });

  it('writes no status when nothing changed', async () => {
    const first = setup(topic());
    await first.reconciler.reconcile('shop/orders', signal);
    const stored = writtenStatus(first) as unknown as Topic['status'];
    const again = setup(topic({ status: stored }));
    await again.reconciler.reconcile('shop/orders', signal);
    expect(again.statuses).toEqual([]);
    expect(again.patches).toEqual([]);
  });

  it('without a BrokerCluster: Ready=False BrokerClusterNotFound, nothing asked of a broker', async () => {
    const f = setup(topic(), { clusters: [] });
    expect(await f.reconciler.reconcile('shop/orders', signal)).toEqual({ requeueAfterMs: 1234 });
    expect(f.calls).toEqual([]);
    expect(writtenStatus(f).conditions).toEqual([expect.objectContaining({ type: 'Ready', status: 'False', reason: 'BrokerClusterNotFound' })]);
  });

  it('a broker that is down: Ready=False BrokerUnavailable, the error rethrown for backoff', async () => {
    const f = setup(topic(), { brokerDown: true });
    await expect(f.reconciler.reconcile('shop/orders', signal)).rejects.toMatchObject({ code: ErrorCode.BrokerNotAvailable });
    expect(writtenStatus(f).conditions).toEqual([expect.objectContaining({ type: 'Ready', status: 'False', reason: 'BrokerUnavailable', message: 'Broker unreachable: connect ECONNREFUSED 127.0.0.1:9092' })]);
  });

  it('a refused request is Degraded with the error code as reason', async () => {
    const f = setup(topic(), { ensure: () => Promise.reject(new KmqError(ErrorCode.InvalidConfig, 'bad retention')) });
    await expect(f.reconciler.reconcile('shop/orders', signal)).rejects.toThrow('bad retention');
    const types = writtenStatus(f).conditions.map((c) => `${c.type}=${c.status} ${c.reason}`);
    expect(types).toEqual(['Ready=False InvalidConfig', 'Degraded=True InvalidConfig']);
  });

  it('a problem the handler reports: Degraded, or only Ready=False while waiting', async () => {
    const degraded = setup(topic(), { ensure: async () => ({ status: {}, problem: { reason: 'NotAppliedByBroker', message: 'partitions', degraded: true } }) });
    await degraded.reconciler.reconcile('shop/orders', signal);
    expect(writtenStatus(degraded).conditions.map((c) => `${c.type}=${c.status}`)).toEqual(['Ready=False', 'Degraded=True']);
    const waiting = setup(topic(), { ensure: async () => ({ status: {}, problem: { reason: 'ExchangeNotFound', message: 'x', degraded: false }, requeueAfterMs: 50 }) });
    expect(await waiting.reconciler.reconcile('shop/orders', signal)).toEqual({ requeueAfterMs: 50 });
    expect(writtenStatus(waiting).conditions.map((c) => `${c.type}=${c.status}`)).toEqual(['Ready=False']);
  });

  describe('deletion', () => {
    it('without the finalizer: nothing to do', async () => {
      const f = setup(topic({ deleting: true, finalizer: false }));
      await f.reconciler.reconcile('shop/orders', signal);
      expect(f.calls).toEqual([]);
      expect(f.patches).toEqual([]);
    });

    it('Retain (the default): bindings go, the broker object stays, the finalizer is released', async () => {
      const f = setup(topic({ deleting: true }));
      await f.reconciler.reconcile('shop/orders', signal);
      expect(f.calls).toEqual(['detach']);
      expect(f.patches).toEqual(removesFinalizer);
    });

    it('Delete: the broker object is deleted', async () => {
      const f = setup(topic({ deleting: true, policy: 'Delete' }));
      await f.reconciler.reconcile('shop/orders', signal);
      expect(f.calls).toEqual(['detach', 'delete']);
      expect(f.patches).toEqual(removesFinalizer);
    });

    it('DeleteIfEmpty: deleted when empty; when not, Degraded NotEmpty, kept and retried', async () => {
      const empty = setup(topic({ deleting: true, policy: 'DeleteIfEmpty' }));
      await empty.reconciler.reconcile('shop/orders', signal);
      expect(empty.calls).toEqual(['detach', 'isEmpty', 'delete']);

      const full = setup(topic({ deleting: true, policy: 'DeleteIfEmpty' }), { empty: false });
      await expect(full.reconciler.reconcile('shop/orders', signal)).rejects.toMatchObject({ retriable: true, context: { reason: 'NotEmpty' } });
      expect(full.calls).toEqual(['detach', 'isEmpty']);
      expect(full.patches).toEqual([]);
      expect(writtenStatus(full).conditions.map((c) => `${c.type}=${c.status} ${c.reason}`)).toEqual(['Ready=False NotEmpty', 'Degraded=True NotEmpty']);
    });

    it('DeleteIfEmpty in a terminating namespace acts as Retain, so the namespace is not held', async () => {
      const f = setup(topic({ deleting: true, policy: 'DeleteIfEmpty' }), { terminating: true, empty: false });
      await f.reconciler.reconcile('shop/orders', signal);
      expect(f.calls).toEqual(['detach']);
      expect(f.patches).toEqual(removesFinalizer);
    });

    it('the BrokerCluster gone: the finalizer is released without a broker', async () => {
      const f = setup(topic({ deleting: true, policy: 'Delete' }), { clusters: [] });
      await f.reconciler.reconcile('shop/orders', signal);
      expect(f.calls).toEqual([]);
      expect(f.patches).toEqual(removesFinalizer);
    });

    it('the broker unreachable: retried while the namespace lives, released when it is terminating', async () => {
      const living = setup(topic({ deleting: true, policy: 'Delete' }), { brokerDown: true });
      await expect(living.reconciler.reconcile('shop/orders', signal)).rejects.toMatchObject({ code: ErrorCode.BrokerNotAvailable });
      expect(living.patches).toEqual([]);
      expect(writtenStatus(living).conditions).toEqual([expect.objectContaining({ type: 'Ready', status: 'False', reason: 'BrokerUnavailable' })]);

      const terminating = setup(topic({ deleting: true, policy: 'Delete' }), { brokerDown: true, terminating: true });
      await terminating.reconciler.reconcile('shop/orders', signal);
      expect(terminating.patches).toEqual(removesFinalizer);
    });

    it('in a terminating namespace a broker refusal releases the finalizer too; elsewhere it is Degraded and retried', async () => {
      const refusing = (terminating: boolean): Fake => {
        const f = setup(topic({ deleting: true, policy: 'Delete' }), { terminating });
        f.handler.deleteOnBroker = () => Promise.reject(new KmqError(ErrorCode.InvalidConfig, 'Queue "shop.orders" is the dead-letter queue of shop.emails; change those first'));
        return f;
      };
      const living = refusing(false);
      await expect(living.reconciler.reconcile('shop/orders', signal)).rejects.toThrow('dead-letter queue');
      expect(living.patches).toEqual([]);
      expect(writtenStatus(living).conditions.map((c) => `${c.type}=${c.status} ${c.reason}`)).toEqual(['Ready=False InvalidConfig', 'Degraded=True InvalidConfig']);
      const terminating = refusing(true);
      await terminating.reconciler.reconcile('shop/orders', signal);
      expect(terminating.patches).toEqual(removesFinalizer);
    });
  });
});
