import { describe, expect, it } from 'vitest';
import { BrokerClientPool, serviceAddress } from './broker-clients.js';

describe('BrokerClientPool', () => {
  it('the default address is the BrokerCluster\'s client Service', () => {
    expect(serviceAddress({ namespace: 'shop', name: 'main' })).toBe('main-client.shop.svc:9092');
  });

  it('keeps one client per BrokerCluster and replaces it when the address changes', async () => {
    let port = 1;
    const asked: string[] = [];
    const pool = new BrokerClientPool({
      resolveAddress: ({ namespace, name }) => {
        asked.push(`${namespace}/${name}`);
        return `127.0.0.1:${port}`;
      },
    });
    const a = pool.client({ namespace: 'shop', name: 'main' });
    expect(pool.client({ namespace: 'shop', name: 'main' })).toBe(a);
    const other = pool.client({ namespace: 'eu', name: 'main' });
    expect(other).not.toBe(a);
    port = 2;
    const b = pool.client({ namespace: 'shop', name: 'main' });
    expect(b).not.toBe(a);
    expect(asked).toContain('eu/main');
    await pool.close();
    expect(() => pool.client({ namespace: 'shop', name: 'main' })).toThrow('closed');
  });
});
