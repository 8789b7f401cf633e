import type { KubernetesObject, V1StatefulSet } from '@kubernetes/client-node';
import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { BrokerCluster, BrokerClusterStatus } from '../api/v1alpha1/index.js';
import type { ObjectClient } from '../apply.js';
import { TerminalError } from '../runtime/controller.js';
import { BrokerClusterReconciler, brokerClusterStatus, sameStatus, withDefaults } from './broker-cluster.js';

// Unit tests on a fake client; test/operator/operator.test.ts runs the controller against a real API server.

const NOW = new Date('2026-03-01T10:00:00Z');

function cluster(spec: BrokerCluster['spec'] = { replicas: 3 }, status?: BrokerClusterStatus): BrokerCluster {
  return {
    apiVersion: 'kmq.dev/v1alpha1',
    kind: 'BrokerCluster',
    metadata: { name: 'main', namespace: 'shop', uid: 'uid-1', generation: 2 },
    spec,
    ...(status === undefined ? {} : { status }),
  };
}

function sts(status: V1StatefulSet['status'], generation = 5): V1StatefulSet {
  return { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'main-broker', generation }, status: status as V1StatefulSet['status'] };
}

function apiException(code: number, message: string): ApiException<string> {
  return new ApiException(code, `HTTP-Code: ${code}`, JSON.stringify({ kind: 'Status', status: 'Failure', message, code }), {});
}

/** Stores applied objects by kind/name; a StatefulSet comes back with `stsStatus`. */
class FakeObjects implements ObjectClient {
  readonly applied: string[] = [];
  readonly store = new Map<string, KubernetesObject>();
  stsStatus: V1StatefulSet['status'] = { replicas: 3, readyReplicas: 3, updatedReplicas: 3, observedGeneration: 1 };
  failPatch: unknown;
  private rv = 1;

  read = (async (spec: KubernetesObject) => {
    const o = this.store.get(`${spec.kind}/${spec.metadata?.name}`);
    if (o === undefined) throw apiException(404, 'not found');
    return structuredClone(o);
  }) as ObjectClient['read'];

  patch = (async (spec: KubernetesObject) => {
    if (this.failPatch !== undefined) throw this.failPatch;
    const key = `${spec.kind}/${spec.metadata?.name}`;
    this.applied.push(key);
    const old = this.store.get(key);
    const same = old !== undefined && JSON.stringify({ ...old, metadata: undefined, status: undefined }) === JSON.stringify({ ...spec, metadata: undefined });
    const next = same ? old : { ...spec, metadata: { ...spec.metadata, resourceVersion: String(++this.rv), generation: 1 } };
    if (spec.kind === 'StatefulSet') (next as V1StatefulSet).status = this.stsStatus;
    this.store.set(key, next);
    return structuredClone(next);
  }) as ObjectClient['patch'];

  delete = (async () => ({})) as unknown as ObjectClient['delete'];
}

function reconciler(objects: FakeObjects, bc: BrokerCluster | undefined, defaults?: { image?: string }) {
  const writes: BrokerClusterStatus[] = [];
  const r = new BrokerClusterReconciler({
    ...(defaults === undefined ? {} : { defaults }),
    brokerClusters: { get: (key) => (key === 'shop/main' ? bc : undefined) },
    objects,
    writeStatus: async (_bc, status) => {
      writes.push(status);
    },
    now: () => NOW,
  });
  return { r, writes };
}

describe('brokerClusterStatus', () => {
  it('is Ready when every desired broker is ready on the current StatefulSet generation', () => {
    const s = brokerClusterStatus(cluster(), sts({ replicas: 3, readyReplicas: 3, updatedReplicas: 3, observedGeneration: 5 }), NOW);
    expect(s).toMatchObject({ replicas: 3, readyReplicas: 3, observedGeneration: 2, bootstrap: 'main-client.shop.svc:9092' });
    expect(s.conditions).toEqual([{ type: 'Ready', status: 'True', reason: 'BrokersReady', message: '3/3 brokers ready', observedGeneration: 2, lastTransitionTime: '2026-03-01T10:00:00Z' }]);
  });

  it('is not Ready, and not Degraded, while brokers start or roll', () => {
    const starting = brokerClusterStatus(cluster(), sts({ replicas: 3, readyReplicas: 1, updatedReplicas: 3, observedGeneration: 5 }), NOW);
    expect(starting.conditions).toEqual([expect.objectContaining({ type: 'Ready', status: 'False', reason: 'BrokersNotReady', message: '1/3 brokers ready, 3/3 updated' })]);
    // The StatefulSet controller has not seen the latest spec yet: its old figures do not count.
    const pending = brokerClusterStatus(cluster(), sts({ replicas: 3, readyReplicas: 3, updatedReplicas: 3, observedGeneration: 4 }), NOW);
    expect(pending.conditions?.[0]).toMatchObject({ status: 'False', message: '3/3 brokers ready, StatefulSet rollout pending' });
    // Scaled down by hand and not yet restored: more or fewer pods than desired is not Ready.
    const fewer = brokerClusterStatus(cluster({ replicas: 3 }), sts({ replicas: 1, readyReplicas: 1, updatedReplicas: 1, observedGeneration: 5 }), NOW);
    expect(fewer.conditions?.[0]?.status).toBe('False');
  });

  it('drops a Degraded condition left by an earlier failure and keeps the transition time of an unchanged Ready', () => {
    const earlier = '2026-02-01T00:00:00Z';
    const prior: BrokerClusterStatus = {
      conditions: [
        { type: 'Ready', status: 'False', reason: 'Forbidden', message: 'x', lastTransitionTime: earlier },
        { type: 'Degraded', status: 'True', reason: 'Forbidden', message: 'x', lastTransitionTime: earlier },
      ],
    };
    const s = brokerClusterStatus(cluster({ replicas: 1 }, prior), sts({ replicas: 1, readyReplicas: 0, updatedReplicas: 1, observedGeneration: 5 }), NOW);
    expect(s.conditions).toHaveLength(1);
    expect(s.conditions?.[0]).toMatchObject({ type: 'Ready', status: 'False', reason: 'BrokersNotReady', lastTransitionTime: earlier });
  });

  it('sameStatus sees any change of a figure or a condition', () => {
    const s = brokerClusterStatus(cluster(), sts({ replicas: 3, readyReplicas: 3, updatedReplicas: 3, observedGeneration: 5 }), NOW);
    expect(sameStatus(structuredClone(s), s)).toBe(true);
    expect(sameStatus(undefined, s)).toBe(false);
    expect(sameStatus({ ...s, readyReplicas: 2 }, s)).toBe(false);
    expect(sameStatus({ ...s, observedGeneration: 1 }, s)).toBe(false);
    expect(sameStatus({ ...s, conditions: [] }, s)).toBe(false);
  });
});

describe('BrokerClusterReconciler', () => {
  it('applies every child, writes the status, and a second pass with nothing new writes nothing', async () => {
    const objects = new FakeObjects();
    const bc = cluster({ replicas: 3 });
    const { r, writes } = reconciler(objects, bc);
    await r.reconcile('shop/main');
    expect(objects.applied).toEqual([
      'ServiceAccount/main-broker',
      'Role/main-broker',
      'RoleBinding/main-broker',
      'ConfigMap/main-broker-config',
      'Service/main-broker',
      'Service/main-client',
      'StatefulSet/main-broker',
      'PodDisruptionBudget/main-broker',
    ]);
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatchObject({ replicas: 3, readyReplicas: 3, observedGeneration: 2 });
    expect(writes[0]?.conditions?.[0]).toMatchObject({ type: 'Ready', status: 'True' });

    bc.status = writes[0];
    await r.reconcile('shop/main');
    expect(writes).toHaveLength(1);
  });

  it('builds with the operator\'s default image when the spec names none, and reports it', async () => {
    const objects = new FakeObjects();
    const { r, writes } = reconciler(objects, cluster({ replicas: 1 }), { image: 'registry.test/kmq:9' });
    await r.reconcile('shop/main');
    const sts = objects.store.get('StatefulSet/main-broker') as V1StatefulSet;
    expect(sts.spec?.template.spec?.containers[0]?.image).toBe('registry.test/kmq:9');
    expect(writes[0]?.image).toBe('registry.test/kmq:9');
    const own = cluster({ replicas: 1, image: 'mine:1', imagePullPolicy: 'Always' });
    expect(withDefaults(own, { image: 'registry.test/kmq:9', imagePullPolicy: 'Never' })).toBe(own);
    expect(withDefaults(cluster({}), { imagePullPolicy: 'Never' }).spec).toEqual({ imagePullPolicy: 'Never' });
  });

  it('does nothing for a BrokerCluster that is gone or being deleted (garbage collection removes the children)', async () => {
    const objects = new FakeObjects();
    await reconciler(objects, undefined).r.reconcile('shop/main');
    const deleting = cluster();
    deleting.metadata.deletionTimestamp = '2026-03-01T09:00:00Z' as unknown as Date;
    await reconciler(objects, deleting).r.reconcile('shop/main');
    expect(objects.applied).toEqual([]);
  });

  it('an API refusal becomes Degraded with its reason, and the error is rethrown for the backoff', async () => {
    const objects = new FakeObjects();
    objects.failPatch = apiException(403, 'statefulsets.apps is forbidden');
    const { r, writes } = reconciler(objects, cluster());
    const err = await r.reconcile('shop/main').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(TerminalError);
    expect(writes).toHaveLength(1);
    expect(writes[0]?.conditions).toEqual([
      expect.objectContaining({ type: 'Ready', status: 'False', reason: 'Forbidden' }),
      expect.objectContaining({ type: 'Degraded', status: 'True', reason: 'Forbidden', message: expect.stringContaining('forbidden') }),
    ]);
  });

  it('an object the API server refuses as invalid is terminal: Degraded Invalid, not requeued', async () => {
    const objects = new FakeObjects();
    objects.failPatch = apiException(422, 'StatefulSet.apps "main-broker" is invalid: spec: Forbidden');
    const { r, writes } = reconciler(objects, cluster());
    await expect(r.reconcile('shop/main')).rejects.toBeInstanceOf(TerminalError);
    expect(writes[0]?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({ reason: 'Invalid' });
  });

  it('a spec the builders refuse is terminal: Degraded InvalidSpec, nothing applied', async () => {
    const objects = new FakeObjects();
    const { r, writes } = reconciler(objects, cluster({ replicas: 1, config: { maxMessageBytes: 'lots' } }));
    await expect(r.reconcile('shop/main')).rejects.toBeInstanceOf(TerminalError);
    expect(objects.applied).toEqual([]);
    expect(writes[0]?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({ reason: 'InvalidSpec' });
  });
});
