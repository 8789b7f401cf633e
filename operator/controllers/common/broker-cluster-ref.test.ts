import { describe, expect, it } from 'vitest';
import type { BrokerCluster, Topic } from '../../api/v1alpha1/index.js';
import { resolveBrokerCluster } from './broker-cluster-ref.js';
import type { BrokerClusterCache } from './broker-cluster-ref.js';
import { brokerSideName, brokerSideNameOf } from './naming.js';

function cluster(namespace: string, name: string): BrokerCluster {
  return { apiVersion: 'kmq.dev/v1alpha1', kind: 'BrokerCluster', metadata: { namespace, name }, spec: {} };
}

function cache(...clusters: BrokerCluster[]): BrokerClusterCache {
  return {
    get: (key) => clusters.find((c) => `${c.metadata.namespace}/${c.metadata.name}` === key),
    list: (namespace) => clusters.filter((c) => namespace === undefined || c.metadata.namespace === namespace),
  };
}

function topic(namespace: string, name: string, brokerCluster?: string): Topic {
  return { apiVersion: 'kmq.dev/v1alpha1', kind: 'Topic', metadata: { namespace, name }, spec: brokerCluster === undefined ? {} : { brokerCluster } };
}

describe('resolveBrokerCluster', () => {
  it('takes the namespace\'s only BrokerCluster when spec.brokerCluster is not set', () => {
    const r = resolveBrokerCluster(topic('shop', 'orders'), cache(cluster('shop', 'main'), cluster('other', 'x')));
    expect(r).toMatchObject({ ok: true, ref: { namespace: 'shop', name: 'main' } });
  });

  it('takes the named one, even when the namespace has several', () => {
    const r = resolveBrokerCluster(topic('shop', 'orders', 'b'), cache(cluster('shop', 'a'), cluster('shop', 'b')));
    expect(r).toMatchObject({ ok: true, ref: { namespace: 'shop', name: 'b' } });
  });

  it('BrokerClusterNotFound: none in the namespace (another namespace\'s does not count), or the named one is missing', () => {
    expect(resolveBrokerCluster(topic('shop', 'orders'), cache(cluster('other', 'main')))).toEqual({
      ok: false,
      reason: 'BrokerClusterNotFound',
      message: 'No BrokerCluster in namespace shop; create one or set spec.brokerCluster',
    });
    expect(resolveBrokerCluster(topic('shop', 'orders', 'gone'), cache(cluster('shop', 'main')))).toEqual({
      ok: false,
      reason: 'BrokerClusterNotFound',
      message: 'BrokerCluster gone does not exist in namespace shop',
    });
  });

  it('BrokerClusterAmbiguous: several and none named', () => {
    expect(resolveBrokerCluster(topic('shop', 'orders'), cache(cluster('shop', 'b'), cluster('shop', 'a')))).toEqual({
      ok: false,
      reason: 'BrokerClusterAmbiguous',
      message: 'Namespace shop has 2 BrokerClusters (a, b); set spec.brokerCluster',
    });
  });
});

describe('broker-side names', () => {
  it('are <namespace>.<name>', () => {
    expect(brokerSideName('shop', 'orders')).toBe('shop.orders');
    expect(brokerSideNameOf(topic('shop', 'orders'))).toBe('shop.orders');
    expect(brokerSideNameOf(topic('shop-eu', 'orders'))).not.toBe(brokerSideNameOf(topic('shop', 'eu-orders')));
  });

  it('need a namespace', () => {
    expect(() => brokerSideNameOf({ kind: 'Topic', metadata: { name: 'orders' } })).toThrow('without metadata.namespace');
  });
});
