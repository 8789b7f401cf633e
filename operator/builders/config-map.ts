import { createHash } from 'node:crypto';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { EnvVar } from '../../lib/env.js';
import type { BrokerCluster } from '../api/v1alpha1/index.js';
import { bootstrapAddress, brokerClusterNames, childMeta } from './meta.js';

/** Log level of the broker pods. */
export const BROKER_LOG_LEVEL = 'info';

/**
 * The settings of the broker pods that kmq reads from the environment (lib/env.ts),
 * taken whole with `envFrom`: the log level, and the cluster's own address for `kmq`
 * commands run in a broker pod. The data folder, the ports and spec.config are flags of
 * the container's command, beside the volume mount, ports and probes they must match.
 */
export function buildConfigMap(bc: BrokerCluster): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: childMeta(bc, brokerClusterNames(bc).config),
    data: {
      [EnvVar.broker]: bootstrapAddress(bc),
      [EnvVar.logLevel]: BROKER_LOG_LEVEL,
    },
  };
}

/** A digest of a ConfigMap's data; in the pod template, a change of the settings rolls the brokers. */
export function configDigest(cm: V1ConfigMap): string {
  const data = cm.data ?? {};
  const text = Object.keys(data)
    .sort()
    .map((k) => `${k}=${data[k]}`)
    .join('\n');
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
