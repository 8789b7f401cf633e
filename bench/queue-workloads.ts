/**
 * The client side of the queue and exchange workloads: a max-rate publisher and a
 * queue consumer that acks every delivery on its own. Each runs in its own worker
 * process (see worker.ts) and uses the public client API only. Every published value
 * starts with its sequence number, so the runner can check that each message was
 * acked exactly once. `broker` is one address or a comma-separated list (a cluster's
 * bootstrap: the client finds the queue host on its own).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { KmqClient } from '../client/index.js';
import type { Delivery, PublishMessage } from '../client/index.js';
import type { PublishConfig, PublishResult, QueueConsumeConfig, QueueConsumeResult } from './bench-config.js';
import { wallClockMs } from './bench-config.js';

/**
 * Max-rate publish: `callsInFlight` lanes each keep one publish() call pending. The
 * values of one call are subarrays of one buffer, so building a call costs one
 * allocation; the client copies them into the batch anyway.
 */
export async function publishMaxRate(c: PublishConfig): Promise<PublishResult> {
  const client = new KmqClient({ brokers: c.broker.split(','), clientId: 'bench-publisher' });
  try {
    const publisher = client.publisher();
    const filler = randomBytes(c.messageBytes);
    // Connection and metadata outside the measured interval, without publishing anything.
    await client.admin().listQueues();

    const routedCalls: Record<string, number> = {};
    let droppedCalls = 0;
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < c.messages) {
        const first = next;
        const n = Math.min(c.callSize, c.messages - first);
        next += n;
        const block = Buffer.allocUnsafe(n * c.messageBytes);
        const messages = new Array<PublishMessage>(n);
        for (let i = 0; i < n; i++) {
          const at = i * c.messageBytes;
          filler.copy(block, at);
          block.writeUInt32LE(first + i, at);
          messages[i] = { value: block.subarray(at, at + c.messageBytes) };
        }
        const res = await publisher.publish(c.target, messages);
        if (res.dropped) droppedCalls++;
        for (const r of res.routed) {
          const name = r.destination?.name ?? '?';
          routedCalls[name] = (routedCalls[name] ?? 0) + 1;
        }
      }
    };
    const cpu = process.cpuUsage();
    const firstPublishAt = wallClockMs();
    const t0 = performance.now();
    const lanes: Array<Promise<void>> = [];
    for (let i = 0; i < c.callsInFlight; i++) lanes.push(lane());
    await Promise.all(lanes);
    const elapsedMs = performance.now() - t0;
    const u = process.cpuUsage(cpu);
    return { messages: c.messages, bytes: c.messages * c.messageBytes, elapsedMs, firstPublishAt, routedCalls, droppedCalls, cpuUserMs: u.user / 1000, cpuSystemMs: u.system / 1000 };
  } finally {
    await client.close();
  }
}

/** Bytes this process has read through read(2)-like calls, sockets included (Linux: rchar of /proc/self/io); 0 elsewhere. */
function bytesRead(): number {
  try {
    return Number(/^rchar: (\d+)$/m.exec(fs.readFileSync('/proc/self/io', 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * A queue consumer that acks each delivery with `delivery.ack()` as it comes
 * (fire and forget: the client merges one turn's acks into one ShareAck request),
 * counting sequence numbers. Stops on SIGUSR2 (the runner has seen every message
 * acked) or when nothing arrived for `idleTimeoutMs` after the first delivery.
 * `onReady` is called once the consumer has started; `onProgress` every 100 ms.
 */
export async function consumeQueue(c: QueueConsumeConfig, onReady: () => void, onProgress: (acked: number) => void): Promise<QueueConsumeResult> {
  const client = new KmqClient({ brokers: c.broker.split(','), clientId: 'bench-queue-consumer' });
  try {
    let ackErrors = 0;
    const consumer = client.queueConsumer({
      queue: c.queue,
      prefetch: c.prefetch,
      mode: c.mode,
      onError: () => {
        ackErrors++;
      },
    });
    const counts = new Uint8Array(c.messages);
    let acked = 0;
    let redeliveries = 0;
    let outOfRange = 0;
    let firstDeliveryAt = 0;
    let lastAckAt = 0;
    let lastArrival = 0;
    let cpu0 = process.cpuUsage();
    let read0 = 0;
    let cpuAtLastAck: NodeJS.CpuUsage = { user: 0, system: 0 };
    const stop = (): void => void consumer.close();
    process.on('SIGUSR2', stop);
    const progress = setInterval(() => {
      onProgress(acked);
      if (firstDeliveryAt > 0 && performance.now() - lastArrival > c.idleTimeoutMs) stop();
    }, 100);
    const ackAnswered = (): void => {
      lastAckAt = wallClockMs();
      cpuAtLastAck = process.cpuUsage(cpu0);
    };
    consumer.start();
    onReady();

    for await (const d of consumer.deliveries() as AsyncIterable<Delivery>) {
      if (firstDeliveryAt === 0) {
        firstDeliveryAt = wallClockMs();
        cpu0 = process.cpuUsage();
        read0 = bytesRead();
      }
      const v = d.value;
      if (v !== null && v.length >= 4) {
        const seq = v.readUInt32LE(0);
        if (seq < counts.length) {
          if (counts[seq]! < 255) counts[seq]!++;
        } else outOfRange++;
      } else outOfRange++;
      if (d.deliveryCount > 1) redeliveries++;
      const s = d.ack();
      acked++;
      // The last delivery received so far: time the answer to its ack (one promise per turn, not per message).
      if (consumer.heldCount === 0) {
        lastArrival = performance.now();
        s.then(ackAnswered, () => undefined);
      }
    }
    clearInterval(progress);
    process.off('SIGUSR2', stop);
    await consumer.close();
    const bytesReceived = bytesRead() - read0;
    onProgress(acked);
    return {
      acked,
      ackErrors,
      redeliveries,
      foreignValues: outOfRange,
      bytesReceived,
      firstDeliveryAt,
      lastAckAt,
      cpuUserMs: cpuAtLastAck.user / 1000,
      cpuSystemMs: cpuAtLastAck.system / 1000,
      countsBase64: Buffer.from(counts.buffer, counts.byteOffset, counts.byteLength).toString('base64'),
    };
  } finally {
    await client.close();
  }
}
