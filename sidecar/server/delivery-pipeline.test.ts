import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../lib/logger.js';
import { compileSidecarOptions } from '../config.js';
import type { SubscriptionConfig } from '../config.js';
import { MemoryProcessedKeyStore } from '../delivery/idempotency.js';
import type { Delivery } from '../gen/kmq/sidecar/v1/sidecar.js';
import { SidecarProbe } from '../metrics.js';
import { DeliveryPipeline } from './delivery-pipeline.js';
import type { AppTransport } from './delivery-pipeline.js';
import type { OutboundDelivery, SettleResult, Settlement } from './delivery-source.js';

type Message = Omit<Delivery, 'deliveryId'>;

/** What happened, in order: source settlements and app calls. */
type Event = string;

function setup(config: Partial<SubscriptionConfig>): { pipeline: DeliveryPipeline; probe: SidecarProbe; store: MemoryProcessedKeyStore } {
  const sub = compileSidecarOptions({ subscriptions: [{ name: 's', topic: 't', ...config }] }, {}).subscriptions.get('s')!;
  const probe = new SidecarProbe();
  const store = new MemoryProcessedKeyStore();
  return { pipeline: new DeliveryPipeline(sub, probe.subscription('s'), store, 'test', silentLogger()), probe, store };
}

function message(payload: string, headers: Record<string, string> = {}): Message {
  return { payload: Buffer.from(payload), key: undefined, headers, attempt: 1, source: { topic: 't', partition: 0, offset: 0 }, timestampMs: 0, idempotencyKey: '' };
}

/** A delivery that records its settlement in `events`; the source answers `result`. */
function delivery(events: Event[], m: Message, result: SettleResult = 'acked'): OutboundDelivery & { settled: Promise<Settlement> } {
  let resolve!: (s: Settlement) => void;
  const settled = new Promise<Settlement>((r) => (resolve = r));
  return {
    message: m,
    settled,
    settle: (s: Settlement) => {
      events.push(`settle ${m.payload.toString()} ${s.kind}`);
      resolve(s);
      return Promise.resolve(s.kind === 'ack' ? 'acked' : result);
    },
  };
}

async function counter(probe: SidecarProbe, name: string): Promise<number> {
  const m = (await probe.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values as Array<{ value: number }> | undefined)?.reduce((a, v) => a + v.value, 0) ?? 0;
}

/** A transport over an async app function. */
const viaPromise =
  (f: (m: Message) => Promise<Settlement | undefined>): AppTransport =>
  (m, answer) =>
    void f(m).then(answer);

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

describe('DeliveryPipeline', () => {
  it('at-least-once: hands the message to the app, then settles the source with its answer', async () => {
    const { pipeline, probe } = setup({});
    const events: Event[] = [];
    const app = viaPromise(async (m) => {
      events.push(`app ${m.payload.toString()}`);
      return { kind: 'retry', delayMs: undefined };
    });
    const d = delivery(events, message('a'), 'retried');
    pipeline.handle(d, app);
    expect(await d.settled).toEqual({ kind: 'retry', delayMs: undefined });
    await tick();
    expect(events).toEqual(['app a', 'settle a retry']);
    expect(await counter(probe, 'kmq_sidecar_retried_total')).toBe(1);
    expect(await counter(probe, 'kmq_sidecar_delivered_total')).toBe(1);
  });

  it('at-most-once: acks before the app sees the message, drops the app’s answer, and keeps maxInFlight', async () => {
    const { pipeline } = setup({ guarantee: 'at-most-once', maxInFlight: 2 });
    const events: Event[] = [];
    const answers: Array<() => void> = [];
    const app = viaPromise((m) => {
      events.push(`app ${m.payload.toString()}`);
      return new Promise((resolve) => answers.push(() => resolve({ kind: 'failure', timeout: false, reason: 'boom' })));
    });
    for (const p of ['a', 'b', 'c']) pipeline.handle(delivery(events, message(p)), app);
    await tick();
    expect(events).toEqual(['settle a ack', 'settle b ack', 'settle c ack', 'app a', 'app b']);
    answers.shift()!();
    await tick();
    expect(events.slice(5)).toEqual(['app c']);
    for (const a of answers) a();
    await tick();
    expect(events).toHaveLength(6);
    expect(pipeline.inFlight).toBe(0);
  });

  it('effectively-once: a processed key is acked without reaching the app; a failure releases the key', async () => {
    const { pipeline, probe, store } = setup({ guarantee: 'effectively-once', idempotencyKeyHeader: 'order-id' });
    const events: Event[] = [];
    let fail = true;
    const app = viaPromise(async (m) => {
      events.push(`app ${m.payload.toString()}`);
      if (fail) {
        fail = false;
        return { kind: 'failure', timeout: true, reason: 'handler timeout' };
      }
      return { kind: 'ack' };
    });
    const first = delivery(events, message('k1#1', { 'order-id': 'k1' }), 'retried');
    pipeline.handle(first, app);
    expect((await first.settled).kind).toBe('failure');
    await tick();
    expect(store.peek('k1')).toBeUndefined();
    for (const p of ['k1#2', 'k1#3']) {
      const d = delivery(events, message(p, { 'order-id': 'k1' }));
      pipeline.handle(d, app);
      await d.settled;
      await tick();
    }
    expect(events).toEqual(['app k1#1', 'settle k1#1 failure', 'app k1#2', 'settle k1#2 ack', 'settle k1#3 ack']);
    expect(store.peek('k1')?.state).toBe('processed');
    expect(await counter(probe, 'kmq_sidecar_duplicates_skipped_total')).toBe(1);
    expect(await counter(probe, 'kmq_sidecar_acked_total')).toBe(2);
  });

  it('drain: takes nothing new, waits for the app, and gives up after the grace period', async () => {
    const { pipeline } = setup({});
    const events: Event[] = [];
    let answer!: () => void;
    const app = viaPromise((m) => {
      events.push(`app ${m.payload.toString()}`);
      return new Promise((resolve) => (answer = () => resolve({ kind: 'ack' })));
    });
    pipeline.handle(delivery(events, message('a')), app);
    await tick();
    const drained = pipeline.drain(5_000);
    pipeline.handle(delivery(events, message('b')), app);
    answer();
    expect(await drained).toBe(true);
    expect(events).toEqual(['app a', 'settle a ack']);

    const { pipeline: stuck } = setup({});
    stuck.handle(delivery([], message('c')), () => {});
    expect(await stuck.drain(20)).toBe(false);
  });
});
