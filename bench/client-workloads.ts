/**
 * The client side of the benchmark workloads. Each function runs inside its own
 * worker process (see worker.ts), talks to the broker through the public client
 * API only, and returns its figures.
 */
import { randomBytes } from 'node:crypto';
import { KmqClient } from '../client/index.js';
import type { ProducerRecord } from '../client/index.js';
import type { ConsumeConfig, E2eConsumeConfig, E2eProduceConfig, E2eProduceResult, LatencyResult, ProduceConfig, ThroughputResult } from './bench-config.js';
import { wallClockMs } from './bench-config.js';
import { cpuSince, latencySummary } from './measure.js';


/**
 * Max-rate produce. One value buffer is reused by every record (as Kafka's
 * producer-perf-test does): the client copies it into the batch anyway.
 * `callsInFlight` lanes each keep one send() of `callSize` records pending.
 */
export async function produceMaxRate(c: ProduceConfig): Promise<ThroughputResult> {
  const client = new KmqClient({ brokers: c.broker.split(','), clientId: 'bench-producer' });
  try {
    const producer = client.producer({ ...c.producer, maxRequestBytes: Math.max(c.producer.batchSizeBytes, 1024 * 1024) });
    const value = randomBytes(c.recordBytes);
    const full: ProducerRecord[] = [];
    for (let i = 0; i < Math.min(c.callSize, c.records); i++) full.push({ value });
    // Connection, metadata and producer id outside the measured interval.
    await producer.send(c.topic, [{ value }]);

    let queued = 0;
    const lane = async (): Promise<void> => {
      while (queued < c.records) {
        const n = Math.min(c.callSize, c.records - queued);
        queued += n;
        await producer.send(c.topic, n === full.length ? full : full.slice(0, n));
      }
    };
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    const lanes: Array<Promise<void>> = [];
    for (let i = 0; i < c.callsInFlight; i++) lanes.push(lane());
    await Promise.all(lanes);
    const elapsedMs = performance.now() - t0;
    const used = cpuSince(cpu);
    await producer.close();
    return { records: c.records, bytes: c.records * c.recordBytes, elapsedMs, ...used };
  } finally {
    await client.close();
  }
}

/** Catch-up read from offset 0 of every partition until `records` records were handed to the application. */
export async function consumeCatchUp(c: ConsumeConfig): Promise<ThroughputResult> {
  const client = new KmqClient({ brokers: c.broker.split(','), clientId: 'bench-consumer' });
  try {
    const assignment = [];
    for (let p = 0; p < c.partitions; p++) assignment.push({ topic: c.topic, partition: p, offset: 0 });
    const consumer = client.consumer({ assignment, autoCommit: false });
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    let records = 0;
    let bytes = 0;
    for await (const b of consumer.batches()) {
      const rs = b.records;
      for (let i = 0; i < rs.length; i++) bytes += rs[i]!.value?.length ?? 0;
      records += rs.length;
      if (records >= c.records) break;
    }
    const elapsedMs = performance.now() - t0;
    const used = cpuSince(cpu);
    await consumer.close();
    return { records, bytes, elapsedMs, ...used };
  } finally {
    await client.close();
  }
}

/**
 * Fixed-rate producer: every millisecond it sends the records due by then, each
 * value starting with its wall-clock send time (float64, ms), so the consumer
 * process can measure end-to-end latency. Exactly ratePerSec × durationMs / 1000 records.
 */
export async function produceFixedRate(c: E2eProduceConfig): Promise<E2eProduceResult> {
  const client = new KmqClient({ brokers: c.broker.split(','), clientId: 'bench-e2e-producer' });
  try {
    const producer = client.producer({ ...c.producer, maxRequestBytes: Math.max(c.producer.batchSizeBytes, 1024 * 1024) });
    const total = Math.round((c.ratePerSec * c.durationMs) / 1000);
    const filler = randomBytes(c.recordBytes);
    // Warm-up record: too short to carry a send time, so the consumer skips it.
    await producer.send(c.topic, [{ value: Buffer.alloc(0) }]);
    let failure: unknown;
    const pending = new Set<Promise<unknown>>();
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    let sent = 0;
    let maxLag = 0;
    while (sent < total && failure === undefined) {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - t0) * c.ratePerSec) / 1000));
      if (due > sent) {
        // How late the oldest due record is: the send loop's own lag.
        const lag = now - t0 - ((sent + 1) * 1000) / c.ratePerSec;
        if (lag > maxLag) maxLag = lag;
        const batch: ProducerRecord[] = new Array<ProducerRecord>(due - sent);
        for (let i = 0; i < batch.length; i++) {
          const value = Buffer.allocUnsafe(c.recordBytes);
          filler.copy(value, 8, 8);
          value.writeDoubleLE(wallClockMs(), 0);
          batch[i] = { value };
        }
        sent = due;
        const p = producer.send(c.topic, batch).catch((err: unknown) => {
          failure = err;
        });
        pending.add(p);
        void p.finally(() => pending.delete(p));
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await Promise.all(pending);
    if (failure !== undefined) throw failure;
    const elapsedMs = performance.now() - t0;
    const used = cpuSince(cpu);
    await producer.close();
    return { records: sent, elapsedMs, maxScheduleLagMs: maxLag, ...used };
  } finally {
    await client.close();
  }
}


/**
 * The e2e consumer: reads from offset 0 (it is ready before the producer starts),
 * latency = receive wall clock − send wall clock written in the value. `onReady`
 * is called once the consumer has its partitions.
 */
export async function consumeLatency(c: E2eConsumeConfig, onReady: () => void): Promise<LatencyResult> {
  const client = new KmqClient({ brokers: c.broker.split(','), clientId: 'bench-e2e-consumer' });
  try {
    const assignment = [];
    for (let p = 0; p < c.partitions; p++) assignment.push({ topic: c.topic, partition: p, offset: 0 });
    const consumer = client.consumer({ assignment, autoCommit: false, maxWaitMs: 500 });
    await consumer.start();
    onReady();
    const latencies = new Float64Array(c.records);
    let measured = 0;
    let records = 0;
    let firstSend = -1;
    let t0 = -1;
    let cpu = process.cpuUsage();
    const deadline = setTimeout(() => void consumer.close(), c.timeoutMs);
    for await (const b of consumer.batches()) {
      const now = wallClockMs();
      for (const r of b.records) {
        const v = r.value;
        if (v === null || v.length < 8) continue;
        const sentAt = v.readDoubleLE(0);
        if (firstSend < 0) {
          firstSend = sentAt;
          t0 = performance.now();
          cpu = process.cpuUsage();
        }
        records++;
        if (sentAt - firstSend >= c.warmupMs && measured < latencies.length) latencies[measured++] = now - sentAt;
      }
      if (records >= c.records) break;
    }
    clearTimeout(deadline);
    const elapsedMs = t0 < 0 ? 0 : performance.now() - t0;
    const used = cpuSince(cpu);
    await consumer.close();
    return {
      records,
      measured,
      elapsedMs,
      ...latencySummary(latencies, measured),
      ...used,
    };
  } finally {
    await client.close();
  }
}
