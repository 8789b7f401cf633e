import type { V1Container, V1PersistentVolumeClaim, V1PodSpec, V1ResourceRequirements, V1StatefulSet } from '@kubernetes/client-node';
import type { BrokerCluster, ContainerResources } from '../api/v1alpha1/index.js';
import { brokerSettingFlags } from './broker-settings.js';
import { buildConfigMap, configDigest } from './config-map.js';
import { BROKER_DATA_DIR, BROKER_HTTP_PORT, BROKER_PORT, brokerClusterNames, brokerImage, brokerLabels, childMeta, namespaceOf, selectorLabels } from './meta.js';

/** The user and group the broker runs as; the data volume is made writable for the group. */
export const BROKER_UID = 10001;
/** Time a broker has after SIGTERM to flush and close its segments before it is killed. */
export const BROKER_TERMINATION_GRACE_SECONDS = 60;
/** The pod template annotation carrying the digest of the ConfigMap's settings. */
export const CONFIG_DIGEST_ANNOTATION = 'kmq.dev/config-digest';
/** Volume size when spec.storage names none (the CRD's default). */
export const DEFAULT_STORAGE_SIZE = '10Gi';

const DATA_VOLUME = 'data';
const TMP_VOLUME = 'tmp';

/** Quantities as strings, keys sorted: the same spec always gives the same object. */
function resources(r: ContainerResources | undefined): V1ResourceRequirements | undefined {
  if (r === undefined) return undefined;
  const quantities = (m: Record<string, number | string> | undefined): Record<string, string> | undefined =>
    m === undefined ? undefined : Object.fromEntries(Object.keys(m).sort().map((k) => [k, String(m[k])]));
  const out: V1ResourceRequirements = {};
  const requests = quantities(r.requests);
  const limits = quantities(r.limits);
  if (limits !== undefined) out.limits = limits;
  if (requests !== undefined) out.requests = requests;
  return out;
}

function volumeClaimTemplate(bc: BrokerCluster): V1PersistentVolumeClaim {
  const storage = bc.spec.storage ?? {};
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: DATA_VOLUME, labels: brokerLabels(bc) },
    spec: {
      accessModes: ['ReadWriteOnce'],
      ...(storage.storageClassName === undefined ? {} : { storageClassName: storage.storageClassName }),
      resources: { requests: { storage: String(storage.size ?? DEFAULT_STORAGE_SIZE) } },
    },
  };
}

function brokerContainer(bc: BrokerCluster): V1Container {
  const names = brokerClusterNames(bc);
  const container: V1Container = {
    name: 'broker',
    image: brokerImage(bc),
    imagePullPolicy: bc.spec.imagePullPolicy ?? 'IfNotPresent',
    command: ['kmq', 'broker'],
    // Kubernetes expands $(POD_NAME) from the env below.
    args: [
      `--data=${BROKER_DATA_DIR}`,
      '--host=0.0.0.0',
      `--port=${BROKER_PORT}`,
      `--http-port=${BROKER_HTTP_PORT}`,
      // The pod's hostname is its name, `<name>-broker-<ordinal>`: the ordinal is the broker id.
      '--node-id-from-hostname',
      `--advertised-host=$(POD_NAME).${names.broker}.${namespaceOf(bc)}.svc`,
      // The brokers are one cluster through a ConfigMap and Leases in their namespace (POD_NAMESPACE).
      '--cluster-store=kubernetes',
      `--cluster-name=${bc.metadata.name}`,
      ...brokerSettingFlags(bc.spec.config),
    ],
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
    ],
    envFrom: [{ configMapRef: { name: names.config } }],
    ports: [
      { name: 'broker', containerPort: BROKER_PORT, protocol: 'TCP' },
      { name: 'http', containerPort: BROKER_HTTP_PORT, protocol: 'TCP' },
    ],
    // Recovery of a large log on start may take minutes; liveness waits for it.
    startupProbe: { httpGet: { path: '/healthz', port: 'http', scheme: 'HTTP' }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 120, successThreshold: 1 },
    livenessProbe: { httpGet: { path: '/healthz', port: 'http', scheme: 'HTTP' }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3, successThreshold: 1 },
    readinessProbe: { httpGet: { path: '/readyz', port: 'http', scheme: 'HTTP' }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 3, successThreshold: 1 },
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: BROKER_UID,
      runAsGroup: BROKER_UID,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      { name: DATA_VOLUME, mountPath: BROKER_DATA_DIR },
      { name: TMP_VOLUME, mountPath: '/tmp' },
    ],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  const r = resources(bc.spec.resources);
  if (r !== undefined) container.resources = r;
  return container;
}

function podSpec(bc: BrokerCluster): V1PodSpec {
  const spec: V1PodSpec = {
    serviceAccountName: brokerClusterNames(bc).broker,
    automountServiceAccountToken: true,
    terminationGracePeriodSeconds: BROKER_TERMINATION_GRACE_SECONDS,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: BROKER_UID,
      runAsGroup: BROKER_UID,
      fsGroup: BROKER_UID,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    },
    // Brokers spread over nodes where they can, so one node's loss takes one replica.
    affinity: {
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selectorLabels(bc) } } },
        ],
      },
    },
    containers: [brokerContainer(bc)],
    volumes: [{ name: TMP_VOLUME, emptyDir: { sizeLimit: '64Mi' } }],
  };
  if (bc.spec.nodeSelector !== undefined) {
    const ns = bc.spec.nodeSelector;
    spec.nodeSelector = Object.fromEntries(Object.keys(ns).sort().map((k) => [k, ns[k]!]));
  }
  if (bc.spec.priorityClassName !== undefined) spec.priorityClassName = bc.spec.priorityClassName;
  return spec;
}

/**
 * The StatefulSet `<name>-broker`: one pod and one volume per broker, started in
 * parallel, rolled one at a time. Volumes outlive the StatefulSet and scale-downs:
 * deleting a cluster never destroys messages.
 */
export function buildStatefulSet(bc: BrokerCluster): V1StatefulSet {
  const names = brokerClusterNames(bc);
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: childMeta(bc, names.broker),
    spec: {
      replicas: bc.spec.replicas ?? 1,
      serviceName: names.broker,
      selector: { matchLabels: selectorLabels(bc) },
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 0 } },
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
      template: {
        metadata: { labels: brokerLabels(bc), annotations: { [CONFIG_DIGEST_ANNOTATION]: configDigest(buildConfigMap(bc)) } },
        spec: podSpec(bc),
      },
      volumeClaimTemplates: [volumeClaimTemplate(bc)],
    },
  };
}
