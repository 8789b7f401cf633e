import { afterEach } from 'vitest';
import { KmqClient } from '../../client/index.js';
import { TestCluster } from '../utils/test-cluster.js';
import type { TestClusterOptions } from '../utils/test-cluster.js';

/** A fault test's cluster and clients: started by the test, closed and stopped after it. */
export interface FaultFixture {
  start(options: TestClusterOptions): Promise<TestCluster>;
  /** A client of every broker of `c`, with retries enough to ride out a failover (about the broker lease TTL); `brokers` narrows it. */
  client(c: TestCluster, brokers?: string[]): KmqClient;
  /** A client made by the test, closed with the others. */
  track(k: KmqClient): KmqClient;
}

/** Registers the cleanup (afterEach) of the file's tests; call once, at the top of a test file. */
export function faultFixture(): FaultFixture {
  let cluster: TestCluster | undefined;
  const clients: KmqClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close().catch(() => undefined);
    await cluster?.stop();
    cluster = undefined;
  });
  return {
    start: async (options) => (cluster = await TestCluster.start(options)),
    client: (c, brokers) => {
      const k = new KmqClient({ brokers: brokers ?? c.bootstrap(), requestTimeoutMs: 10_000, retry: { retries: 60, initialMs: 50, maxMs: 500 } });
      clients.push(k);
      return k;
    },
    track: (k) => {
      clients.push(k);
      return k;
    },
  };
}
