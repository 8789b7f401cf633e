import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compileBrokerOptions, ordinalOfHostname } from './options.js';
import type { BrokerHost } from './options.js';

const dirs: string[] = [];
const saved = { POD_NAMESPACE: process.env.POD_NAMESPACE, KUBECONFIG: process.env.KUBECONFIG };
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

function host(hostname: string, namespace?: string): BrokerHost {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-options-'));
  dirs.push(dir);
  const file = path.join(dir, 'namespace');
  if (namespace !== undefined) fs.writeFileSync(file, `${namespace}\n`);
  return { hostname: () => hostname, serviceAccountNamespaceFile: file };
}

describe('compileBrokerOptions: the cluster store', () => {
  it('the node id comes from a StatefulSet pod\'s hostname ordinal when asked, and never together with nodeId', () => {
    expect(ordinalOfHostname('main-broker-0')).toBe(0);
    expect(ordinalOfHostname('main-broker-12.main-broker.shop.svc.cluster.local')).toBe(12);
    expect(() => ordinalOfHostname('laptop')).toThrow(/does not end in -<ordinal>/);
    expect(() => ordinalOfHostname('main-broker-01')).toThrow(/does not end in -<ordinal>/);
    expect(compileBrokerOptions({ nodeIdFromHostname: true }, host('main-broker-2')).nodeId).toBe(2);
    expect(compileBrokerOptions({ nodeId: 5 }, host('main-broker-2')).nodeId).toBe(5);
    expect(() => compileBrokerOptions({ nodeId: 1, nodeIdFromHostname: true }, host('main-broker-2'))).toThrow(/exclude each other/);
  });

  it('kubernetes: the namespace is the setting, else POD_NAMESPACE, else the service account\'s; without any start-up stops', () => {
    delete process.env.POD_NAMESPACE;
    delete process.env.KUBECONFIG;
    expect(compileBrokerOptions({ clusterStore: 'kubernetes' }, host('b-0', 'from-file'))).toMatchObject({ clusterStore: 'kubernetes', clusterNamespace: 'from-file', kubeconfig: '' });
    process.env.POD_NAMESPACE = 'from-env';
    process.env.KUBECONFIG = '/tmp/kubeconfig';
    expect(compileBrokerOptions({ clusterStore: 'kubernetes' }, host('b-0', 'from-file'))).toMatchObject({ clusterNamespace: 'from-env', kubeconfig: '/tmp/kubeconfig' });
    expect(compileBrokerOptions({ clusterStore: 'kubernetes', clusterNamespace: 'given', kubeconfig: '/k' }, host('b-0'))).toMatchObject({ clusterNamespace: 'given', kubeconfig: '/k' });
    process.env.KUBECONFIG = ['/first', '/second'].join(path.delimiter);
    expect(compileBrokerOptions({ clusterStore: 'kubernetes' }, host('b-0')).kubeconfig).toBe('/first');
    delete process.env.POD_NAMESPACE;
    expect(() => compileBrokerOptions({ clusterStore: 'kubernetes' }, host('b-0'))).toThrow(/clusterNamespace: the kubernetes store needs a namespace/);
    expect(() => compileBrokerOptions({ clusterStore: 'kubernetes', clusterNamespace: 'Not_A_Namespace' }, host('b-0'))).toThrow(/clusterNamespace must be a namespace name/);
    // Other stores do not need one.
    expect(compileBrokerOptions({ clusterStore: 'etcd' }, host('b-0')).clusterNamespace).toBe('');
    expect(() => compileBrokerOptions({ clusterStore: 'zookeeper' as 'etcd' }, host('b-0'))).toThrow(/none, local, etcd or kubernetes/);
  });
});
