import type { V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { BrokerCluster } from '../api/v1alpha1/index.js';
import { BROKER_HTTP_PORT, BROKER_PORT, brokerClusterNames, childMeta, selectorLabels } from './meta.js';

function ports(): V1ServicePort[] {
  return [
    { name: 'broker', port: BROKER_PORT, targetPort: 'broker', protocol: 'TCP' },
    { name: 'metrics', port: BROKER_HTTP_PORT, targetPort: 'http', protocol: 'TCP' },
  ];
}

/**
 * The headless Service `<name>-broker` that gives each broker pod a stable DNS name
 * (`<name>-broker-0.<name>-broker.<namespace>.svc`). Not-ready pods are published too:
 * brokers find each other while they start.
 */
export function buildHeadlessService(bc: BrokerCluster): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMeta(bc, brokerClusterNames(bc).broker),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selectorLabels(bc),
      ports: ports(),
    },
  };
}

/** The client Service `<name>-client`: the bootstrap address of clients and sidecars, and the metrics port. */
export function buildClientService(bc: BrokerCluster): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMeta(bc, brokerClusterNames(bc).client),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(bc),
      ports: ports(),
    },
  };
}
