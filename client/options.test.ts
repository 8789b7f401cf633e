import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../lib/errors.js';
import { compileConsumerOptions } from './consumer-options.js';
import { DEFAULT_BROKER_PORT, compileClientOptions, defaultBrokers, parseBrokerAddress } from './options.js';
import { compileProducerOptions } from './producer-options.js';

function settingError(fn: () => unknown): KmqError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KmqError);
    expect((err as KmqError).code).toBe(ErrorCode.InvalidConfig);
    return err as KmqError;
  }
  throw new Error('expected an InvalidConfig error');
}

describe('parseBrokerAddress', () => {
  it('parses host:port, bare hosts and IPv6', () => {
    expect(parseBrokerAddress('broker-0.kmq:9093')).toEqual({ host: 'broker-0.kmq', port: 9093 });
    expect(parseBrokerAddress('localhost')).toEqual({ host: 'localhost', port: DEFAULT_BROKER_PORT });
    expect(parseBrokerAddress('[::1]:7000')).toEqual({ host: '::1', port: 7000 });
    expect(parseBrokerAddress('[::1]')).toEqual({ host: '::1', port: 9092 });
  });

  it('refuses bad ports and empty hosts', () => {
    for (const bad of ['h:0', 'h:65536', 'h:abc', ':9092', '[::1', 'h:']) {
      expect(settingError(() => parseBrokerAddress(bad)).message).toContain('brokers');
    }
  });
});

describe('defaultBrokers', () => {
  it('reads KMQ_BROKER, else 127.0.0.1:9092', () => {
    expect(defaultBrokers({ KMQ_BROKER: 'a:1, b:2' })).toEqual(['a:1', 'b:2']);
    expect(defaultBrokers({})).toEqual(['127.0.0.1:9092']);
  });
});

describe('compileClientOptions', () => {
  it('fills every default', () => {
    const o = compileClientOptions({}, {});
    expect(o.brokers).toEqual([{ host: '127.0.0.1', port: 9092 }]);
    expect(o.clientId).toBe('kmq-client');
    expect(o.requestTimeoutMs).toBe(30_000);
    expect(o.retry).toEqual({ retries: 5, initialMs: 100, maxMs: 5_000, multiplier: 2, jitter: 0.2 });
  });

  it('names the bad setting', () => {
    expect(settingError(() => compileClientOptions({ requestTimeoutMs: 0 })).message).toContain('requestTimeoutMs');
    expect(settingError(() => compileClientOptions({ connectTimeoutMs: 1.5 })).message).toContain('connectTimeoutMs');
    expect(settingError(() => compileClientOptions({ brokers: [] })).message).toContain('brokers');
    expect(settingError(() => compileClientOptions({ retry: { multiplier: 0.5 } })).message).toContain('retry.multiplier');
    expect(settingError(() => compileClientOptions({ retry: { initialMs: 500, maxMs: 100 } })).message).toContain('retry.maxMs');
    expect(settingError(() => compileClientOptions({ clientId: '' })).context.setting).toBe('clientId');
  });
});

describe('compileProducerOptions', () => {
  it('defaults to idempotent acks leader with 5 ms linger and 256 KiB batches', () => {
    expect(compileProducerOptions({})).toMatchObject({ acks: 'leader', idempotent: true, lingerMs: 5, batchSizeBytes: 256 * 1024, maxInFlightPerPartition: 5 });
    expect(compileProducerOptions({ acks: 'none' }).idempotent).toBe(false);
  });

  it('names the bad setting', () => {
    expect(settingError(() => compileProducerOptions({ acks: 'some' as never })).message).toContain('producer.acks');
    expect(settingError(() => compileProducerOptions({ acks: 'none', idempotent: true })).message).toContain('producer.idempotent');
    expect(settingError(() => compileProducerOptions({ batchSizeBytes: 4 << 20, maxRequestBytes: 1 << 20 })).message).toContain('producer.batchSizeBytes');
    expect(settingError(() => compileProducerOptions({ lingerMs: -1 })).message).toContain('producer.lingerMs');
  });
});

describe('compileConsumerOptions', () => {
  it('fills defaults: latest, auto-commit only with a group, 500 ms long poll', () => {
    expect(compileConsumerOptions({ groupId: 'g', topics: ['t'] })).toMatchObject({ fromBeginning: false, autoCommit: true, autoCommitIntervalMs: 1_000, maxWaitMs: 500, sessionTimeoutMs: 10_000, resetOnOutOfRange: true });
    expect(compileConsumerOptions({ topics: ['t'] }).autoCommit).toBe(false);
  });

  it('names the bad setting', () => {
    expect(settingError(() => compileConsumerOptions({})).message).toContain('consumer.topics');
    expect(settingError(() => compileConsumerOptions({ topics: ['t'], autoCommit: true })).message).toContain('consumer.autoCommit');
    expect(settingError(() => compileConsumerOptions({ topics: ['t'], assignment: [{ topic: 't', partition: 0 }] })).message).toContain('consumer.assignment');
    expect(settingError(() => compileConsumerOptions({ assignment: [{ topic: 't', partition: -1 }] })).message).toContain('consumer.assignment[0].partition');
    expect(settingError(() => compileConsumerOptions({ topics: ['t'], maxWaitMs: 1e9 })).message).toContain('consumer.maxWaitMs');
  });
});
