/**
 * One run of the work-queue workload, for every suite that has one (the single-node
 * `queue` suite, the cluster suite): consumers first, then a publisher at max rate;
 * the consumers stop once their acks add up to the message count, and the deliveries
 * are tallied for duplicates and gaps.
 */
import type { KmqClient } from '../client/index.js';
import type { PublishConfig, PublishResult, QueueConsumeConfig, QueueConsumeResult } from './bench-config.js';
import { tallyDeliveries } from './delivery-tally.js';
import type { DeliveryTally } from './delivery-tally.js';
import { startWorker, stopWhenAcked } from './processes.js';
import type { WorkerHandle } from './processes.js';

/** What a queue run measured: the publisher, the consumers (without their per-message counts) and what they add up to. */
export interface QueueRunResult {
  partitions: number;
  prefetch: number;
  consumerMode: 'push' | 'pull';
  publisher: PublishResult;
  consumers: Array<Omit<QueueConsumeResult, 'countsBase64'>>;
  tally: DeliveryTally;
  /** First publish to the answer to the last ack, ms. */
  endToEndMs: number;
  endToEndPerSec: number;
  publishPerSec: number;
  /** Consumers' CPU summed, % of one core, over endToEndMs. */
  consumersCpuPct: number;
  /** The publisher's CPU, % of one core, over endToEndMs. */
  publisherCpuPct: number;
  ackErrors: number;
  redeliveries: number;
  /** Bytes the consumers received per acked message, over the message size: above 1 when the broker sends whole batches of which a consumer holds only part. */
  receivedPerMessageBytes: number;
  /** The queue's depth after the consumers left: 0 ready, 0 in flight when every message was acked. */
  depthAfter: { ready: number; inFlight: number; delayed: number } | undefined;
}

export interface QueueRunSettings {
  /** Bootstrap brokers, comma-separated. */
  bootstrap: string;
  queue: string;
  partitions: number;
  messages: number;
  messageBytes: number;
  consumers: number;
  prefetch: number;
  consumerMode: 'push' | 'pull';
  publishCallSize: number;
  publishCallsInFlight: number;
  idleTimeoutMs: number;
  nodeArgs: { consumer: string[]; producer: string[] };
  /** For the queue's depth afterwards. */
  admin: KmqClient;
  log: (msg: string) => void;
}

/**
 * Runs the workload; `measured` wraps the part whose broker figures count (from the
 * publisher's start until every consumer is done) and returns what it measured beside.
 */
export async function runQueueWorkload<M>(
  s: QueueRunSettings,
  measured: (run: () => Promise<{ p: PublishResult; cs: QueueConsumeResult[] }>) => Promise<{ value: { p: PublishResult; cs: QueueConsumeResult[] }; measured: M }>,
): Promise<{ result: QueueRunResult; measured: M; problems: string[] }> {
  const consumers: Array<WorkerHandle<QueueConsumeResult>> = [];
  for (let i = 0; i < s.consumers; i++) {
    const cfg: QueueConsumeConfig = { broker: s.bootstrap, queue: s.queue, prefetch: s.prefetch, mode: s.consumerMode, messages: s.messages, idleTimeoutMs: s.idleTimeoutMs };
    consumers.push(startWorker<QueueConsumeResult>('queue-consume', cfg, s.nodeArgs.consumer));
  }
  await Promise.all(consumers.map((c) => c.event('ready')));
  stopWhenAcked(consumers, s.messages);
  const m = await measured(async () => {
    const cfg: PublishConfig = { broker: s.bootstrap, target: { queue: s.queue }, messages: s.messages, messageBytes: s.messageBytes, callSize: s.publishCallSize, callsInFlight: s.publishCallsInFlight };
    const p = await startWorker<PublishResult>('publish', cfg, s.nodeArgs.producer).result;
    return { p, cs: await Promise.all(consumers.map((c) => c.result)) };
  });
  const { p, cs } = m.value;
  let depthAfter: QueueRunResult['depthAfter'];
  try {
    const d = (await s.admin.admin().describeQueue(s.queue)).depth;
    if (d !== undefined) depthAfter = { ready: Number(d.ready), inFlight: Number(d.inFlight), delayed: Number(d.delayed) };
  } catch (err) {
    s.log(`describe ${s.queue} failed: ${(err as Error).message}`);
  }
  const endToEndMs = Math.max(...cs.map((c) => c.lastAckAt)) - p.firstPublishAt;
  const totalAcked = cs.reduce((n, c) => n + c.acked, 0);
  const result: QueueRunResult = {
    partitions: s.partitions,
    prefetch: s.prefetch,
    consumerMode: s.consumerMode,
    publisher: p,
    consumers: cs.map(({ countsBase64: _counts, ...rest }) => rest),
    tally: tallyDeliveries(s.messages, cs.map((c) => c.countsBase64)),
    endToEndMs,
    endToEndPerSec: totalAcked / (endToEndMs / 1000),
    publishPerSec: p.messages / (p.elapsedMs / 1000),
    consumersCpuPct: (cs.reduce((n, c) => n + c.cpuUserMs + c.cpuSystemMs, 0) / endToEndMs) * 100,
    publisherCpuPct: ((p.cpuUserMs + p.cpuSystemMs) / endToEndMs) * 100,
    ackErrors: cs.reduce((n, c) => n + c.ackErrors, 0),
    redeliveries: cs.reduce((n, c) => n + c.redeliveries, 0),
    receivedPerMessageBytes: cs.reduce((n, c) => n + c.bytesReceived, 0) / totalAcked,
    depthAfter,
  };
  const problems: string[] = [];
  if (result.ackErrors > 0) problems.push(`${result.ackErrors} ack errors`);
  if (result.redeliveries > 0) problems.push(`${result.redeliveries} redeliveries`);
  if (depthAfter !== undefined && depthAfter.ready + depthAfter.inFlight + depthAfter.delayed > 0) problems.push(`left ${depthAfter.ready} ready, ${depthAfter.inFlight} in flight`);
  return { result, measured: m.measured, problems };
}

/** What every queue run's row notes: consumers' CPU, bytes read, the tally and the acks per consumer. */
export function queueRunNotes(r: QueueRunResult, messageBytes: number): string[] {
  return [
    `consumers CPU ${r.consumersCpuPct.toFixed(0)}%, read ${(r.receivedPerMessageBytes / messageBytes).toFixed(1)}× the bytes`,
    `dup ${r.tally.duplicates}, missing ${r.tally.missing}`,
    `acked ${r.consumers.map((c) => c.acked).join('/')}`,
  ];
}
