import { createHash } from 'node:crypto';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { EnvVar } from '../../lib/env.js';
import type { BrokerCluster } from '../api/v1alpha1/index.js';
import { BROKER_DATA_DIR, BROKER_HTTP_PORT, BROKER_PORT, bootstrapAddress, brokerClusterNames, childMeta } from './meta.js';

/** Log level of the broker pods. */
export const BROKER_LOG_LEVEL = 'info';

/**
 * The broker settings that kmq reads from the environment (lib/env.ts), which the broker
 * container takes whole with `envFrom`: data folder, ports, log level, and the cluster's
 * own address for `kmq` commands run in a broker pod. Settings that have a flag only
 * (spec.config) are flags of the container's command.
 */
export function buildConfigMap(bc: BrokerCluster): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: childMeta(bc, brokerClusterNames(bc).config),
    data: {
      [EnvVar.broker]: bootstrapAddress(bc),
      [EnvVar.dataDir]: BROKER_DATA_DIR,
      [EnvVar.httpPort]: String(BROKER_HTTP_PORT),
      [EnvVar.logLevel]: BROKER_LOG_LEVEL,
      [EnvVar.port]: String(BROKER_PORT),
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
