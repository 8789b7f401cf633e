import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compileSidecarOptions, loadSidecarOptions } from './config.js';
import type { SidecarOptions } from './config.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function file(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-sidecar-config-'));
  dirs.push(dir);
  const f = path.join(dir, 'sidecar.yaml');
  fs.writeFileSync(f, text);
  return f;
}

const compile = (o: SidecarOptions): ReturnType<typeof compileSidecarOptions> => compileSidecarOptions(o, {});

describe('compileSidecarOptions', () => {
  it('fills every default: loopback, port 50051, 1 MiB payloads, no subscriptions', () => {
    const c = compile({});
    expect(c).toMatchObject({ brokers: ['127.0.0.1:9092'], namespace: 'default', host: '127.0.0.1', port: 50051, appPort: 0, maxPayloadBytes: 1024 * 1024, maxPublishDelayMs: 60_000 });
    expect(c.subscriptions.size).toBe(0);
    expect(compileSidecarOptions({}, { KMQ_BROKER: 'b1:1,b2:2' }).brokers).toEqual(['b1:1', 'b2:2']);
  });

  it('compiles subscriptions: mode from the source, dead-letter topic, retry policy', () => {
    const c = compile({
      subscriptions: [
        { name: 'billing', topic: 'orders', retryPolicy: { maxAttempts: 3, initialBackoffMs: '1s' } },
        { name: 'emails', queue: 'emails', maxInFlight: 10 },
        { name: 'audit', topic: 'orders', mode: 'shared', startFrom: 'latest' },
      ],
    });
    expect(c.subscriptions.get('billing')).toMatchObject({ source: { kind: 'topic', name: 'orders' }, mode: 'ordered', maxInFlight: 100, startFrom: 'earliest', deadLetterTopic: 'billing.dlq' });
    expect(c.subscriptions.get('billing')!.retryPolicy).toMatchObject({ maxAttempts: 3, initialBackoffMs: 1000 });
    expect(c.subscriptions.get('emails')).toMatchObject({ source: { kind: 'queue', name: 'emails' }, mode: 'shared', maxInFlight: 10 });
    expect(c.subscriptions.get('audit')).toMatchObject({ mode: 'shared', startFrom: 'latest' });
  });

  it('compiles delivery settings: guarantee, idempotency header, DLQ policy, push port, commits, shutdown and metrics', () => {
    const c = compile({
      port: 6000,
      appPort: 8080,
      shutdownGraceMs: '3s',
      subscriptions: [
        { name: 'billing', topic: 'orders', guarantee: 'effectively-once', idempotencyKeyHeader: 'order-id', delivery: { push: {} }, commit: { maxCount: 10, intervalMs: '250ms' } },
        { name: 'audit', topic: 'orders', dlqPolicy: { maxAttempts: 4, backoff: { initial: '100ms', max: '2s', multiplier: 3, jitter: 0.1 }, handlerTimeoutMs: '5s' }, delivery: { push: { port: 9000 } } },
        { name: 'emails', queue: 'emails' },
      ],
    });
    expect(c).toMatchObject({ shutdownGraceMs: 3000, metricsPort: 6001 });
    expect(c.subscriptions.get('billing')).toMatchObject({ guarantee: 'effectively-once', idempotencyKeyHeader: 'order-id', pushPort: 8080, commitMaxCount: 10, commitIntervalMs: 250, processedKeyTtlMs: 86_400_000 });
    expect(c.subscriptions.get('audit')).toMatchObject({ guarantee: 'at-least-once', idempotencyKeyHeader: 'x-kmq-idempotency-key', pushPort: 9000, commitMaxCount: 1000, commitIntervalMs: 1000 });
    expect(c.subscriptions.get('audit')!.retryPolicy).toMatchObject({ maxAttempts: 4, initialBackoffMs: 100, maxBackoffMs: 2000, multiplier: 3, jitter: 0.1, handlerTimeoutMs: 5000 });
    expect(c.subscriptions.get('emails')!.pushPort).toBeUndefined();
    expect(compile({}).shutdownGraceMs).toBe(10_000);
    expect(compile({}).metricsPort).toBe(50052);
    expect(compile({ port: 0 }).metricsPort).toBe(0);
  });

  it('compiles retry: in place by default, or through a retry topic named after the subscription', () => {
    const c = compile({
      subscriptions: [
        { name: 'billing', topic: 'orders' },
        { name: 'audit', topic: 'orders', retry: { mode: 'topic' } },
        { name: 'ship', topic: 'orders', retry: { mode: 'topic', topic: 'ship-later' }, deadLetterTopic: 'ship-dead' },
        { name: 'plain', topic: 'orders', retry: { mode: 'in-place' } },
        { name: 'emails', queue: 'emails' },
      ],
    });
    expect(c.subscriptions.get('billing')!.retry).toEqual({ mode: 'in-place' });
    expect(c.subscriptions.get('audit')!.retry).toEqual({ mode: 'topic', topic: 'audit.retry', group: 'audit.retry' });
    expect(c.subscriptions.get('ship')!.retry).toEqual({ mode: 'topic', topic: 'ship-later', group: 'ship.retry' });
    expect(c.subscriptions.get('plain')!.retry).toEqual({ mode: 'in-place' });
    expect(c.subscriptions.get('emails')!.retry).toEqual({ mode: 'in-place' });
    expect(compile({ subscriptions: [{ name: 'a', topic: 't', retry: {} }] }).subscriptions.get('a')!.retry).toEqual({ mode: 'in-place' });
  });

  it('names the bad retry setting', () => {
    const bad: Array<[SidecarOptions, string]> = [
      [{ subscriptions: [{ name: 'a', queue: 'q', retry: { mode: 'topic' } }] }, 'Invalid option subscriptions[0] (a).retry: applies to ordered subscriptions; a shared subscription or a queue retries by releasing the message with a delay'],
      [{ subscriptions: [{ name: 'a', topic: 't', mode: 'shared', retry: { mode: 'in-place' } }] }, 'Invalid option subscriptions[0] (a).retry: applies to ordered subscriptions'],
      [{ subscriptions: [{ name: 'a', topic: 't', retry: { mode: 'later' as 'topic' } }] }, 'Invalid option subscriptions[0] (a).retry.mode: must be one of in-place, topic'],
      [{ subscriptions: [{ name: 'a', topic: 't', retry: { mode: 'in-place', topic: 'r' } }] }, "Invalid option subscriptions[0] (a).retry.topic: applies to retry.mode 'topic'"],
      [{ subscriptions: [{ name: 'a', topic: 't', retry: { topic: 'r' } }] }, "Invalid option subscriptions[0] (a).retry.topic: applies to retry.mode 'topic'"],
      [{ subscriptions: [{ name: 'a', topic: 't', retry: { mode: 'topic', topic: 'no spaces' } }] }, 'Invalid option subscriptions[0] (a).retry.topic: must be 1-200 letters'],
      [{ subscriptions: [{ name: 'a', topic: 't', retry: { mode: 'topic', topic: 't' } }] }, 'Invalid option subscriptions[0] (a).retry.topic: must differ from the topic consumed'],
      [{ subscriptions: [{ name: 'a', topic: 't', retry: { mode: 'topic', topic: 'a.dlq' } }] }, 'Invalid option subscriptions[0] (a).retry.topic: must differ from the dead-letter topic'],
      [{ subscriptions: [{ name: 'a', topic: 't', retry: { mode: 'topic', delayMs: 5 } as never }] }, 'Invalid option subscriptions[0] (a).retry.delayMs: is not a setting'],
      [{ subscriptions: [{ name: 'a', topic: 't', retry: 'topic' as never }] }, 'Invalid option subscriptions[0] (a).retry: must be an object'],
      [
        { subscriptions: [{ name: 'a', topic: 't', retry: { mode: 'topic' } }, { name: 'a.retry', topic: 't' }] },
        'Invalid option subscriptions[0] (a).retry.mode: needs the consumer group "a.retry" for its retry topic, and a subscription has that name',
      ],
    ];
    for (const [o, message] of bad) expect(() => compile(o), JSON.stringify(o)).toThrow(message);
  });

  it('names the bad setting', () => {
    const bad: Array<[SidecarOptions, string]> = [
      [{ port: 70000 }, 'Invalid option port: must be an integer in [0, 65535] (got 70000)'],
      [{ broker: 'host:x' }, 'Invalid option broker'],
      [{ maxPayloadBytes: '1 parsec' }, 'maxPayloadBytes: "1 parsec" is not a size'],
      [{ prot: 1 } as SidecarOptions, 'Invalid option prot: is not a setting'],
      [{ subscriptions: [{ name: 'a b', topic: 't' }] }, 'Invalid option subscriptions[0].name: must be 1-200 letters'],
      [{ subscriptions: [{ name: 'a' }] }, 'Invalid option subscriptions[0] (a).topic: give exactly one of topic and queue'],
      [{ subscriptions: [{ name: 'a', topic: 't', queue: 'q' }] }, 'subscriptions[0] (a).topic: give exactly one of topic and queue'],
      [{ subscriptions: [{ name: 'a', queue: 'q', mode: 'ordered' }] }, "Invalid option subscriptions[0] (a).mode: a queue is always consumed 'shared'"],
      [{ subscriptions: [{ name: 'a', topic: 't', mode: 'fifo' as 'ordered' }] }, 'Invalid option subscriptions[0] (a).mode: must be one of ordered, shared'],
      [{ subscriptions: [{ name: 'a', topic: 't', maxInFlight: 0 }] }, 'Invalid option subscriptions[0] (a).maxInFlight'],
      [{ subscriptions: [{ name: 'a', topic: 't', retryPolicy: { maxAttempts: 0 } }] }, 'subscriptions[0] (a).retryPolicy.maxAttempts'],
      [{ subscriptions: [{ name: 'a', topic: 't', retries: 3 } as never] }, 'Invalid option subscriptions[0].retries: is not a setting'],
      [{ subscriptions: [{ name: 'a', topic: 't' }, { name: 'a', queue: 'q' }] }, 'Invalid option subscriptions[1].name: is used by an earlier subscription'],
      [{ subscriptions: [{ name: 'a', topic: 't', guarantee: 'exactly-once' as 'at-least-once' }] }, 'Invalid option subscriptions[0] (a).guarantee: must be one of at-most-once, at-least-once, effectively-once'],
      [{ subscriptions: [{ name: 'a', topic: 't', delivery: { push: {} } }] }, "subscriptions[0] (a).delivery.push.port: is required (the app's AppCallback port), or set appPort"],
      [{ subscriptions: [{ name: 'a', topic: 't', delivery: { pull: {} } as never }] }, 'subscriptions[0] (a).delivery.pull: is not a setting'],
      [{ subscriptions: [{ name: 'a', topic: 't', dlqPolicy: { backoff: { initial: '1 week' } } }] }, 'subscriptions[0] (a).dlqPolicy.initialBackoffMs'],
      [{ subscriptions: [{ name: 'a', topic: 't', dlqPolicy: { backoff: { start: 1 } as never } }] }, 'subscriptions[0] (a).dlqPolicy.backoff.start: is not a setting'],
      [{ subscriptions: [{ name: 'a', topic: 't', dlqPolicy: {}, retryPolicy: {} }] }, 'subscriptions[0] (a).dlqPolicy: give one of retryPolicy and dlqPolicy'],
      [{ subscriptions: [{ name: 'a', topic: 't', commit: { maxCount: 0 } }] }, 'subscriptions[0] (a).commit.maxCount'],
      [{ shutdownGraceMs: 'soon' }, 'shutdownGraceMs'],
      [{ metricsPort: -1 }, 'Invalid option metricsPort'],
    ];
    for (const [o, message] of bad) expect(() => compile(o), JSON.stringify(o)).toThrow(message);
  });
});

describe('loadSidecarOptions', () => {
  it('reads a YAML file, then lets KMQ_SIDECAR_* and KMQ_BROKER override it', () => {
    const f = file('broker: file:1\nport: 6000\nnamespace: shop\nsubscriptions:\n  - {name: billing, topic: orders}\n');
    expect(loadSidecarOptions(f, {})).toEqual({ broker: 'file:1', port: 6000, namespace: 'shop', subscriptions: [{ name: 'billing', topic: 'orders' }] });
    const env = { KMQ_SIDECAR_CONFIG: f, KMQ_BROKER: 'env:2', KMQ_SIDECAR_PORT: '7000', KMQ_SIDECAR_HOST: '0.0.0.0', KMQ_SIDECAR_MAX_PAYLOAD_BYTES: '2MiB', KMQ_SIDECAR_SUBSCRIPTIONS: '[{"name": "emails", "queue": "emails"}]' };
    const c = compileSidecarOptions(loadSidecarOptions(undefined, env), env);
    expect(c).toMatchObject({ brokers: ['env:2'], port: 7000, host: '0.0.0.0', namespace: 'shop', maxPayloadBytes: 2 * 1024 * 1024 });
    expect([...c.subscriptions.keys()]).toEqual(['emails']);
  });

  it('reports an unreadable or malformed file and bad variables by name', () => {
    expect(() => loadSidecarOptions('/nonexistent/sidecar.yaml', {})).toThrow('Cannot read the sidecar config file /nonexistent/sidecar.yaml');
    expect(() => loadSidecarOptions(file('port: [1'), {})).toThrow('is not valid YAML');
    expect(() => loadSidecarOptions(file('- 1\n- 2\n'), {})).toThrow('must be a mapping of sidecar settings');
    expect(() => loadSidecarOptions(undefined, { KMQ_SIDECAR_PORT: 'http' })).toThrow('Invalid option KMQ_SIDECAR_PORT: must be an integer port (got "http")');
    expect(() => loadSidecarOptions(undefined, { KMQ_SIDECAR_SUBSCRIPTIONS: 'name: a' })).toThrow('Invalid option KMQ_SIDECAR_SUBSCRIPTIONS: must be a list of subscriptions');
  });
});
