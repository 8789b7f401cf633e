/**
 * The client side of the comparison benchmark: the same workload code for every
 * system, through bench/peers/peer-client.ts. Each function runs in its own worker
 * process (`worker.js compare '<json>'`) and returns its figures.
 *
 * Batching rules, the same for all: the application hands the client calls of
 * values; a call goes out at once (no lingering for more) and resolves when the
 * server acknowledged all of it; a fixed number of calls is kept pending.
 */
import { randomBytes } from 'node:crypto';
import { wallClockMs } from './bench-config.js';
import type { LatencyResult, WorkerCpu } from './bench-config.js';
import { openClient } from './peers/peer-client.js';
import type { SystemId } from './peers/peer-client.js';
import { cpuSince, latencySummary } from './measure.js';

interface Target {
  system: SystemId;
  address: string;
  name: string;
}

/** Max-rate produce: `callsInFlight` calls of `callSize` values pending. */
export interface CompareProduceConfig extends Target {
  role: 'produce';
  records: number;
  recordBytes: number;
  callSize: number;
  callsInFlight: number;
  /** No new call after this long, ms: slow systems send fewer records instead of taking longer. */
  maxMs: number;
}

/** Fixed rate: every 1 ms the values due by then go as one call, each starting with its send time. */
export interface CompareE2eProduceConfig extends Target {
  role: 'e2e-produce';
  recordBytes: number;
  ratePerSec: number;
  durationMs: number;
  /** Stop sending once the send loop is this far behind its schedule, ms: the system cannot take the rate. */
  giveUpLagMs: number;
}

export interface CompareE2eConsumeConfig extends Target {
  role: 'e2e-consume';
  partitions: number;
  records: number;
  warmupMs: number;
  timeoutMs: number;
  /** Done when nothing arrived for this long after the first value, ms (the producer may have given up early). */
  idleMs: number;
}

/** Work-queue publisher: like produce, to the queue; each value starts with its sequence number (uint32 LE). */
export interface CompareQueuePublishConfig extends Target {
  role: 'queue-publish';
  messages: number;
  messageBytes: number;
  callSize: number;
  callsInFlight: number;
}

/** Work-queue consumer: acks every message as it arrives; stops on SIGUSR2 or after `idleTimeoutMs` without a message. */
export interface CompareQueueConsumeConfig extends Target {
  role: 'queue-consume';
  prefetch: number;
  messages: number;
  idleTimeoutMs: number;
}

export type CompareWorkerConfig = CompareProduceConfig | CompareE2eProduceConfig | CompareE2eConsumeConfig | CompareQueuePublishConfig | CompareQueueConsumeConfig;

export interface CompareThroughputResult extends WorkerCpu {
  records: number;
  elapsedMs: number;
  /** Wall clock of the first call, ms. */
  firstSendAt: number;
}

export interface CompareE2eProduceResult extends WorkerCpu {
  records: number;
  elapsedMs: number;
  /** Largest lag of the send loop behind its schedule, ms. */
  maxScheduleLagMs: number;
  /** True when the send loop fell more than giveUpLagMs behind and stopped. */
  gaveUp: boolean;
}

/** The same figures as the kmq-only e2e workload's. */
export type CompareLatencyResult = LatencyResult;

export interface CompareQueueConsumeResult extends WorkerCpu {
  acked: number;
  /** Deliveries whose value holds no sequence number below `messages`. */
  foreignValues: number;
  firstDeliveryAt: number;
  /** Wall clock when the last ack was handed to the client (not every client has an answer to an ack). */
  lastAckAt: number;
  /** Per sequence number, acks by this consumer (saturating bytes, base64). */
  countsBase64: string;
}

type Emit = (line: Record<string, unknown>) => void;


/** Runs one role to its result. The client is closed afterwards, at most 5 s. */
export async function runCompareRole(c: CompareWorkerConfig, emit: Emit): Promise<unknown> {
  const client = await openClient(c.system, c.address);
  try {
    switch (c.role) {
      case 'produce':
        return await produce(c, c.records, c.recordBytes, c.callSize, c.callsInFlight, c.maxMs, 'log', client, false);
      case 'queue-publish':
        return await produce(c, c.messages, c.messageBytes, c.callSize, c.callsInFlight, Infinity, 'queue', client, true);
      case 'e2e-produce':
        return await produceFixedRate(c, client);
      case 'e2e-consume':
        return await consumeLatency(c, client, emit);
      case 'queue-consume':
        return await consumeQueue(c, client, emit);
    }
  } finally {
    await Promise.race([client.close(), new Promise((r) => setTimeout(r, 5000).unref())]);
  }
}

type Client = Awaited<ReturnType<typeof openClient>>;

async function produce(t: Target, records: number, recordBytes: number, callSize: number, callsInFlight: number, maxMs: number, kind: 'log' | 'queue', client: Client, sequenced: boolean): Promise<CompareThroughputResult> {
  const send = await client.sender(t.name, kind);
  const value = randomBytes(recordBytes);
  const full: Buffer[] = new Array<Buffer>(Math.min(callSize, records)).fill(value);
  let queued = 0;
  let acked = 0;
  let deadline = Infinity;
  const lane = async (): Promise<void> => {
    while (queued < records && performance.now() < deadline) {
      const first = queued;
      const n = Math.min(callSize, records - first);
      queued += n;
      if (!sequenced) {
        await send(n === full.length ? full : full.slice(0, n));
        acked += n;
        continue;
      }
      const block = Buffer.allocUnsafe(n * recordBytes);
      const values = new Array<Buffer>(n);
      for (let i = 0; i < n; i++) {
        const at = i * recordBytes;
        value.copy(block, at);
        block.writeUInt32LE(first + i, at);
        values[i] = block.subarray(at, at + recordBytes);
      }
      await send(values);
      acked += n;
    }
  };
  const cpu = process.cpuUsage();
  const firstSendAt = wallClockMs();
  const t0 = performance.now();
  deadline = t0 + maxMs;
  const lanes: Array<Promise<void>> = [];
  for (let i = 0; i < callsInFlight; i++) lanes.push(lane());
  await Promise.all(lanes);
  return { records: acked, elapsedMs: performance.now() - t0, firstSendAt, ...cpuSince(cpu) };
}

async function produceFixedRate(c: CompareE2eProduceConfig, client: Client): Promise<CompareE2eProduceResult> {
  const send = await client.sender(c.name, 'log');
  const total = Math.round((c.ratePerSec * c.durationMs) / 1000);
  const filler = randomBytes(c.recordBytes);
  // Warm-up value: too short to carry a send time, so the consumer skips it.
  await send([Buffer.alloc(1)]);
  let failure: unknown;
  const pending = new Set<Promise<unknown>>();
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  let sent = 0;
  let maxLag = 0;
  let gaveUp = false;
  while (sent < total && failure === undefined) {
    const now = performance.now();
    // At most 10,000 values and 1 MB per call (as in produce), so a stalled loop cannot make a call larger than a server accepts (Kafka's message.max.bytes is 1 MiB).
    const due = Math.min(total, Math.floor(((now - t0) * c.ratePerSec) / 1000), sent + Math.min(10_000, Math.max(1, Math.floor(1_000_000 / c.recordBytes))));
    if (due > sent) {
      const lag = now - t0 - ((sent + 1) * 1000) / c.ratePerSec;
      if (lag > maxLag) maxLag = lag;
      if (lag > c.giveUpLagMs) {
        gaveUp = true;
        break;
      }
      const batch = new Array<Buffer>(due - sent);
      for (let i = 0; i < batch.length; i++) {
        const v = Buffer.allocUnsafe(c.recordBytes);
        filler.copy(v, 8, 8);
        v.writeDoubleLE(wallClockMs(), 0);
        batch[i] = v;
      }
      sent = due;
      const p = send(batch).catch((err: unknown) => {
        failure = err;
      });
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(pending);
  if (failure !== undefined) throw failure;
  return { records: sent, elapsedMs: performance.now() - t0, maxScheduleLagMs: maxLag, gaveUp, ...cpuSince(cpu) };
}


async function consumeLatency(c: CompareE2eConsumeConfig, client: Client, emit: Emit): Promise<CompareLatencyResult> {
  const latencies = new Float64Array(c.records);
  let measured = 0;
  let records = 0;
  let firstSend = -1;
  let t0 = -1;
  let cpu = process.cpuUsage();
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const timer = setTimeout(done, c.timeoutMs);
  let lastArrival = 0;
  const idle = setInterval(() => {
    if (lastArrival > 0 && performance.now() - lastArrival > c.idleMs) done();
  }, 100);
  await client.subscribe(c.name, c.partitions, (values) => {
    const now = wallClockMs();
    lastArrival = performance.now();
    for (const v of values) {
      if (v.length < 8) continue;
      const sentAt = v.readDoubleLE(0);
      if (firstSend < 0) {
        firstSend = sentAt;
        t0 = performance.now();
        cpu = process.cpuUsage();
      }
      records++;
      if (sentAt - firstSend >= c.warmupMs && measured < latencies.length) latencies[measured++] = now - sentAt;
    }
    if (records >= c.records) done();
  });
  emit({ event: 'ready' });
  await finished;
  clearTimeout(timer);
  clearInterval(idle);
  // Up to the last arrival: an idle stop should not count the idle time.
  const elapsedMs = t0 < 0 ? 0 : lastArrival - t0;
  const used = cpuSince(cpu);
  return {
    records,
    measured,
    elapsedMs,
    ...latencySummary(latencies, measured),
    ...used,
  };
}

async function consumeQueue(c: CompareQueueConsumeConfig, client: Client, emit: Emit): Promise<CompareQueueConsumeResult> {
  const counts = new Uint8Array(c.messages);
  let acked = 0;
  let foreign = 0;
  let firstDeliveryAt = 0;
  let lastAckAt = 0;
  let lastArrival = 0;
  let cpu0 = process.cpuUsage();
  let cpuAtLastAck: NodeJS.CpuUsage = { user: 0, system: 0 };
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  process.on('SIGUSR2', () => done());
  let ackedAtLastCpu = 0;
  const progress = setInterval(() => {
    emit({ event: 'progress', acked });
    // CPU up to the last ack, read at most every 100 ms (getrusage per message would cost more than an ack).
    if (acked !== ackedAtLastCpu) {
      ackedAtLastCpu = acked;
      cpuAtLastAck = process.cpuUsage(cpu0);
    }
    if (firstDeliveryAt > 0 && performance.now() - lastArrival > c.idleTimeoutMs) done();
  }, 100);
  await client.consumeQueue(c.name, c.prefetch, (value, ack) => {
    if (firstDeliveryAt === 0) {
      firstDeliveryAt = wallClockMs();
      cpu0 = process.cpuUsage();
    }
    lastArrival = performance.now();
    if (value.length >= 4 && value.readUInt32LE(0) < counts.length) {
      const seq = value.readUInt32LE(0);
      if (counts[seq]! < 255) counts[seq]!++;
    } else foreign++;
    ack();
    acked++;
    lastAckAt = wallClockMs();
  });
  emit({ event: 'ready' });
  await finished;
  clearInterval(progress);
  if (acked !== ackedAtLastCpu) cpuAtLastAck = process.cpuUsage(cpu0);
  emit({ event: 'progress', acked });
  return {
    acked,
    foreignValues: foreign,
    firstDeliveryAt,
    lastAckAt,
    cpuUserMs: cpuAtLastAck.user / 1000,
    cpuSystemMs: cpuAtLastAck.system / 1000,
    countsBase64: Buffer.from(counts.buffer, counts.byteOffset, counts.byteLength).toString('base64'),
  };
}
