import { describe, expect, it } from 'vitest';
import { brokerSettingFlags, quantityBytes } from './broker-settings.js';

describe('quantityBytes', () => {
  it('reads integers and binary and decimal quantities', () => {
    expect(quantityBytes(4096, 's')).toBe(4096);
    expect(quantityBytes('4096', 's')).toBe(4096);
    expect(quantityBytes('512Ki', 's')).toBe(512 * 1024);
    expect(quantityBytes('64Mi', 's')).toBe(64 * 1024 ** 2);
    expect(quantityBytes('20Gi', 's')).toBe(20 * 1024 ** 3);
    expect(quantityBytes('1Ti', 's')).toBe(1024 ** 4);
    expect(quantityBytes('1k', 's')).toBe(1000);
    expect(quantityBytes('2G', 's')).toBe(2e9);
  });

  it('refuses what the CRD refuses, naming the setting', () => {
    expect(() => quantityBytes('1.5Gi', 'config.maxMessageBytes')).toThrow(/config\.maxMessageBytes.*1\.5Gi/);
    expect(() => quantityBytes('1MiB', 's')).toThrow(/not a byte quantity/);
  });
});

describe('brokerSettingFlags', () => {
  it('no settings, no flags: the broker\'s defaults apply', () => {
    expect(brokerSettingFlags()).toEqual([]);
    expect(brokerSettingFlags({})).toEqual([]);
  });

  it('each setting becomes the flag of kmq broker, in milliseconds and bytes', () => {
    expect(brokerSettingFlags({ flush: 'none' })).toEqual(['--flush=none']);
    expect(brokerSettingFlags({ flush: 'interval', flushInterval: '250ms' })).toEqual(['--flush=interval', '--flush-interval-ms=250']);
    expect(brokerSettingFlags({ retention: { time: '12h', bytes: 1000 } })).toEqual(['--retention-ms=43200000', '--retention-bytes=1000']);
    expect(brokerSettingFlags({ maxMessageBytes: '1Mi' })).toEqual(['--max-message-bytes=1048576']);
    expect(brokerSettingFlags({ dedupeWindow: '0s' })).toEqual(['--dedupe-window-ms=0']);
    expect(brokerSettingFlags({ defaultReplicationFactor: 3, minInSyncReplicas: 2 })).toEqual(['--default-replication-factor=3', '--min-insync-replicas=2']);
  });

  it('unlimited retention is -1', () => {
    expect(brokerSettingFlags({ retention: { time: 'unlimited', bytes: 'unlimited' } })).toEqual(['--retention-ms=-1', '--retention-bytes=-1']);
  });
});
