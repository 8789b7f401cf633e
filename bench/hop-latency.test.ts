import { describe, expect, it } from 'vitest';
import { hopSink, hopSource } from './hop-latency.js';
import type { HopKind } from './hop-latency.js';

describe('hop latency floor', () => {
  for (const kind of ['tcp', 'grpc'] as HopKind[]) {
    it(`times every message over one ${kind} hop, warm-up left out`, async () => {
      let listening!: (port: number) => void;
      const port = new Promise<number>((resolve) => (listening = resolve));
      const sink = hopSink({ kind, messages: 300, messageBytes: 100, warmupMessages: 50, timeoutMs: 20_000 }, listening);
      const sent = await hopSource({ kind, port: await port, messages: 300, messageBytes: 100, ratePerSec: 2_000 });
      const r = await sink;
      expect(sent.messages).toBe(300);
      expect(r.records).toBe(300);
      expect(r.measured).toBe(250);
      expect(r.p50Ms).toBeGreaterThan(0);
      expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms);
      expect(r.maxMs).toBeGreaterThanOrEqual(r.p99Ms);
      // Sent at 2,000/s: 300 messages take at least 0.1 s from the first to the last.
      expect(r.elapsedMs).toBeGreaterThan(100);
    });
  }
});
