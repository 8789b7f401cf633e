import { describe, expect, it } from 'vitest';
import type { BrokerCluster } from '../api/v1alpha1/index.js';
import { BROKER_DATA_DIR, DEFAULT_BROKER_IMAGE } from './meta.js';
import { BROKER_UID, CONFIG_DIGEST_ANNOTATION, buildStatefulSet } from './stateful-set.js';

function cluster(spec: BrokerCluster['spec'] = {}): BrokerCluster {
  return { apiVersion: 'kmq.dev/v1alpha1', kind: 'BrokerCluster', metadata: { name: 'main', namespace: 'shop', uid: 'uid-1', generation: 1 }, spec };
}

const full: BrokerCluster['spec'] = {
  replicas: 3,
  image: 'registry.example/kmq:1.2.3',
  imagePullPolicy: 'Always',
  storage: { size: '20Gi', storageClassName: 'fast' },
  resources: { requests: { memory: '1Gi', cpu: '500m' }, limits: { memory: '2Gi' } },
  config: { flush: 'interval', flushInterval: '2s', retention: { time: '7d', bytes: '1Gi' }, maxMessageBytes: '2Mi', dedupeWindow: '5m', defaultReplicationFactor: 3, minInSyncReplicas: 2 },
  nodeSelector: { 'kubernetes.io/os': 'linux', disk: 'ssd' },
  priorityClassName: 'kmq-brokers',
};

describe('buildStatefulSet', () => {
  it('names, replicas, service and selector', () => {
    const sts = buildStatefulSet(cluster(full));
    expect(sts.apiVersion).toBe('apps/v1');
    expect(sts.kind).toBe('StatefulSet');
    expect(sts.metadata).toMatchObject({ name: 'main-broker', namespace: 'shop' });
    expect(sts.spec!.replicas).toBe(3);
    expect(sts.spec!.serviceName).toBe('main-broker');
    expect(sts.spec!.selector).toEqual({ matchLabels: { 'app.kubernetes.io/name': 'kmq', 'app.kubernetes.io/instance': 'main', 'app.kubernetes.io/component': 'broker' } });
    expect(sts.spec!.template.metadata!.labels).toMatchObject(sts.spec!.selector.matchLabels!);
    expect(sts.spec!.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: 'Retain', whenScaled: 'Retain' });
  });

  it('defaults: one replica, the default image, a 10Gi volume of the default class', () => {
    const sts = buildStatefulSet(cluster());
    expect(sts.spec!.replicas).toBe(1);
    const c = sts.spec!.template.spec!.containers[0]!;
    expect(c.image).toBe(DEFAULT_BROKER_IMAGE);
    expect(c.imagePullPolicy).toBe('IfNotPresent');
    expect(c.resources).toBeUndefined();
    expect(sts.spec!.volumeClaimTemplates![0]!.spec).toEqual({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } });
    expect(sts.spec!.template.spec!.nodeSelector).toBeUndefined();
    expect(sts.spec!.template.spec!.priorityClassName).toBeUndefined();
  });

  it('volumeClaimTemplates from spec.storage; the data volume is the --data folder', () => {
    const sts = buildStatefulSet(cluster(full));
    expect(sts.spec!.volumeClaimTemplates).toEqual([
      {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'data', labels: expect.objectContaining({ 'app.kubernetes.io/instance': 'main' }) as unknown },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'fast', resources: { requests: { storage: '20Gi' } } },
      },
    ]);
    expect(buildStatefulSet(cluster({ storage: { size: 1073741824 } })).spec!.volumeClaimTemplates![0]!.spec!.resources!.requests).toEqual({ storage: '1073741824' });
    const c = sts.spec!.template.spec!.containers[0]!;
    expect(c.volumeMounts).toContainEqual({ name: 'data', mountPath: BROKER_DATA_DIR });
  });

  it('runs kmq broker with its real flags: data folder on the volume, ports, broker id and address from the pod, the kubernetes cluster store, settings from spec.config; env from the ConfigMap', () => {
    const c = buildStatefulSet(cluster(full)).spec!.template.spec!.containers[0]!;
    expect(c.command).toEqual(['kmq', 'broker']);
    expect(c.args).toEqual([
      '--data=/var/lib/kmq',
      '--host=0.0.0.0',
      '--port=9092',
      '--http-port=9093',
      '--node-id-from-hostname',
      '--advertised-host=$(POD_NAME).main-broker.shop.svc',
      '--cluster-store=kubernetes',
      '--cluster-name=main',
      '--flush=interval',
      '--flush-interval-ms=2000',
      '--retention-ms=604800000',
      '--retention-bytes=1073741824',
      '--max-message-bytes=2097152',
      '--dedupe-window-ms=300000',
      '--default-replication-factor=3',
      '--min-insync-replicas=2',
    ]);
    expect(c.envFrom).toEqual([{ configMapRef: { name: 'main-broker-config' } }]);
    // The store's namespace is the pod's own, from the downward API.
    expect(c.env).toEqual([
      { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
    ]);
    expect(c.image).toBe('registry.example/kmq:1.2.3');
    expect(c.imagePullPolicy).toBe('Always');
  });

  it('ports and probes: /healthz for liveness and start-up, /readyz for readiness, on the HTTP port', () => {
    const c = buildStatefulSet(cluster()).spec!.template.spec!.containers[0]!;
    expect(c.ports).toEqual([
      { name: 'broker', containerPort: 9092, protocol: 'TCP' },
      { name: 'http', containerPort: 9093, protocol: 'TCP' },
    ]);
    expect(c.livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 'http', scheme: 'HTTP' });
    expect(c.startupProbe!.httpGet).toEqual({ path: '/healthz', port: 'http', scheme: 'HTTP' });
    expect(c.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 'http', scheme: 'HTTP' });
  });

  it('is Pod Security restricted: non-root, no escalation, ALL capabilities dropped, RuntimeDefault seccomp, read-only root', () => {
    const pod = buildStatefulSet(cluster()).spec!.template.spec!;
    expect(pod.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: BROKER_UID,
      runAsGroup: BROKER_UID,
      fsGroup: BROKER_UID,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const c = pod.containers[0]!;
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: BROKER_UID,
      runAsGroup: BROKER_UID,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    // Writable: the data volume and an emptyDir /tmp; no hostPath or other volume types.
    expect(pod.volumes).toEqual([{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }]);
    expect(c.volumeMounts!.map((m) => m.mountPath)).toEqual([BROKER_DATA_DIR, '/tmp']);
    expect(pod.hostNetwork).toBeUndefined();
  });

  it('resources, node selector, priority class, service account, grace period and anti-affinity from the spec', () => {
    const pod = buildStatefulSet(cluster(full)).spec!.template.spec!;
    expect(pod.containers[0]!.resources).toEqual({ requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '2Gi' } });
    expect(pod.nodeSelector).toEqual({ disk: 'ssd', 'kubernetes.io/os': 'linux' });
    expect(pod.priorityClassName).toBe('kmq-brokers');
    expect(pod.serviceAccountName).toBe('main-broker');
    expect(pod.terminationGracePeriodSeconds).toBe(60);
    expect(pod.affinity!.podAntiAffinity!.requiredDuringSchedulingIgnoredDuringExecution).toBeUndefined();
    expect(pod.affinity!.podAntiAffinity!.preferredDuringSchedulingIgnoredDuringExecution).toEqual([
      { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'kmq', 'app.kubernetes.io/instance': 'main', 'app.kubernetes.io/component': 'broker' } } } },
    ]);
  });

  it('numeric resource quantities become strings', () => {
    const c = buildStatefulSet(cluster({ resources: { requests: { cpu: 2 } } })).spec!.template.spec!.containers[0]!;
    expect(c.resources).toEqual({ requests: { cpu: '2' } });
  });

  it('a settings change changes the args; the config digest follows the ConfigMap', () => {
    const a = buildStatefulSet(cluster({ config: { flush: 'none' } }));
    const b = buildStatefulSet(cluster({ config: { flush: 'every-batch' } }));
    expect(a.spec!.template.spec!.containers[0]!.args).not.toEqual(b.spec!.template.spec!.containers[0]!.args);
    const digest = a.spec!.template.metadata!.annotations![CONFIG_DIGEST_ANNOTATION];
    expect(digest).toMatch(/^[0-9a-f]{16}$/);
    expect(b.spec!.template.metadata!.annotations![CONFIG_DIGEST_ANNOTATION]).toBe(digest);
    const other = { ...cluster(), metadata: { name: 'main', namespace: 'billing', uid: 'uid-1' } };
    expect(buildStatefulSet(other).spec!.template.metadata!.annotations![CONFIG_DIGEST_ANNOTATION]).not.toBe(digest);
  });
});
