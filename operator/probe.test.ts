import { describe, expect, it } from 'vitest';
import { OperatorProbe } from './probe.js';
import { Controller } from './runtime/controller.js';

describe('OperatorProbe', () => {
  it('renders reconciles and errors per controller from their stats, the leader flag and reconcile durations', async () => {
    const probe = new OperatorProbe({ defaultMetrics: false });
    const reconcile = probe.timed('topic', async (key) => {
      if (key === 'bad') throw new Error('boom');
    });
    const topic = new Controller({ name: 'topic', reconcile });
    probe.controllerAdded(topic);
    Object.defineProperty(topic, 'stats', { get: () => ({ reconciles: 7, failures: 2 }) });
    await reconcile('ns/a', new AbortController().signal);
    await expect(reconcile('bad', new AbortController().signal)).rejects.toThrow('boom');
    probe.leadershipChanged(true);
    const text = await probe.registry.metrics();
    expect(text).toContain('kmq_operator_reconciles_total{controller="topic"} 7');
    expect(text).toContain('kmq_operator_reconcile_errors_total{controller="topic"} 2');
    expect(text).toContain('kmq_operator_queue_depth{controller="topic"} 0');
    expect(text).toContain('kmq_operator_leader 1');
    expect(text).toContain('kmq_operator_reconcile_seconds_count{controller="topic"} 2');
    probe.leadershipChanged(false);
    expect(await probe.registry.metrics()).toContain('kmq_operator_leader 0');
  });
});
