/**
 * Worker roles of the sidecar workload: an app publishing through the sidecar's
 * PublishStream and an app receiving through its Consume stream, acking every
 * delivery. Every payload starts with its wall-clock send time (float64 LE, ms)
 * so the consumer measures end-to-end latency app → sidecar → broker → sidecar → app.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import { SidecarClient } from '../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import type { ConsumeResponse, Delivery, PublishRequest, PublishStreamResponse } from '../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import type { LatencyResult, SidecarConsumeConfig, SidecarPublishConfig, SidecarPublishResult } from './bench-config.js';
import { cpuSince, latencySummary } from './measure.js';

const wallClockMs = (): number => performance.timeOrigin + performance.now();


/**
 * Publishes `messages` payloads to a topic on one PublishStream, at most `inFlight`
 * unanswered; with `ratePerSec`, each message goes when due (checked every 1 ms)
 * instead of as fast as the window allows.
 */
export async function sidecarPublish(c: SidecarPublishConfig): Promise<SidecarPublishResult> {
  const app = new SidecarClient(c.sidecar, credentials.createInsecure());
  try {
    const call = app.publishStream();
    const filler = randomBytes(c.messageBytes);
    const destination = { topic: c.topic };
    let answered = 0;
    let errors = 0;
    let sent = 0;
    let maxLag = 0;
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    const ended = new Promise<void>((resolve) => {
      call.on('data', (r: PublishStreamResponse) => {
        if (r.results.length > 0) {
          answered += r.results.length;
          for (const x of r.results) if (x.error !== undefined) errors++;
        } else {
          answered++;
          if (r.error !== undefined) errors++;
        }
        const w = wake;
        wake = undefined;
        w?.();
      });
      call.on('error', (err: Error) => {
        failure = err;
        wake?.();
        resolve();
      });
      call.on('end', () => resolve());
    });
    const message = (): PublishRequest => {
      const payload = Buffer.allocUnsafe(c.messageBytes);
      filler.copy(payload, 8, 8);
      payload.writeDoubleLE(wallClockMs(), 0);
      return { destination, payload, headers: {} };
    };
    /** Sends up to `n` (at least 1) messages: one request, or one batch request. */
    const sendUpTo = (n: number): void => {
      if (c.batch === 0) {
        call.write({ id: sent++, message: message() });
        return;
      }
      const entries = [];
      for (let i = 0; i < Math.min(n, c.batch); i++) entries.push({ id: sent++, message: message() });
      call.write({ id: 0, batch: { entries } });
    };
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    const firstPublishAt = wallClockMs();
    while (sent < c.messages && failure === undefined) {
      if (c.ratePerSec !== undefined) {
        const now = performance.now();
        const due = Math.min(c.messages, Math.floor(((now - t0) * c.ratePerSec) / 1000));
        if (due > sent) {
          const lag = now - t0 - ((sent + 1) * 1000) / c.ratePerSec;
          if (lag > maxLag) maxLag = lag;
        }
        while (sent < due && sent - answered < c.inFlight) sendUpTo(Math.min(due - sent, c.inFlight - (sent - answered)));
        await new Promise((resolve) => setTimeout(resolve, 1));
      } else {
        while (sent < c.messages && sent - answered < c.inFlight) sendUpTo(Math.min(c.messages - sent, c.inFlight - (sent - answered)));
        // Let the stream flush and answers arrive before filling the window again.
        if (sent < c.messages) await new Promise<void>((resolve) => (wake = resolve));
      }
    }
    while (answered < sent && failure === undefined) await new Promise<void>((resolve) => (wake = resolve));
    const elapsedMs = performance.now() - t0;
    const used = cpuSince(cpu);
    call.end();
    await ended;
    if (failure !== undefined) throw failure;
    return { messages: answered, errors, elapsedMs, firstPublishAt, maxScheduleLagMs: maxLag, ...used };
  } finally {
    app.close();
  }
}

/**
 * Reads `messages` deliveries from a subscription on one Consume stream, acking
 * each as it arrives; latency = receive wall clock − send time in the payload, for
 * messages sent `warmupMs` after the first one. `onReady` once the stream started.
 */
export async function sidecarConsume(c: SidecarConsumeConfig, onReady: () => void): Promise<LatencyResult & { lastAckAt: number; redeliveries: number }> {
  const app = new SidecarClient(c.sidecar, credentials.createInsecure());
  try {
    const call = app.consume();
    const latencies = new Float64Array(c.messages);
    let measured = 0;
    let records = 0;
    let redeliveries = 0;
    let firstSend = -1;
    let t0 = -1;
    let cpu = process.cpuUsage();
    let lastAckAt = 0;
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => {
        call.cancel();
        reject(new Error(`sidecar consume: ${records} of ${c.messages} deliveries in ${c.timeoutMs} ms`));
      }, c.timeoutMs);
      const onDelivery = (d: Delivery, now: number): void => {
        if (d.attempt > 1) redeliveries++;
        const v = d.payload;
        if (v.length < 8) return;
        const sentAt = v.readDoubleLE(0);
        if (firstSend < 0) {
          firstSend = sentAt;
          t0 = performance.now();
          cpu = process.cpuUsage();
        }
        records++;
        if (sentAt - firstSend >= c.warmupMs && measured < latencies.length) latencies[measured++] = now - sentAt;
        if (records >= c.messages) {
          lastAckAt = wallClockMs();
          clearTimeout(deadline);
          resolve();
        }
      };
      call.on('data', (r: ConsumeResponse) => {
        if (r.started !== undefined) {
          onReady();
          return;
        }
        const now = wallClockMs();
        if (r.deliveries !== undefined) {
          const ds = r.deliveries.deliveries;
          call.write({ acks: { deliveryIds: ds.map((d) => d.deliveryId) } });
          for (const d of ds) onDelivery(d, now);
          return;
        }
        const d = r.delivery;
        if (d === undefined) return;
        call.write({ ack: { deliveryId: d.deliveryId } });
        onDelivery(d, now);
      });
      call.on('error', (err: Error) => {
        clearTimeout(deadline);
        reject(err);
      });
      call.write({ start: { subscription: c.subscription, maxInFlight: c.maxInFlight, maxBatch: c.maxBatch } });
    });
    const elapsedMs = performance.now() - t0;
    const used = cpuSince(cpu);
    // Half-close, then give the sidecar a moment to take the last acks before the channel goes.
    call.end();
    await new Promise((resolve) => setTimeout(resolve, 200));
    call.cancel();
    return {
      records,
      measured,
      elapsedMs,
      ...latencySummary(latencies, measured),
      lastAckAt,
      redeliveries,
      ...used,
    };
  } finally {
    app.close();
  }
}
