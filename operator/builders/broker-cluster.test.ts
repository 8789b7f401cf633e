import type { V1ConfigMap, V1PodDisruptionBudget, V1Role, V1RoleBinding, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { BrokerCluster } from '../api/v1alpha1/index.js';
import { buildBrokerClusterObjects } from './broker-cluster.js';
import { buildConfigMap } from './config-map.js';
import { bootstrapAddress, brokerClusterNames } from './meta.js';
import { buildPodDisruptionBudget } from './pod-disruption-budget.js';
import { buildRoleBinding } from './role-binding.js';
import { buildRole } from './role.js';
import { buildServiceAccount } from './service-account.js';
import { buildClientService, buildHeadlessService } from './service.js';

function cluster(spec: BrokerCluster['spec'] = {}): BrokerCluster {
  return { apiVersion: 'kmq.dev/v1alpha1', kind: 'BrokerCluster', metadata: { name: 'main', namespace: 'shop', uid: '0b5c7a52-1111-4222-8333-944455556666', generation: 3, resourceVersion: '42' }, spec };
}

const labels = {
  'app.kubernetes.io/name': 'kmq',
  'app.kubernetes.io/instance': 'main',
  'app.kubernetes.io/component': 'broker',
  'app.kubernetes.io/managed-by': 'kmq-operator',
};
const selector = { 'app.kubernetes.io/name': 'kmq', 'app.kubernetes.io/instance': 'main', 'app.kubernetes.io/component': 'broker' };

describe('buildBrokerClusterObjects', () => {
  it('builds every kind once, in apply order', () => {
    const objects = buildBrokerClusterObjects(cluster());
    expect(objects.map((o) => `${o.kind}/${o.metadata!.name}`)).toEqual([
      'ServiceAccount/main-broker',
      'Role/main-broker',
      'RoleBinding/main-broker',
      'ConfigMap/main-broker-config',
      'Service/main-broker',
      'Service/main-client',
      'StatefulSet/main-broker',
      'PodDisruptionBudget/main-broker',
    ]);
  });

  it('labels every object and makes the BrokerCluster its controlling owner', () => {
    for (const o of buildBrokerClusterObjects(cluster())) {
      expect(o.metadata!.namespace, o.kind).toBe('shop');
      expect(o.metadata!.labels, o.kind).toEqual(labels);
      expect(o.metadata!.ownerReferences, o.kind).toEqual([
        { apiVersion: 'kmq.dev/v1alpha1', kind: 'BrokerCluster', name: 'main', uid: '0b5c7a52-1111-4222-8333-944455556666', controller: true, blockOwnerDeletion: true },
      ]);
      expect(o.apiVersion, o.kind).toMatch(/^(v1|apps\/v1|policy\/v1|rbac\.authorization\.k8s\.io\/v1)$/);
    }
  });

  it('is deterministic: the same BrokerCluster gives deep-equal objects, whatever the key order of its maps', () => {
    const spec: BrokerCluster['spec'] = {
      replicas: 3,
      storage: { size: '20Gi' },
      resources: { requests: { cpu: '500m', memory: '1Gi' } },
      nodeSelector: { a: '1', b: '2' },
      config: { flush: 'every-batch', retention: { time: '7d' } },
    };
    const reordered: BrokerCluster['spec'] = {
      config: { retention: { time: '7d' }, flush: 'every-batch' },
      nodeSelector: { b: '2', a: '1' },
      resources: { requests: { memory: '1Gi', cpu: '500m' } },
      storage: { size: '20Gi' },
      replicas: 3,
    };
    const a = buildBrokerClusterObjects(cluster(spec));
    expect(buildBrokerClusterObjects(cluster(spec))).toEqual(a);
    expect(JSON.stringify(buildBrokerClusterObjects(cluster(reordered)))).toBe(JSON.stringify(a));
  });

  it('ignores what the API server adds: status, resourceVersion and generation do not change the objects', () => {
    const bc = cluster({ replicas: 2 });
    const later: BrokerCluster = { ...bc, metadata: { ...bc.metadata, resourceVersion: '99', generation: 7 }, status: { readyReplicas: 2 } };
    expect(buildBrokerClusterObjects(later)).toEqual(buildBrokerClusterObjects(bc));
  });

  it('does not change the BrokerCluster it reads', () => {
    const bc = cluster({ resources: { requests: { cpu: 1 } }, nodeSelector: { z: '1' } });
    const copy = structuredClone(bc);
    buildBrokerClusterObjects(bc);
    expect(bc).toEqual(copy);
  });

  it('refuses a BrokerCluster without a uid (an owner reference needs it)', () => {
    const bc = cluster();
    delete bc.metadata.uid;
    expect(() => buildBrokerClusterObjects(bc)).toThrow(/metadata\.uid/);
  });
});

describe('the objects', () => {
  it('names and bootstrap address', () => {
    expect(brokerClusterNames(cluster())).toEqual({ broker: 'main-broker', client: 'main-client', config: 'main-broker-config' });
    expect(bootstrapAddress(cluster())).toBe('main-client.shop.svc:9092');
  });

  it('ConfigMap: the KMQ_ environment of the broker pods (lib/env.ts names)', () => {
    const cm: V1ConfigMap = buildConfigMap(cluster());
    expect(cm.data).toEqual({
      KMQ_BROKER: 'main-client.shop.svc:9092',
      KMQ_LOG_LEVEL: 'info',
    });
  });

  it('headless Service: stable pod DNS, not-ready pods published', () => {
    const svc: V1Service = buildHeadlessService(cluster());
    expect(svc.metadata!.name).toBe('main-broker');
    expect(svc.spec).toEqual({
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector,
      ports: [
        { name: 'broker', port: 9092, targetPort: 'broker', protocol: 'TCP' },
        { name: 'metrics', port: 9093, targetPort: 'http', protocol: 'TCP' },
      ],
    });
  });

  it('client Service: broker port 9092 and the metrics port', () => {
    const svc: V1Service = buildClientService(cluster());
    expect(svc.metadata!.name).toBe('main-client');
    expect(svc.spec!.type).toBe('ClusterIP');
    expect(svc.spec!.clusterIP).toBeUndefined();
    expect(svc.spec!.publishNotReadyAddresses).toBeUndefined();
    expect(svc.spec!.selector).toEqual(selector);
    expect(svc.spec!.ports!.map((p) => [p.name, p.port])).toEqual([['broker', 9092], ['metrics', 9093]]);
  });

  it('PodDisruptionBudget: at most one broker unavailable', () => {
    const pdb: V1PodDisruptionBudget = buildPodDisruptionBudget(cluster({ replicas: 5 }));
    expect(pdb.spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: selector } });
  });

  it('RBAC: the brokers\' ServiceAccount gets what the kubernetes coordination store needs (its ConfigMap, Leases), nothing else, no wildcards', () => {
    expect(buildServiceAccount(cluster()).metadata!.name).toBe('main-broker');
    const role: V1Role = buildRole(cluster());
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create', 'update'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'create', 'update', 'delete'] },
    ]);
    for (const rule of role.rules!) {
      for (const list of [rule.apiGroups, rule.resources, rule.verbs, rule.resourceNames, rule.nonResourceURLs]) {
        expect(list ?? []).not.toContain('*');
      }
    }
    const binding: V1RoleBinding = buildRoleBinding(cluster());
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'main-broker' });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'main-broker', namespace: 'shop' }]);
  });

  it('a Role built twice shares no arrays with the rules constant', () => {
    const role = buildRole(cluster());
    role.rules![0]!.verbs.push('delete');
    expect(buildRole(cluster()).rules![0]!.verbs).toEqual(['get', 'list', 'watch', 'create', 'update']);
  });
});
