import type { Admin } from '../../../client/admin.js';
import { KmqClient } from '../../../client/client.js';
import type { ClientOptions } from '../../../client/options.js';
import { silentLogger } from '../../../lib/logger.js';
import type { Logger } from '../../../lib/logger.js';
import type { BrokerClusterRef } from './broker-cluster-ref.js';

/** The bootstrap address of a BrokerCluster's brokers. */
export type BrokerAddressResolver = (cluster: BrokerClusterRef) => string;

/** The client Service of a BrokerCluster: `<name>-client.<namespace>.svc:9092`. */
export const serviceAddress: BrokerAddressResolver = ({ namespace, name }) => `${name}-client.${namespace}.svc:9092`;

/** Options of a BrokerClientPool. */
export interface BrokerClientPoolOptions {
  /** Default: the cluster's client Service (serviceAddress). Tests give a local broker's address. */
  resolveAddress?: BrokerAddressResolver;
  /**
   * Options of each KmqClient (brokers aside). Default: few, short retries (2 retries,
   * 100 ms to 1 s, connect timeout 3 s, request timeout 10 s), so a reconcile against a
   * broker that is down fails fast and the controller's backoff takes over.
   */
  client?: Omit<ClientOptions, 'brokers'>;
  logger?: Logger;
}

const DEFAULT_CLIENT: Omit<ClientOptions, 'brokers'> = {
  clientId: 'kmq-operator',
  connectTimeoutMs: 3_000,
  requestTimeoutMs: 10_000,
  retry: { retries: 2, initialMs: 100, maxMs: 1_000 },
};

interface Entry {
  address: string;
  client: KmqClient;
}

/**
 * One KmqClient per BrokerCluster, created on first use and replaced when the cluster's
 * address changes. Clients connect lazily, so holding one for a broker that is down costs
 * nothing; `close()` closes them all.
 */
export class BrokerClientPool {
  private readonly clients = new Map<string, Entry>();
  private readonly resolveAddress: BrokerAddressResolver;
  private readonly clientOptions: Omit<ClientOptions, 'brokers'>;
  private readonly log: Logger;
  private closed = false;

  constructor(options: BrokerClientPoolOptions = {}) {
    this.resolveAddress = options.resolveAddress ?? serviceAddress;
    this.log = (options.logger ?? silentLogger()).child({ component: 'broker-clients' });
    this.clientOptions = { ...DEFAULT_CLIENT, logger: this.log, ...options.client };
  }

  /** The client of `cluster`'s brokers. */
  client(cluster: BrokerClusterRef): KmqClient {
    if (this.closed) throw new Error('BrokerClientPool is closed');
    const key = `${cluster.namespace}/${cluster.name}`;
    const address = this.resolveAddress(cluster);
    const entry = this.clients.get(key);
    if (entry !== undefined && entry.address === address) return entry.client;
    if (entry !== undefined) this.retire(key, entry);
    const client = new KmqClient({ ...this.clientOptions, brokers: [address] });
    this.clients.set(key, { address, client });
    this.log.debug({ cluster: key, address }, 'Broker client created');
    return client;
  }

  /** The admin API of `cluster`'s brokers. */
  admin(cluster: BrokerClusterRef): Admin {
    return this.client(cluster).admin();
  }

  /** Closes and forgets the client of a BrokerCluster that is gone. */
  async forget(cluster: BrokerClusterRef): Promise<void> {
    const key = `${cluster.namespace}/${cluster.name}`;
    const entry = this.clients.get(key);
    if (entry !== undefined) await this.retire(key, entry);
  }

  /** Closes every client; the pool cannot be used afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.clients].map(([key, entry]) => this.retire(key, entry)));
  }

  private async retire(key: string, entry: Entry): Promise<void> {
    this.clients.delete(key);
    try {
      await entry.client.close();
    } catch (err) {
      this.log.warn({ cluster: key, err }, 'Closing a broker client failed');
    }
  }
}
