import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ApiextensionsV1Api, AppsV1Api, CoreV1Api, CustomObjectsApi, KubernetesObjectApi } from '@kubernetes/client-node';
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { BrokerCluster } from '../../operator/api/v1alpha1/index.js';
import { applyObject, readObject } from '../../operator/apply.js';
import { buildBrokerClusterObjects } from '../../operator/builders/broker-cluster.js';
import { buildStatefulSet } from '../../operator/builders/stateful-set.js';
import { KmqClient } from '../../client/index.js';
import { configMapNameFor } from '../../broker/cluster/kubernetes-store-layout.js';
import { ordinalOfHostname } from '../../broker/options.js';
import { BROKER_RULES } from '../../operator/builders/role.js';
import { KUBERNETES_COORDINATION_STORE_RBAC_RULES } from '../../broker/cluster/kubernetes-coordination-store.js';
import { BrokerProcess } from '../utils/broker-process.js';
import { ControlPlane, controlPlaneBinary } from '../utils/control-plane.js';
import { until } from '../../testkit/until.js';

// A BrokerCluster's objects applied to a real kube-apiserver with the controller-manager:
// the StatefulSet controller creates the pods (in a namespace that enforces Pod Security
// restricted) and their volume claims, re-applying is a no-op, hand edits are undone,
// and deleting the BrokerCluster garbage-collects every child but the volumes. Then the
// broker container's own command line runs a real broker process (built in dist/).

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const NS = `bc-objects-${process.pid}`;

let cp: ControlPlane | undefined;
let objects: KubernetesObjectApi;
let core: CoreV1Api;
let apps: AppsV1Api;
let custom: CustomObjectsApi;
let cluster: BrokerCluster;

async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s${last === undefined ? '' : ` (last error: ${String(last)})`}\n${cp?.logs() ?? ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function ref(o: KubernetesObject): string {
  return `${o.kind}/${o.metadata!.name}`;
}

describe('a BrokerCluster\'s objects in a real API server', () => {
  beforeAll(async () => {
    cp = await ControlPlane.start({ controllerManager: true });
    objects = KubernetesObjectApi.makeApiClient(cp.kubeConfig);
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
    apps = cp.kubeConfig.makeApiClient(AppsV1Api);
    custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    await run(controlPlaneBinary('kubectl'), ['apply', '--server-side', '--field-manager=kmq-test', '-f', path.join(root, 'crds'), '--kubeconfig', cp.kubeconfigPath]);
    const ext = cp.kubeConfig.makeApiClient(ApiextensionsV1Api);
    await eventually('the BrokerCluster CRD is Established', 30_000, async () => {
      const crd = await ext.readCustomResourceDefinition({ name: 'brokerclusters.kmq.dev' });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
    });
    await core.createNamespace({
      body: { metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } } },
    });
    // The example of examples/kubernetes, in a namespace of its own.
    const example = parse(fs.readFileSync(path.join(root, 'examples', 'kubernetes', 'broker-cluster.yaml'), 'utf8')) as BrokerCluster;
    example.metadata.namespace = NS;
    await custom.createNamespacedCustomObject({ group: 'kmq.dev', version: 'v1alpha1', namespace: NS, plural: 'brokerclusters', body: example });
    cluster = (await custom.getNamespacedCustomObject({ group: 'kmq.dev', version: 'v1alpha1', namespace: NS, plural: 'brokerclusters', name: example.metadata.name! })) as BrokerCluster;
  }, 180_000);

  afterAll(async () => {
    await cp?.stop();
  });

  it('are created by server-side apply', async () => {
    expect(cluster.spec.replicas).toBe(3);
    for (const o of buildBrokerClusterObjects(cluster)) {
      const r = await applyObject(objects, o);
      expect(r, ref(o)).toMatchObject({ created: true, changed: true });
      expect(r.object.metadata?.managedFields?.some((f) => f.manager === 'kmq-operator' && f.operation === 'Apply'), ref(o)).toBe(true);
    }
    const sts = await apps.readNamespacedStatefulSet({ namespace: NS, name: 'main-broker' });
    expect(sts.spec?.replicas).toBe(3);
    expect(sts.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage).toBe('20Gi');
    expect(sts.spec?.template.spec?.containers[0]?.resources).toEqual({ requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '2Gi' } });
    expect(sts.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'BrokerCluster', name: 'main', uid: cluster.metadata.uid, controller: true, blockOwnerDeletion: true });
    const headless = await core.readNamespacedService({ namespace: NS, name: 'main-broker' });
    expect(headless.spec?.clusterIP).toBe('None');
    const client = await core.readNamespacedService({ namespace: NS, name: 'main-client' });
    expect(client.spec?.clusterIP).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });

  it('applying again changes nothing', async () => {
    // After the controller-manager has written the StatefulSet's status, too.
    await eventually('the StatefulSet status is observed', 30_000, async () => {
      const sts = await apps.readNamespacedStatefulSet({ namespace: NS, name: 'main-broker' });
      return sts.status?.observedGeneration === sts.metadata?.generation ? true : undefined;
    });
    for (const o of buildBrokerClusterObjects(cluster)) {
      const before = await readObject(objects, o);
      const r = await applyObject(objects, o);
      expect(r, ref(o)).toMatchObject({ created: false, changed: false });
      expect(r.object.metadata?.resourceVersion, ref(o)).toBe(before?.metadata?.resourceVersion);
    }
  });

  it('the StatefulSet controller creates the pods, restricted-compliant, and their volume claims', async () => {
    const pods = await eventually('three broker pods', 60_000, async () => {
      const list = await core.listNamespacedPod({ namespace: NS, labelSelector: 'app.kubernetes.io/instance=main,app.kubernetes.io/component=broker' });
      return list.items.length === 3 ? list.items : undefined;
    });
    expect(pods.map((p) => p.metadata?.name).sort()).toEqual(['main-broker-0', 'main-broker-1', 'main-broker-2']);
    for (const p of pods) {
      // The pod's hostname is its name: --node-id-from-hostname makes its ordinal the broker id.
      expect(p.spec?.hostname).toBe(p.metadata!.name);
      expect(String(ordinalOfHostname(p.spec!.hostname!))).toBe(p.metadata!.name!.split('-').at(-1));
      expect(p.spec?.subdomain).toBe('main-broker');
      expect(p.spec?.serviceAccountName).toBe('main-broker');
      expect(p.spec?.volumes?.find((v) => v.name === 'data')?.persistentVolumeClaim?.claimName).toBe(`data-${p.metadata!.name}`);
    }
    const claims = await eventually('three volume claims', 30_000, async () => {
      const list = await core.listNamespacedPersistentVolumeClaim({ namespace: NS });
      return list.items.length === 3 ? list.items : undefined;
    });
    expect(claims.map((c) => c.metadata?.name).sort()).toEqual(['data-main-broker-0', 'data-main-broker-1', 'data-main-broker-2']);
    for (const c of claims) expect(c.spec?.resources?.requests?.storage).toBe('20Gi');
  });

  it('the pod template passes Pod Security restricted; a non-compliant one is refused in the same namespace', async () => {
    const sts = await apps.readNamespacedStatefulSet({ namespace: NS, name: 'main-broker' });
    const pod: V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'template-check', namespace: NS, labels: sts.spec!.template.metadata!.labels! },
      spec: { ...sts.spec!.template.spec!, volumes: [...(sts.spec!.template.spec!.volumes ?? []), { name: 'data', emptyDir: {} }] },
    };
    await core.createNamespacedPod({ namespace: NS, body: pod, dryRun: 'All' });

    const loose = structuredClone(pod);
    delete loose.spec!.containers[0]!.securityContext!.capabilities;
    delete loose.spec!.containers[0]!.securityContext!.allowPrivilegeEscalation;
    const refused = await core.createNamespacedPod({ namespace: NS, body: loose, dryRun: 'All' }).then(
      () => '',
      (err: unknown) => (JSON.parse(String((err as { body?: unknown }).body)) as { message: string }).message,
    );
    expect(refused).toContain('violates PodSecurity "restricted:latest"');
    expect(refused).toContain('allowPrivilegeEscalation != false');
  });

  it('a hand edit of the StatefulSet is undone by applying, a deleted Service is created again', async () => {
    await apps.patchNamespacedStatefulSet(
      { namespace: NS, name: 'main-broker', body: [{ op: 'replace', path: '/spec/replicas', value: 1 }], fieldManager: 'kubectl-edit' },
    );
    expect((await apps.readNamespacedStatefulSet({ namespace: NS, name: 'main-broker' })).spec?.replicas).toBe(1);
    await core.deleteNamespacedService({ namespace: NS, name: 'main-client' });

    const changed: string[] = [];
    for (const o of buildBrokerClusterObjects(cluster)) {
      const r = await applyObject(objects, o);
      if (r.changed) changed.push(`${ref(o)}${r.created ? ' (created)' : ''}`);
    }
    expect(changed).toEqual(['Service/main-client (created)', 'StatefulSet/main-broker']);
    expect((await apps.readNamespacedStatefulSet({ namespace: NS, name: 'main-broker' })).spec?.replicas).toBe(3);
  });

  it('deleting the BrokerCluster garbage-collects every child; the volume claims stay with the messages', async () => {
    await custom.deleteNamespacedCustomObject({ group: 'kmq.dev', version: 'v1alpha1', namespace: NS, plural: 'brokerclusters', name: 'main' });
    const built = buildBrokerClusterObjects(cluster);
    // The garbage collector learns of the BrokerCluster kind at its next discovery (every 30 s).
    await eventually('every child is gone', 100_000, async () => {
      for (const o of built) if ((await readObject(objects, o)) !== undefined) return undefined;
      const pods = await core.listNamespacedPod({ namespace: NS });
      return pods.items.length === 0 ? true : undefined;
    });
    const claims = await core.listNamespacedPersistentVolumeClaim({ namespace: NS });
    expect(claims.items.map((c) => c.metadata?.name).sort()).toEqual(['data-main-broker-0', 'data-main-broker-1', 'data-main-broker-2']);
  }, 120_000);
});

describe('the broker container\'s command', () => {
  let plane: ControlPlane | undefined;
  beforeAll(async () => {
    plane = await ControlPlane.start();
    await plane.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'shop' } } });
  }, 120_000);
  afterAll(async () => {
    await plane?.stop();
  });

  it('runs a real broker with the settings of spec.config, the pod\'s ordinal as broker id, the kubernetes cluster store in the pod\'s namespace, and probes that answer', async () => {
    const bc: BrokerCluster = {
      apiVersion: 'kmq.dev/v1alpha1',
      kind: 'BrokerCluster',
      metadata: { name: 'main', namespace: 'shop', uid: 'u' },
      spec: { config: { flush: 'interval', flushInterval: '2s', retention: { time: '12h', bytes: '1Gi' }, maxMessageBytes: '2Mi', dedupeWindow: '5m', defaultReplicationFactor: 1, minInSyncReplicas: 1 } },
    };
    const container = buildStatefulSet(bc).spec!.template.spec!.containers[0]!;
    expect(container.command).toEqual(['kmq', 'broker']);
    // As the kubelet expands them for pod main-broker-2 (whose hostname gives broker id 2);
    // BrokerProcess sets the data folder, a free port and the loopback host, and the HTTP
    // port follows the port. The downward API's POD_NAMESPACE is the pod's namespace; outside
    // a pod the store reaches the API server through KUBECONFIG.
    expect(container.args).toContain('--node-id-from-hostname');
    expect(container.env).toContainEqual({ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } });
    const args = container
      .args!.map((a) => (a === '--node-id-from-hostname' ? '--node-id=2' : a.replace('$(POD_NAME)', 'main-broker-2')))
      .filter((a) => !/^--(data|port|host|http-port)=/.test(a));
    expect(args).toContain('--cluster-store=kubernetes');
    const broker = await BrokerProcess.start({ args, env: { POD_NAMESPACE: 'shop', KUBECONFIG: plane!.kubeconfigPath } });
    const client = new KmqClient({ brokers: [broker.address] });
    try {
      for (const [path, status] of [['/healthz', 200], ['/readyz', 200]] as const) {
        const probe = container[path === '/healthz' ? 'livenessProbe' : 'readinessProbe']!.httpGet!;
        expect(probe.path).toBe(path);
        expect((await fetch(`http://127.0.0.1:${broker.httpPort}${probe.path}`)).status).toBe(status);
      }
      const admin = client.admin();
      await admin.createTopic('defaults', { partitions: 1 });
      const d = await admin.describeTopic('defaults');
      expect(d.topic.partitions[0]!.leader).toBe(2);
      expect(d.topic.partitions[0]!.replicas).toEqual([2]);
      // A cluster of one on the store: broker 2 registered and controls it, in the ConfigMap named by the BrokerCluster.
      // On a loaded machine the controller lease can lapse and be taken again: metadata then names
      // no controller for a moment, so wait for broker 2 to hold it.
      const md = await until('broker 2 is the controller', 30_000, async () => {
        const m = await admin.describeCluster();
        return m.controllerId === 2 ? m : undefined;
      });
      expect(md.brokers.map((b) => [b.id, b.host])).toEqual([[2, 'main-broker-2.main-broker.shop.svc']]);
      expect(md.controllerId).toBe(2);
      const cm = await plane!.kubeConfig.makeApiClient(CoreV1Api).readNamespacedConfigMap({ namespace: 'shop', name: configMapNameFor('/kmq/main/') });
      expect(Object.keys(cm.data ?? {}).length).toBeGreaterThan(0);
      expect(d.config).toMatchObject({ retentionMs: 12 * 3_600_000, retentionBytes: 1024 ** 3, maxMessageBytes: 2 * 1024 ** 2 });
    } finally {
      await client.close();
      await broker.cleanup();
    }
  });
});

describe('the brokers\' Role', () => {
  it('grants exactly what the kubernetes coordination store lists as its RBAC (operator/ cannot import broker/, so the rules are kept twice)', () => {
    expect(BROKER_RULES).toEqual(KUBERNETES_COORDINATION_STORE_RBAC_RULES);
  });
});
