/**
 * Broker benchmark runner: `npm run bench -- produce|consume|e2e|queue|exchange|sidecar|cluster|all
 * [--quick] [--flush every-batch|interval|none] [--cpu-prof broker|producer|consumer|sidecar]
 * [--prefetch N] [--consumer-mode push|pull] [--publish-call N] [--publish-in-flight N] [--sidecars 1|2]`.
 *
 * Starts one broker process on a fresh temp folder, measures the machine's own
 * limits (disk write with and without fdatasync, loopback TCP), then runs each
 * workload with producers, publishers and consumers in their own worker processes,
 * samples the broker's RSS and CPU, prints a table and writes JSON to .bench-out/.
 * The `cluster` suite (not part of `all`) also starts etcd and 3 brokers (cluster-suite.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KmqClient } from '../client/index.js';
import type {
  BandwidthResult,
  ConsumeConfig,
  DiskConfig,
  E2eConsumeConfig,
  E2eProduceConfig,
  E2eProduceResult,
  LatencyResult,
  ProduceConfig,
  ProducerSettings,
  PublishConfig,
  PublishResult,
  PublishTargetConfig,
  SidecarConsumeConfig,
  SidecarPublishConfig,
  SidecarPublishResult,
  TcpSourceConfig,
  ThroughputResult,
} from './bench-config.js';
import { BenchBroker, BenchSidecar, folderBytes, killAll, startWorker } from './processes.js';
import { clientCpuPct, latencyColumns } from './measure.js';
import { Phase } from './phase.js';
import { queueRunNotes, runQueueWorkload } from './queue-run.js';
import type { QueueRunResult } from './queue-run.js';
import { ProcSampler } from './proc-sampler.js';
import type { HopKind, HopSinkConfig, HopSourceConfig } from './hop-latency.js';
import { formatComparison, formatTable, formatTargets } from './report.js';
import type { Comparison, Row, TargetCheck } from './report.js';
import { runClusterSuite } from './cluster-suite.js';
import type { ClusterSuiteResult } from './cluster-suite.js';
import { EXCHANGE_ROUTING_KEY, exchangeBindings } from './exchange-bindings.js';

const MiB = 1024 * 1024;
const MB = 1e6;
const RECORD_SIZES = [100, 1024] as const;
const PARTITION_COUNTS = [1, 8] as const;
/** Raised from the broker's 1 MiB default so that 1 MiB producer batches plus their framing always fit. */
const BROKER_MAX_MESSAGE_BYTES = 2 * MiB;

const SUITES = ['produce', 'consume', 'e2e', 'queue', 'exchange', 'sidecar', 'cluster', 'all'] as const;
type Suite = (typeof SUITES)[number];
/** Queue workload: partitions of the queue (each a row), consumer processes, message size. */
const QUEUE_PARTITIONS = [1, 4] as const;
const QUEUE_CONSUMERS = 4;
const QUEUE_MESSAGE_BYTES = 1024;
/** Exchange workload: bindings of the topic exchange, and the order of the runs (ABBA, so drift over time hits both alike). */
const EXCHANGE_BINDINGS = [1, 1000] as const;
const EXCHANGE_RUN_ORDER = [1, 1000, 1000, 1] as const;
/** Default messages per publish() call and calls pending, for the queue and exchange publishers. */
const PUBLISH_CALL_SIZE = 250;
const PUBLISH_CALLS_IN_FLIGHT = 8;
/** Sidecar workload: message size, PublishStream messages unanswered at most, the subscription's max in flight, the latency phase's rate. */
const SIDECAR_MESSAGE_BYTES = 100;
const SIDECAR_PUBLISH_IN_FLIGHT = 1000;
const SIDECAR_MAX_IN_FLIGHT = 1000;
const SIDECAR_LATENCY_RATE = 1000;
/** Messages per PublishBatch and Consume max_batch in the batched throughput phase and the latency phase. */
const SIDECAR_PUBLISH_BATCH = 100;
const SIDECAR_CONSUME_BATCH = 500;
const PROFILE_TARGETS = ['broker', 'producer', 'consumer', 'sidecar'] as const;
type ProfileTarget = (typeof PROFILE_TARGETS)[number];

interface Args {
  suite: Suite;
  quick: boolean;
  flush: string | undefined;
  cpuProf: ProfileTarget | undefined;
  prefetch: number;
  consumerMode: 'push' | 'pull';
  publishCallSize: number;
  publishCallsInFlight: number;
  /** Sidecar workload: 2 = the publishing app and the consuming app each have their own sidecar (as two pods would); 1 = one sidecar serves both. */
  sidecars: 1 | 2;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { suite: 'all', quick: false, flush: undefined, cpuProf: undefined, prefetch: 1000, consumerMode: 'push', publishCallSize: PUBLISH_CALL_SIZE, publishCallsInFlight: PUBLISH_CALLS_IN_FLIGHT, sidecars: 2 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') args.quick = true;
    else if (a === '--flush') args.flush = argv[++i];
    else if (a === '--cpu-prof') args.cpuProf = argv[++i] as ProfileTarget;
    else if (a === '--prefetch') args.prefetch = Number(argv[++i]);
    else if (a === '--publish-call') args.publishCallSize = Number(argv[++i]);
    else if (a === '--publish-in-flight') args.publishCallsInFlight = Number(argv[++i]);
    else if (a === '--consumer-mode') args.consumerMode = argv[++i] as 'push' | 'pull';
    else if (a === '--sidecars') args.sidecars = Number(argv[++i]) as 1 | 2;
    else if ((SUITES as readonly string[]).includes(a)) args.suite = a as Suite;
    else usage(`unknown argument "${a}"`);
  }
  if (args.flush !== undefined && !['every-batch', 'interval', 'none'].includes(args.flush)) usage('--flush must be every-batch, interval or none');
  if (args.cpuProf !== undefined && !(PROFILE_TARGETS as readonly string[]).includes(args.cpuProf)) usage('--cpu-prof must be broker, producer, consumer or sidecar');
  if (!Number.isInteger(args.prefetch) || args.prefetch < 1 || args.prefetch > 10_000) usage('--prefetch must be an integer from 1 to 10000');
  if (args.consumerMode !== 'push' && args.consumerMode !== 'pull') usage('--consumer-mode must be push or pull');
  if (!Number.isInteger(args.publishCallSize) || args.publishCallSize < 1 || args.publishCallSize > 1000) usage('--publish-call must be an integer from 1 to 1000');
  if (!Number.isInteger(args.publishCallsInFlight) || args.publishCallsInFlight < 1 || args.publishCallsInFlight > 64) usage('--publish-in-flight must be an integer from 1 to 64');
  if (args.sidecars !== 1 && args.sidecars !== 2) usage('--sidecars must be 1 or 2');
  return args;
}

function usage(problem: string): never {
  process.stderr.write(
    `bench: ${problem}\nusage: npm run bench -- produce|consume|e2e|queue|exchange|sidecar|cluster|all [--quick] [--flush every-batch|interval|none] [--cpu-prof broker|producer|consumer|sidecar] [--prefetch N] [--consumer-mode push|pull] [--publish-call N] [--publish-in-flight N] [--sidecars 1|2]\n`,
  );
  process.exit(2);
}

const args = parseArgs(process.argv.slice(2));
const quick = args.quick;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const outDir = path.join(repoRoot, '.bench-out');
const profDir = path.join(outDir, 'prof');
const nodeArgsFor = (who: ProfileTarget): string[] => (args.cpuProf === who ? ['--cpu-prof', '--cpu-prof-dir', profDir] : []);

const sizes = {
  recordsFor: (recordBytes: number): number => (recordBytes <= 100 ? (quick ? 200_000 : 2_000_000) : quick ? 50_000 : 500_000),
  diskBytes: quick ? 64 * MiB : 512 * MiB,
  tcpMs: quick ? 1000 : 3000,
  e2eMs: quick ? 4000 : 15_000,
  e2eWarmupMs: quick ? 1000 : 2000,
  e2eRate: 20_000,
  queueMessages: quick ? 40_000 : 200_000,
  exchangeMessages: quick ? 40_000 : 200_000,
  sidecarMessages: quick ? 100_000 : 500_000,
  sidecarSingleMessages: quick ? 10_000 : 50_000,
  sidecarLatencyMs: quick ? 4000 : 10_000,
  sidecarWarmupMs: quick ? 1000 : 2000,
  /** Latency rounds (direct, then via sidecar): one p99 of 10,000 messages moves by a millisecond from a single stall. */
  sidecarLatencyRounds: quick ? 1 : 3,
};

/**
 * Records per send() call: about 2 MiB, at most 10,000. send() encodes its whole
 * call synchronously, so a much larger call blocks the client's event loop (and
 * the acknowledgements it should be handling) long enough to drain the pipeline.
 */
const callSizeFor = (recordBytes: number): number => Math.min(10_000, Math.round((2 * MiB) / recordBytes));

const throughputProducer: ProducerSettings = { acks: 'leader', idempotent: true, lingerMs: 5, batchSizeBytes: MiB };
// Latency: seal each tick's records at once instead of lingering for more.
const e2eProducer: ProducerSettings = { acks: 'leader', idempotent: true, lingerMs: 0, batchSizeBytes: MiB };

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-bench-'));
let cleanedUp = false;
function cleanupSync(): void {
  if (cleanedUp) return;
  cleanedUp = true;
  killAll();
  fs.rmSync(tmpRoot, { recursive: true, force: true });
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, stopping\n`);
    cleanupSync();
    process.exit(130);
  });
}

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

const mbps = (r: BandwidthResult): number => r.bytes / MB / (r.elapsedMs / 1000);

interface MachineLimits {
  diskFsyncMBps: number;
  diskNoFsyncMBps: number;
  tcpMBps: number;
}

const disk = (syncEachChunk: boolean): Promise<BandwidthResult> =>
  startWorker<BandwidthResult>('disk', { dir: path.join(tmpRoot, 'disk'), totalBytes: sizes.diskBytes, chunkBytes: MiB, syncEachChunk } satisfies DiskConfig).result;

async function measureMachine(): Promise<MachineLimits> {
  log(`disk: ${sizes.diskBytes / MiB} MiB in 1 MiB writes, fdatasync after each`);
  const fsync = await disk(true);
  log(`disk: ${sizes.diskBytes / MiB} MiB in 1 MiB writes, one fdatasync at the end`);
  const nofsync = await disk(false);
  log(`tcp: loopback, 1 MiB writes for ${sizes.tcpMs} ms`);
  const sink = startWorker<BandwidthResult>('tcp-sink', {});
  const { port } = (await sink.event('listening')) as { port: number };
  const source = startWorker<BandwidthResult>('tcp-source', { port, durationMs: sizes.tcpMs, chunkBytes: MiB } satisfies TcpSourceConfig);
  const [received] = await Promise.all([sink.result, source.result]);
  return { diskFsyncMBps: mbps(fsync), diskNoFsyncMBps: mbps(nofsync), tcpMBps: mbps(received) };
}

interface ExchangeRunResult {
  bindings: number;
  routingKey: string;
  /** One per run, in the order they ran. */
  publishers: PublishResult[];
  perSec: number[];
  meanPerSec: number;
}

/** The sidecar workload: throughput through one sidecar, and latency through it against the direct client path. */
interface SidecarRunResult {
  /** 2: the publishing app and the consuming app each talk to their own sidecar; 1: one sidecar serves both. */
  sidecars: 1 | 2;
  throughput: {
    publisher: SidecarPublishResult;
    consumer: LatencyResult & { lastAckAt: number; redeliveries: number };
    /** First publish to the last delivery acked, ms. */
    endToEndMs: number;
    endToEndPerSec: number;
    /** The sidecars' CPU over endToEndMs, % of one core: both together (sidecarCpuPct), the publisher's and the consumer's. */
    sidecarCpuPct: number;
    publisherSidecarCpuPct: number;
    consumerSidecarCpuPct: number;
    /** Produce requests the broker answered during the phase (the sidecar's producer batches). */
    produceRequests: number;
    /** Messages per PublishBatch (0: one per request) and Consume max_batch (0: one per response). */
    publishBatch: number;
    consumeBatch: number;
  };
  /** The same with one message per gRPC message. */
  single: SidecarRunResult['throughput'];
  latency: {
    ratePerSec: number;
    direct: { producer: E2eProduceResult; consumer: LatencyResult };
    sidecar: { publisher: SidecarPublishResult; consumer: LatencyResult & { lastAckAt: number; redeliveries: number }; sidecarCpuPct: number; publisherSidecarCpuPct: number; consumerSidecarCpuPct: number };
    /** The median round's: direct p99 subtracted from the sidecar p99 of the same round. */
    addedP99Ms: number;
    /** Every round, in run order (direct, then via sidecar, alternating). */
    rounds: Array<{ directP99Ms: number; sidecarP99Ms: number; addedP99Ms: number }>;
    /** One hop between two bare processes at the same rate: the floor under the two gRPC hops the sidecar path adds. */
    hops: Record<HopKind, LatencyResult>;
  };
}

interface Results {
  produce: Record<string, ThroughputResult & { logBytes: number; produceRequests: number; brokerProduceMs: number | undefined }>;
  consume: Record<string, ThroughputResult>;
  e2e: Record<string, { producer: E2eProduceResult; consumer: LatencyResult; produceRequests: number }>;
  queue: Record<string, QueueRunResult>;
  exchange: Record<string, ExchangeRunResult>;
  exchangeRunOrder: readonly number[];
  sidecar?: SidecarRunResult;
  cluster?: ClusterSuiteResult & { comparison: Comparison[] };
}

interface RunContext {
  broker: BenchBroker;
  sampler: ProcSampler;
  admin: KmqClient;
}

const publishConfig = (broker: string, target: PublishTargetConfig, messages: number): PublishConfig => ({
  broker,
  target,
  messages,
  messageBytes: QUEUE_MESSAGE_BYTES,
  callSize: args.publishCallSize,
  callsInFlight: args.publishCallsInFlight,
});

/**
 * Queue workload: QUEUE_CONSUMERS consumer processes (started and subscribed first)
 * ack every delivery on its own while one publisher publishes `messages` at max rate.
 * The consumers stop once their acks add up to `messages` (or after 15 s without
 * progress), then the sequence numbers they counted are added up.
 */
async function runQueue(ctx: RunContext, partitions: number): Promise<{ rows: Row[]; result: QueueRunResult }> {
  const { broker, sampler, admin } = ctx;
  const messages = sizes.queueMessages;
  const queue = `bench-queue-${partitions}p-${args.prefetch}`;
  await admin.admin().createQueue(queue, { partitions });
  log(`queue ${partitions}p: ${messages.toLocaleString('en-US')} × ${QUEUE_MESSAGE_BYTES} B, ${QUEUE_CONSUMERS} consumers (prefetch ${args.prefetch}, ${args.consumerMode}), ack per message`);
  const { result, measured: b, problems } = await runQueueWorkload(
    {
      bootstrap: broker.address,
      queue,
      partitions,
      messages,
      messageBytes: QUEUE_MESSAGE_BYTES,
      consumers: QUEUE_CONSUMERS,
      prefetch: args.prefetch,
      consumerMode: args.consumerMode,
      publishCallSize: args.publishCallSize,
      publishCallsInFlight: args.publishCallsInFlight,
      idleTimeoutMs: 15_000,
      nodeArgs: { consumer: nodeArgsFor('consumer'), producer: nodeArgsFor('producer') },
      admin,
      log,
    },
    async (work) => {
      const phase = await Phase.begin(sampler, broker.httpPort);
      const value = await work();
      const { produceRequests: _none, brokerProduceMs: _unused, ...figures } = await phase.end();
      return { value, measured: figures };
    },
  );
  const p = result.publisher;
  const totalAcked = result.consumers.reduce((n, c) => n + c.acked, 0);
  const name = `queue 1 KiB × ${partitions}p, ${QUEUE_CONSUMERS} cons`;
  return {
    result,
    rows: [
      {
        workload: name,
        recordsPerSec: result.endToEndPerSec,
        mbPerSec: (totalAcked * QUEUE_MESSAGE_BYTES) / MB / (result.endToEndMs / 1000),
        clientCpuPct: result.consumersCpuPct + result.publisherCpuPct,
        ...b,
        note: [`end to end, prefetch ${args.prefetch}`, ...queueRunNotes(result, QUEUE_MESSAGE_BYTES), ...problems].join('; '),
      },
      {
        workload: `  publish (same run)`,
        recordsPerSec: result.publishPerSec,
        mbPerSec: p.bytes / MB / (p.elapsedMs / 1000),
        clientCpuPct: ((p.cpuUserMs + p.cpuSystemMs) / p.elapsedMs) * 100,
        note: `${args.publishCallSize} per call, ${args.publishCallsInFlight} calls in flight, while consuming`,
      },
    ],
  };
}

/** Sink queues the non-matching bindings of the exchange workload point at (they never receive anything). */
const EXCHANGE_SINKS = 10;

/**
 * Exchange workload, set-up: a topic exchange with `bindings` bindings, of which
 * exactly one (the routing key itself) matches, so every call appends to exactly one
 * queue, whatever the binding count.
 */
async function setUpExchange(ctx: RunContext, bindings: number): Promise<{ exchange: string; dest: string }> {
  const a = ctx.admin.admin();
  const exchange = `bench-x-${bindings}`;
  const dest = `bench-x-${bindings}-dest`;
  await a.createExchange(exchange, 'topic');
  await a.createQueue(dest, { partitions: 1 });
  const specs = exchangeBindings(bindings, EXCHANGE_SINKS);
  if (specs.some((s) => s.destination >= 0)) for (let i = 0; i < EXCHANGE_SINKS; i++) await a.createQueue(`bench-x-sink-${i}`, { partitions: 1 }, { ifNotExists: true });
  log(`exchange ${bindings} binding(s): binding`);
  // The broker applies binds one at a time; pipelining them saves the round trips.
  await Promise.all(specs.map((s) => a.bind({ exchange, destination: { kind: 'queue', name: s.destination < 0 ? dest : `bench-x-sink-${s.destination}` }, routingKey: s.pattern })));
  return { exchange, dest };
}

/** Exchange workload, one run: publish `messages` through the exchange set up for `bindings`. */
async function runExchange(ctx: RunContext, bindings: number, run: number, target: { exchange: string; dest: string }): Promise<{ row: Row; publisher: PublishResult; perSec: number }> {
  const { broker, sampler } = ctx;
  const { exchange, dest } = target;
  const messages = sizes.exchangeMessages;
  log(`exchange ${bindings} binding(s), run ${run}: ${messages.toLocaleString('en-US')} × ${QUEUE_MESSAGE_BYTES} B with key ${EXCHANGE_ROUTING_KEY}`);
  const phase = await Phase.begin(sampler, broker.httpPort);
  const p = await startWorker<PublishResult>('publish', publishConfig(broker.address, { exchange, routingKey: EXCHANGE_ROUTING_KEY }, messages), nodeArgsFor('producer')).result;
  const { produceRequests: _none, brokerProduceMs: _unused, ...b } = await phase.end();
  const perSec = p.messages / (p.elapsedMs / 1000);
  const calls = Math.ceil(messages / args.publishCallSize);
  const elsewhere = Object.entries(p.routedCalls).filter(([d]) => d !== dest);
  const problems = [];
  if ((p.routedCalls[dest] ?? 0) !== calls) problems.push(`${p.routedCalls[dest] ?? 0} of ${calls} calls reached ${dest}`);
  if (elsewhere.length > 0) problems.push(`also routed to ${elsewhere.map(([d, n]) => `${d} (${n})`).join(', ')}`);
  if (p.droppedCalls > 0) problems.push(`${p.droppedCalls} calls dropped`);
  return {
    publisher: p,
    perSec,
    row: {
      workload: `exchange ${bindings.toLocaleString('en-US')} binding${bindings === 1 ? '' : 's'} #${run}`,
      recordsPerSec: perSec,
      mbPerSec: p.bytes / MB / (p.elapsedMs / 1000),
      clientCpuPct: clientCpuPct(p),
      ...b,
      note: `topic exchange, 1 destination matches${problems.length > 0 ? `; ${problems.join('; ')}` : ''}`,
    },
  };
}

/**
 * The sidecars of the sidecar workload: the publishing app's and the consuming
 * app's (the same process with --sidecars 1), with CPU samplers.
 */
interface SidecarPair {
  publisher: BenchSidecar;
  consumer: BenchSidecar;
  /** CPU ms so far: [publisher's, consumer's]; with one sidecar, all of it is the publisher's. */
  cpuMs(): [number, number];
}

/** CPU % of one core of each sidecar over `ms`, from two cpuMs() readings. */
function sidecarCpuPcts(before: [number, number], after: [number, number], ms: number): { sidecarCpuPct: number; publisherSidecarCpuPct: number; consumerSidecarCpuPct: number } {
  const publisherSidecarCpuPct = ((after[0] - before[0]) / ms) * 100;
  const consumerSidecarCpuPct = ((after[1] - before[1]) / ms) * 100;
  return { sidecarCpuPct: publisherSidecarCpuPct + consumerSidecarCpuPct, publisherSidecarCpuPct, consumerSidecarCpuPct };
}

/** "sidecar CPU 93%", or with two sidecars "sidecar CPU 96% (publisher's 45%, consumer's 51%)". */
function signedMs(ms: number): string {
  return `${ms >= 0 ? '+' : ''}${ms.toFixed(2)} ms`;
}

function sidecarCpuNote(c: { sidecarCpuPct: number; publisherSidecarCpuPct: number; consumerSidecarCpuPct: number }, pair: SidecarPair): string {
  if (pair.publisher === pair.consumer) return `sidecar CPU ${c.sidecarCpuPct.toFixed(0)}% (one sidecar)`;
  return `sidecar CPU ${c.sidecarCpuPct.toFixed(0)}% (publisher's ${c.publisherSidecarCpuPct.toFixed(0)}%, consumer's ${c.consumerSidecarCpuPct.toFixed(0)}%)`;
}

/** One throughput phase of the sidecar workload: a consumer app ready first, then a publisher app; batch 0 = single messages. */
async function sidecarThroughput(
  ctx: RunContext,
  sidecars: SidecarPair,
  topic: string,
  messages: number,
  publishBatch: number,
  consumeBatch: number,
): Promise<{ row: Row; result: SidecarRunResult['throughput'] }> {
  const { broker, sampler } = ctx;
  const how = publishBatch === 0 ? 'one message per PublishStreamRequest and per ConsumeResponse, Ack each' : `PublishBatch of up to ${publishBatch}, Consume max_batch ${consumeBatch}, one Acks per response`;
  log(`sidecar throughput: ${messages.toLocaleString('en-US')} × ${SIDECAR_MESSAGE_BYTES} B, PublishStream (${SIDECAR_PUBLISH_IN_FLIGHT} in flight) → sidecar → broker → sidecar → Consume; ${how}`);
  const consumer = startWorker<SidecarRunResult['throughput']['consumer']>(
    'sidecar-consume',
    { sidecar: sidecars.consumer.address, subscription: topic, messages, maxInFlight: 0, maxBatch: consumeBatch, warmupMs: 0, timeoutMs: 300_000 } satisfies SidecarConsumeConfig,
    nodeArgsFor('consumer'),
  );
  await consumer.event('ready');
  const phase = await Phase.begin(sampler, broker.httpPort);
  const sidecarCpu0 = sidecars.cpuMs();
  const publisher = startWorker<SidecarPublishResult>(
    'sidecar-publish',
    { sidecar: sidecars.publisher.address, topic, messages, messageBytes: SIDECAR_MESSAGE_BYTES, inFlight: SIDECAR_PUBLISH_IN_FLIGHT, batch: publishBatch } satisfies SidecarPublishConfig,
    nodeArgsFor('producer'),
  );
  const [p, c] = await Promise.all([publisher.result, consumer.result]);
  const sidecarCpu1 = sidecars.cpuMs();
  const { produceRequests, ...b } = await phase.end();
  const endToEndMs = c.lastAckAt - p.firstPublishAt;
  const cpus = sidecarCpuPcts(sidecarCpu0, sidecarCpu1, endToEndMs);
  const clientCpu = ((p.cpuUserMs + p.cpuSystemMs + c.cpuUserMs + c.cpuSystemMs) / endToEndMs) * 100;
  const problems = [];
  if (p.errors > 0) problems.push(`${p.errors} publish errors`);
  if (c.redeliveries > 0) problems.push(`${c.redeliveries} redeliveries`);
  const result: SidecarRunResult['throughput'] = { publisher: p, consumer: c, endToEndMs, endToEndPerSec: c.records / (endToEndMs / 1000), ...cpus, produceRequests, publishBatch, consumeBatch };
  return {
    result,
    row: {
      workload: `sidecar ${SIDECAR_MESSAGE_BYTES} B × 1p${publishBatch === 0 ? ', single' : ', batched'}`,
      recordsPerSec: result.endToEndPerSec,
      mbPerSec: (c.records * SIDECAR_MESSAGE_BYTES) / MB / (endToEndMs / 1000),
      clientCpuPct: clientCpu,
      sidecarCpuPct: cpus.sidecarCpuPct,
      ...b,
      note: `end to end, ${how}, ${SIDECAR_PUBLISH_IN_FLIGHT} in flight, Consume max in flight ${SIDECAR_MAX_IN_FLIGHT}; ${sidecarCpuNote(cpus, sidecars)}; ${((cpus.sidecarCpuPct * 1e4) / result.endToEndPerSec).toFixed(1)} µs sidecar CPU per message; ${(p.messages / Math.max(1, produceRequests)).toFixed(1)} messages per produce request; publish alone ${Math.round(p.messages / (p.elapsedMs / 1000)).toLocaleString('en-US')}/s${problems.length > 0 ? `; ${problems.join(', ')}` : ''}`,
    },
  };
}

interface SidecarLatencyRound {
  rows: Row[];
  direct: SidecarRunResult['latency']['direct'];
  sidecar: SidecarRunResult['latency']['sidecar'];
  addedP99Ms: number;
}

/** One latency round of the sidecar workload: the direct client path, then the same traffic through the sidecars. */
async function sidecarLatencyRound(ctx: RunContext, sidecars: SidecarPair, names: { directTopic: string; latTopic: string; round: number }): Promise<SidecarLatencyRound> {
  const { broker, sampler, admin } = ctx;
  const { directTopic, latTopic } = names;
  const tag = sizes.sidecarLatencyRounds > 1 ? `, round ${names.round}` : '';
  await admin.admin().createTopic(directTopic, { partitions: 1 });
  const rate = SIDECAR_LATENCY_RATE;
  const count = Math.round((rate * sizes.sidecarLatencyMs) / 1000);
  log(`sidecar latency, direct client path: ${rate.toLocaleString('en-US')} × ${SIDECAR_MESSAGE_BYTES} B/s for ${sizes.sidecarLatencyMs / 1000} s`);
  const dphase = await Phase.begin(sampler, broker.httpPort);
  // The sidecar is idle here but still running (its subscriptions' consumers poll): count its CPU apart.
  const dcpu0 = sidecars.cpuMs();
  const dt0 = performance.now();
  const dcons = startWorker<LatencyResult>(
    'e2e-consume',
    { broker: broker.address, topic: directTopic, partitions: 1, records: count, warmupMs: sizes.sidecarWarmupMs, timeoutMs: sizes.sidecarLatencyMs + 60_000 } satisfies E2eConsumeConfig,
    nodeArgsFor('consumer'),
  );
  await dcons.event('ready');
  const dprod = startWorker<E2eProduceResult>(
    'e2e-produce',
    { broker: broker.address, topic: directTopic, recordBytes: SIDECAR_MESSAGE_BYTES, ratePerSec: rate, durationMs: sizes.sidecarLatencyMs, producer: e2eProducer } satisfies E2eProduceConfig,
    nodeArgsFor('producer'),
  );
  const [dp, dc] = await Promise.all([dprod.result, dcons.result]);
  const idleSidecarCpuPct = sidecarCpuPcts(dcpu0, sidecars.cpuMs(), performance.now() - dt0).sidecarCpuPct;
  const { produceRequests: _n2, brokerProduceMs: directProduceMs, ...db } = await dphase.end();

  log(`sidecar latency, through the sidecar: ${rate.toLocaleString('en-US')} × ${SIDECAR_MESSAGE_BYTES} B/s for ${sizes.sidecarLatencyMs / 1000} s`);
  const lcons = startWorker<SidecarRunResult['throughput']['consumer']>(
    'sidecar-consume',
    { sidecar: sidecars.consumer.address, subscription: latTopic, messages: count, maxInFlight: 0, maxBatch: SIDECAR_CONSUME_BATCH, warmupMs: sizes.sidecarWarmupMs, timeoutMs: sizes.sidecarLatencyMs + 60_000 } satisfies SidecarConsumeConfig,
    nodeArgsFor('consumer'),
  );
  await lcons.event('ready');
  const sphase = await Phase.begin(sampler, broker.httpPort);
  const lcpu0 = sidecars.cpuMs();
  const lt0 = performance.now();
  const lpub = startWorker<SidecarPublishResult>(
    'sidecar-publish',
    { sidecar: sidecars.publisher.address, topic: latTopic, messages: count, messageBytes: SIDECAR_MESSAGE_BYTES, inFlight: SIDECAR_PUBLISH_IN_FLIGHT, batch: SIDECAR_PUBLISH_BATCH, ratePerSec: rate } satisfies SidecarPublishConfig,
    nodeArgsFor('producer'),
  );
  const [lp, lc] = await Promise.all([lpub.result, lcons.result]);
  const latCpus = sidecarCpuPcts(lcpu0, sidecars.cpuMs(), performance.now() - lt0);
  const { produceRequests: _n3, brokerProduceMs: sidecarProduceMs, ...sb } = await sphase.end();
  const addedP99Ms = lc.p99Ms - dc.p99Ms;
  const lagNote = (lag: number): string => (lag > 20 ? `; sender fell ${lag.toFixed(0)} ms behind schedule` : '');
  // The broker's own time per produce request (append and fsync) in each phase: the two runs are 10 s apart, and a
  // slow disk or a busy machine in one of them shows here first.
  const produceNote = (ms: number | undefined): string => (ms === undefined ? '' : `; broker produce ${ms.toFixed(2)} ms mean`);
  const rows: Row[] = [
    {
      workload: `  direct ${SIDECAR_MESSAGE_BYTES} B × 1p @${rate / 1000}k/s${tag}`,
      ...latencyColumns(dc, SIDECAR_MESSAGE_BYTES),
      clientCpuPct: clientCpuPct(dp) + clientCpuPct(dc),
      sidecarCpuPct: idleSidecarCpuPct,
      ...db,
      note: `producer → broker → consumer, lingerMs 0; idle sidecar CPU ${idleSidecarCpuPct.toFixed(0)}%${produceNote(directProduceMs)}${dc.records !== dp.records ? `; consumer got ${dc.records} of ${dp.records}` : ''}${lagNote(dp.maxScheduleLagMs)}`,
    },
    {
      workload: `  via sidecar ${SIDECAR_MESSAGE_BYTES} B × 1p @${rate / 1000}k/s${tag}`,
      ...latencyColumns(lc, SIDECAR_MESSAGE_BYTES),
      clientCpuPct: clientCpuPct(lp) + clientCpuPct(lc),
      sidecarCpuPct: latCpus.sidecarCpuPct,
      ...sb,
      note: `PublishStream → sidecar → broker → sidecar → Consume; added p99 ${addedP99Ms.toFixed(2)} ms; ${sidecarCpuNote(latCpus, sidecars)}${produceNote(sidecarProduceMs)}${lp.errors > 0 ? `; ${lp.errors} publish errors` : ''}${lagNote(lp.maxScheduleLagMs)}`,
    },
  ];
  return { rows, direct: { producer: dp, consumer: dc }, sidecar: { publisher: lp, consumer: lc, ...latCpus }, addedP99Ms };
}

/**
 * One hop between two otherwise idle processes at the latency rounds' rate and
 * size: over raw TCP (the broker protocol's kind of hop) and over a gRPC stream
 * (the kind the sidecar path adds twice, app → sidecar and sidecar → app).
 */
async function hopFloor(ctx: RunContext, kind: HopKind): Promise<{ row: Row; result: LatencyResult }> {
  const rate = SIDECAR_LATENCY_RATE;
  const messages = Math.round((rate * sizes.sidecarLatencyMs) / 1000);
  const warmupMessages = Math.round((rate * sizes.sidecarWarmupMs) / 1000);
  log(`one ${kind === 'grpc' ? 'gRPC stream' : 'raw TCP'} hop between two processes: ${rate.toLocaleString('en-US')} × ${SIDECAR_MESSAGE_BYTES} B/s for ${sizes.sidecarLatencyMs / 1000} s`);
  const phase = await Phase.begin(ctx.sampler, ctx.broker.httpPort);
  const sink = startWorker<LatencyResult>('hop-sink', { kind, messages, messageBytes: SIDECAR_MESSAGE_BYTES, warmupMessages, timeoutMs: sizes.sidecarLatencyMs + 60_000 } satisfies HopSinkConfig);
  const { port } = (await sink.event('listening')) as { port: number };
  const source = startWorker<{ messages: number }>('hop-source', { kind, port, messages, messageBytes: SIDECAR_MESSAGE_BYTES, ratePerSec: rate } satisfies HopSourceConfig);
  const [r] = await Promise.all([sink.result, source.result]);
  const { produceRequests: _n, brokerProduceMs: _ms, ...machine } = await phase.end();
  const row: Row = {
    workload: `  one ${kind === 'grpc' ? 'gRPC' : 'TCP'} hop ${SIDECAR_MESSAGE_BYTES} B @${rate / 1000}k/s`,
    ...latencyColumns(r),
    clientCpuPct: clientCpuPct(r),
    ...machine,
    note:
      kind === 'grpc'
        ? 'one bidirectional @grpc/grpc-js stream between two bare processes, raw bytes, no sidecar: the sidecar path adds two such hops'
        : 'one TCP socket between two bare processes (no broker): the kind of hop every path has',
  };
  return { row, result: r };
}

/**
 * Sidecar workload. The publishing app talks to its own sidecar and the consuming
 * app to another (as two pods would; --sidecars 1: one sidecar serves both); the
 * consumer's sidecar serves ordered, at-least-once subscriptions, each on its own
 * 1-partition topic. Throughput: a consumer app on
 * Consume (acking every delivery) is ready first, then a publisher app sends
 * `sidecarMessages` × 100 B on one PublishStream. Latency: at a fixed rate, the
 * direct client path (e2e producer → broker → e2e consumer) and then the same
 * traffic through the sidecar (PublishStream → Consume), in the same run.
 */
async function runSidecar(ctx: RunContext): Promise<{ rows: Row[]; result: SidecarRunResult }> {
  const { broker, admin } = ctx;
  const tputTopic = 'bench-sidecar-tput';
  const latTopic = 'bench-sidecar-lat';
  const directTopic = 'bench-sidecar-direct';
  const singleTopic = 'bench-sidecar-single';
  for (const t of [tputTopic, singleTopic, latTopic]) await admin.admin().createTopic(t, { partitions: 1 });
  const sub = (name: string, topic: string, maxInFlight?: number): Record<string, unknown> => ({ name, topic, mode: 'ordered', guarantee: 'at-least-once', startFrom: 'earliest', ...(maxInFlight === undefined ? {} : { maxInFlight }) });
  const configFile = path.join(tmpRoot, 'sidecar.json');
  // JSON is YAML: the sidecar's config reader takes it as is.
  fs.writeFileSync(configFile, JSON.stringify({ port: 0, subscriptions: [sub(tputTopic, tputTopic, SIDECAR_MAX_IN_FLIGHT), sub(singleTopic, singleTopic, SIDECAR_MAX_IN_FLIGHT), sub(latTopic, latTopic)] }));
  const consumerSidecar = await BenchSidecar.start(configFile, broker.address, nodeArgsFor('sidecar'));
  const started = [consumerSidecar];
  try {
    let publisherSidecar = consumerSidecar;
    if (args.sidecars === 2) {
      const publisherConfig = path.join(tmpRoot, 'sidecar-publisher.json');
      fs.writeFileSync(publisherConfig, JSON.stringify({ port: 0 }));
      publisherSidecar = await BenchSidecar.start(publisherConfig, broker.address, nodeArgsFor('sidecar'));
      started.push(publisherSidecar);
    }
    const consumerSampler = new ProcSampler(consumerSidecar.pid);
    const publisherSampler = publisherSidecar === consumerSidecar ? undefined : new ProcSampler(publisherSidecar.pid);
    const sidecars: SidecarPair = {
      publisher: publisherSidecar,
      consumer: consumerSidecar,
      cpuMs: () => (publisherSampler === undefined ? [consumerSampler.cpuMs(), 0] : [publisherSampler.cpuMs(), consumerSampler.cpuMs()]),
    };
    if (args.sidecars === 2) log(`sidecars: the publisher's pid ${publisherSidecar.pid} on ${publisherSidecar.address}, the consumer's pid ${consumerSidecar.pid} on ${consumerSidecar.address}`);
    else log(`one sidecar for both apps: pid ${consumerSidecar.pid} on ${consumerSidecar.address}`);

    // Throughput: batched (the high-throughput way to use the API), then one message per gRPC message.
    const throughput = await sidecarThroughput(ctx, sidecars, tputTopic, sizes.sidecarMessages, SIDECAR_PUBLISH_BATCH, SIDECAR_CONSUME_BATCH);
    const single = await sidecarThroughput(ctx, sidecars, singleTopic, sizes.sidecarSingleMessages, 0, 0);
    const rows: Row[] = [throughput.row, single.row];

    // Latency: direct client path, then through the sidecar, same rate and size, in rounds; the median round counts.
    const latencyRounds: SidecarLatencyRound[] = [];
    for (let round = 1; round <= sizes.sidecarLatencyRounds; round++) {
      const r = await sidecarLatencyRound(ctx, sidecars, { directTopic: `${directTopic}-${round}`, latTopic, round });
      latencyRounds.push(r);
      rows.push(...r.rows);
    }
    const median = [...latencyRounds].sort((a, b) => a.addedP99Ms - b.addedP99Ms)[Math.floor((latencyRounds.length - 1) / 2)]!;
    const tcpHop = await hopFloor(ctx, 'tcp');
    const grpcHop = await hopFloor(ctx, 'grpc');
    rows.push(tcpHop.row, grpcHop.row);
    const rate = SIDECAR_LATENCY_RATE;
    return {
      rows,
      result: {
        sidecars: args.sidecars,
        throughput: throughput.result,
        single: single.result,
        latency: {
          ratePerSec: rate,
          direct: median.direct,
          sidecar: median.sidecar,
          addedP99Ms: median.addedP99Ms,
          rounds: latencyRounds.map((r) => ({ directP99Ms: r.direct.consumer.p99Ms, sidecarP99Ms: r.sidecar.consumer.p99Ms, addedP99Ms: r.addedP99Ms })),
          hops: { tcp: tcpHop.result, grpc: grpcHop.result },
        },
      },
    };
  } finally {
    await Promise.all(started.map((s) => s.stop()));
  }
}

async function main(): Promise<void> {
  fs.mkdirSync(outDir, { recursive: true });
  const started = new Date();
  const dataDir = path.join(tmpRoot, 'broker');
  const brokerArgs = ['--max-message-bytes', String(BROKER_MAX_MESSAGE_BYTES)];
  if (args.flush !== undefined) brokerArgs.push('--flush', args.flush);
  const flushMode = args.flush ?? 'every-batch';

  log(`temp folder ${tmpRoot} (${os.cpus().length} CPUs, node ${process.version})`);
  const machine = await measureMachine();
  log(`disk ${machine.diskFsyncMBps.toFixed(0)} MB/s with fdatasync per MiB, ${machine.diskNoFsyncMBps.toFixed(0)} MB/s without; tcp ${machine.tcpMBps.toFixed(0)} MB/s`);

  const broker = await BenchBroker.start(dataDir, brokerArgs, nodeArgsFor('broker'));
  const sampler = new ProcSampler(broker.pid);
  sampler.start();
  log(`broker pid ${broker.pid} on ${broker.address}, flush ${flushMode}`);
  const admin = new KmqClient({ brokers: [broker.address], clientId: 'bench-admin' });
  const rows: Row[] = [];
  const results: Results = { produce: {}, consume: {}, e2e: {}, queue: {}, exchange: {}, exchangeRunOrder: EXCHANGE_RUN_ORDER };
  const runProduce = args.suite === 'produce' || args.suite === 'consume' || args.suite === 'all';
  const runConsume = args.suite === 'consume' || args.suite === 'all';
  const runE2e = args.suite === 'e2e' || args.suite === 'all';
  const runQueues = args.suite === 'queue' || args.suite === 'all';
  const runExchanges = args.suite === 'exchange' || args.suite === 'all';
  const runSidecarSuite = args.suite === 'sidecar' || args.suite === 'all';
  const runCluster = args.suite === 'cluster';
  const ctx: RunContext = { broker, sampler, admin };

  try {
    if (runProduce) {
      for (const recordBytes of RECORD_SIZES) {
        for (const partitions of PARTITION_COUNTS) {
          const name = `${recordBytes} B × ${partitions}p`;
          const topic = `bench-${recordBytes}b-${partitions}p`;
          await admin.admin().createTopic(topic, { partitions });
          const records = sizes.recordsFor(recordBytes);
          log(`produce ${name}: ${records.toLocaleString('en-US')} records`);
          const phase = await Phase.begin(sampler, broker.httpPort);
          const cfg: ProduceConfig = { broker: broker.address, topic, records, recordBytes, callSize: callSizeFor(recordBytes), callsInFlight: 8, producer: throughputProducer };
          const r = await startWorker<ThroughputResult>('produce', cfg, nodeArgsFor('producer')).result;
          const { produceRequests, ...b } = await phase.end();
          const logBytes = folderBytes(dataDir) - Object.values(results.produce).reduce((s, x) => s + x.logBytes, 0);
          results.produce[name] = { ...r, logBytes, produceRequests, brokerProduceMs: b.brokerProduceMs };
          const mb = r.bytes / MB / (r.elapsedMs / 1000);
          rows.push({
            workload: `produce ${name}`,
            recordsPerSec: r.records / (r.elapsedMs / 1000),
            mbPerSec: mb,
            diskFsyncFraction: 0,
            clientCpuPct: clientCpuPct(r),
            ...b,
          });

          if (runConsume) {
            log(`consume ${name}: catch-up read of ${records.toLocaleString('en-US')} records`);
            const cphase = await Phase.begin(sampler, broker.httpPort);
            const ccfg: ConsumeConfig = { broker: broker.address, topic, partitions, records };
            const c = await startWorker<ThroughputResult>('consume', ccfg, nodeArgsFor('consumer')).result;
            const { produceRequests: _none, brokerProduceMs: _unused, ...cb } = await cphase.end();
            results.consume[name] = c;
            rows.push({ workload: `consume ${name}`, recordsPerSec: c.records / (c.elapsedMs / 1000), mbPerSec: c.bytes / MB / (c.elapsedMs / 1000), clientCpuPct: clientCpuPct(c), ...cb });
          }
        }
      }
    }

    if (runE2e) {
      for (const recordBytes of RECORD_SIZES) {
        for (const partitions of PARTITION_COUNTS) {
          const name = `${recordBytes} B × ${partitions}p`;
          const topic = `bench-e2e-${recordBytes}b-${partitions}p`;
          await admin.admin().createTopic(topic, { partitions });
          const records = Math.round((sizes.e2eRate * sizes.e2eMs) / 1000);
          log(`e2e ${name}: ${sizes.e2eRate.toLocaleString('en-US')} records/s for ${sizes.e2eMs / 1000} s`);
          const phase = await Phase.begin(sampler, broker.httpPort);
          const consumer = startWorker<LatencyResult>(
            'e2e-consume',
            { broker: broker.address, topic, partitions, records, warmupMs: sizes.e2eWarmupMs, timeoutMs: sizes.e2eMs + 60_000 } satisfies E2eConsumeConfig,
            nodeArgsFor('consumer'),
          );
          await consumer.event('ready');
          const producer = startWorker<E2eProduceResult>(
            'e2e-produce',
            { broker: broker.address, topic, recordBytes, ratePerSec: sizes.e2eRate, durationMs: sizes.e2eMs, producer: e2eProducer } satisfies E2eProduceConfig,
            nodeArgsFor('producer'),
          );
          const [p, c] = await Promise.all([producer.result, consumer.result]);
          const { produceRequests, ...b } = await phase.end();
          results.e2e[name] = { producer: p, consumer: c, produceRequests };
          const lost = p.records - c.records;
          rows.push({
            workload: `e2e ${name} @${sizes.e2eRate / 1000}k/s`,
            ...latencyColumns(c, recordBytes),
            clientCpuPct: clientCpuPct(p) + clientCpuPct(c),
            ...b,
            note: lost !== 0 ? `consumer got ${c.records} of ${p.records}` : p.maxScheduleLagMs > 20 ? `producer fell ${p.maxScheduleLagMs.toFixed(0)} ms behind schedule` : undefined,
          });
        }
      }
    }

    if (runQueues) {
      for (const partitions of QUEUE_PARTITIONS) {
        const q = await runQueue(ctx, partitions);
        results.queue[`${partitions}p`] = q.result;
        rows.push(...q.rows);
      }
    }

    if (runExchanges) {
      const targets = new Map<number, { exchange: string; dest: string }>();
      for (const bindings of EXCHANGE_BINDINGS) {
        targets.set(bindings, await setUpExchange(ctx, bindings));
        results.exchange[String(bindings)] = { bindings, routingKey: EXCHANGE_ROUTING_KEY, publishers: [], perSec: [], meanPerSec: 0 };
      }
      for (const bindings of EXCHANGE_RUN_ORDER) {
        const r = results.exchange[String(bindings)]!;
        const x = await runExchange(ctx, bindings, r.perSec.length + 1, targets.get(bindings)!);
        r.publishers.push(x.publisher);
        r.perSec.push(x.perSec);
        r.meanPerSec = r.perSec.reduce((a, b) => a + b, 0) / r.perSec.length;
        rows.push(x.row);
      }
    }

    if (runSidecarSuite) {
      const s = await runSidecar(ctx);
      results.sidecar = s.result;
      rows.push(...s.rows);
    }

    if (runCluster) {
      const c = await runClusterSuite(
        { broker, sampler, admin },
        {
          dir: path.join(tmpRoot, 'cluster'),
          brokerArgs,
          nodeArgs: { broker: nodeArgsFor('broker'), producer: nodeArgsFor('producer'), consumer: nodeArgsFor('consumer') },
          produceRecords: sizes.recordsFor(1024),
          callSize: callSizeFor(1024),
          callsInFlight: 8,
          throughputProducer,
          e2eProducer,
          e2eMs: sizes.e2eMs,
          e2eWarmupMs: sizes.e2eWarmupMs,
          log,
        },
      );
      results.cluster = { ...c.result, comparison: c.comparisons };
      rows.push(...c.rows);
    }
  } finally {
    await admin.close().catch(() => {});
    sampler.stop();
    const cpus = os.cpus().length;
    for (const r of rows) {
      if (r.machineCpuPct === undefined) continue;
      r.otherCpuPct = Math.max(0, r.machineCpuPct * cpus - (r.brokerCpuPct ?? 0) - (r.clientCpuPct ?? 0) - (r.sidecarCpuPct ?? 0) - (r.etcdCpuPct ?? 0));
      if (r.otherCpuPct > 30) r.note = `${r.note === undefined ? '' : `${r.note}; `}BUSY MACHINE (other CPU ${r.otherCpuPct.toFixed(0)}%): rerun`;
    }
    await broker.stop();
  }
  // Virtual disks drift (burst credits, neighbours): measure again and compare against the mean.
  log('disk: fdatasync per MiB again, after the workloads');
  const diskFsyncAfterMBps = mbps(await disk(true));
  const diskFsyncMeanMBps = (machine.diskFsyncMBps + diskFsyncAfterMBps) / 2;
  for (const r of rows) if (r.diskFsyncFraction !== undefined) r.diskFsyncFraction = r.mbPerSec! / diskFsyncMeanMBps;

  const machineRows: Row[] = [
    { workload: 'disk write, fdatasync / MiB', mbPerSec: machine.diskFsyncMBps, note: 'before the workloads' },
    { workload: 'disk write, fdatasync / MiB', mbPerSec: diskFsyncAfterMBps, note: 'after the workloads' },
    { workload: 'disk write, one fdatasync', mbPerSec: machine.diskNoFsyncMBps },
    { workload: 'loopback TCP, 1 MiB writes', mbPerSec: machine.tcpMBps },
  ];
  const peakRssMb = sampler.peakRss / MiB;
  const targets = checkTargets(rows, diskFsyncMeanMBps, peakRssMb, results.exchange, results.sidecar);

  const report = {
    started: started.toISOString(),
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryBytes: os.totalmem(), node: process.version, platform: `${os.platform()} ${os.release()}`, tmpdir: os.tmpdir() },
    settings: {
      flush: flushMode,
      brokerMaxMessageBytes: BROKER_MAX_MESSAGE_BYTES,
      throughputProducer,
      e2eProducer,
      callSize: Object.fromEntries(RECORD_SIZES.map((b) => [b, callSizeFor(b)])),
      callsInFlight: 8,
      queue: { partitions: QUEUE_PARTITIONS, consumers: QUEUE_CONSUMERS, messageBytes: QUEUE_MESSAGE_BYTES, prefetch: args.prefetch, consumerMode: args.consumerMode, ack: 'per message (delivery.ack())' },
      exchange: { type: 'topic', bindings: EXCHANGE_BINDINGS, routingKey: EXCHANGE_ROUTING_KEY, matchingBindings: 1, sinkQueues: EXCHANGE_SINKS },
      publish: { callSize: args.publishCallSize, callsInFlight: args.publishCallsInFlight, messageBytes: QUEUE_MESSAGE_BYTES },
      sidecar: {
        sidecars: args.sidecars,
        messageBytes: SIDECAR_MESSAGE_BYTES,
        publishInFlight: SIDECAR_PUBLISH_IN_FLIGHT,
        subscription: { mode: 'ordered', guarantee: 'at-least-once', partitions: 1, maxInFlight: SIDECAR_MAX_IN_FLIGHT, latencyMaxInFlight: 'default' },
        latencyRatePerSec: SIDECAR_LATENCY_RATE,
        ack: 'per delivery',
      },
      sizes,
      quick,
    },
    limits: { ...machine, diskFsyncAfterMBps, diskFsyncMeanMBps },
    brokerPeakRssBytes: sampler.peakRss,
    rows,
    results,
    targets,
  };
  const file = path.join(outDir, 'latest.json');
  fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(path.join(outDir, `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`), `${JSON.stringify(report, null, 2)}\n`);

  process.stdout.write(`\nkmq broker benchmark (${quick ? 'quick' : 'full'}; flush ${flushMode}; ${os.cpus().length} CPUs; node ${process.version})\n\n`);
  process.stdout.write(`${formatTable([...machineRows, ...rows])}\n\n`);
  if (results.cluster !== undefined) {
    const c = results.cluster;
    process.stdout.write(
      `single broker (1, acks=${c.acks.single}) beside ${c.brokers} brokers + etcd (3, replication factor ${c.replicationFactor}, min.insync.replicas ${c.minInsyncReplicas}, acks=${c.acks.cluster}); ${c.recordBytes} B records; flush ${flushMode} on every broker; µs/record = broker CPU per record, all brokers together:\n`,
    );
    process.stdout.write(`${formatComparison(c.comparison)}\n\n`);
  }
  process.stdout.write(`broker peak RSS over the whole run: ${peakRssMb.toFixed(0)} MB\n`);
  process.stdout.write(`targets (reported, not asserted):\n${formatTargets(targets)}\n\n`);
  if (args.cpuProf !== undefined) process.stdout.write(`CPU profiles (${args.cpuProf}): ${profDir}\n`);
  process.stdout.write(`JSON: ${file}\n`);
}

function checkTargets(rows: Row[], diskFsyncMBps: number, peakRssMb: number, exchange: Results['exchange'], sidecar: SidecarRunResult | undefined): TargetCheck[] {
  const row = (w: string): Row | undefined => rows.find((r) => r.workload === w);
  const checks: TargetCheck[] = [];
  const p100 = row('produce 100 B × 1p');
  if (p100 !== undefined) {
    checks.push({ target: 'produce >= 500,000 records/s of 100 B into 1 partition, acks=leader', measured: `${Math.round(p100.recordsPerSec!).toLocaleString('en-US')} records/s`, met: p100.recordsPerSec! >= 500_000 });
  }
  for (const w of ['produce 1024 B × 1p', 'produce 1024 B × 8p']) {
    const r = row(w);
    if (r === undefined) continue;
    checks.push({
      target: `${w} >= 200 MB/s`,
      measured: `${r.mbPerSec!.toFixed(0)} MB/s = ${((r.mbPerSec! / diskFsyncMBps) * 100).toFixed(0)}% of disk with fdatasync per MiB (${diskFsyncMBps.toFixed(0)} MB/s, mean of before and after)`,
      met: r.mbPerSec! >= 200,
    });
  }
  const c100 = row('consume 100 B × 1p');
  if (c100 !== undefined) {
    checks.push({ target: 'consume >= 1,000,000 records/s of 100 B catching up', measured: `${Math.round(c100.recordsPerSec!).toLocaleString('en-US')} records/s`, met: c100.recordsPerSec! >= 1_000_000 });
  }
  for (const partitions of QUEUE_PARTITIONS) {
    const r = row(`queue 1 KiB × ${partitions}p, ${QUEUE_CONSUMERS} cons`);
    if (r === undefined) continue;
    checks.push({ target: `queue ${partitions}p, ${QUEUE_CONSUMERS} consumers, ack per message >= 100,000 messages/s end to end`, measured: `${Math.round(r.recordsPerSec!).toLocaleString('en-US')} messages/s`, met: r.recordsPerSec! >= 100_000 });
  }
  const x1 = exchange['1'];
  const x1000 = exchange['1000'];
  if (x1 !== undefined && x1000 !== undefined) {
    const loss = 1 - x1000.meanPerSec / x1.meanPerSec;
    const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
    checks.push({
      target: 'topic exchange with 1,000 bindings publishes no more than 20% below 1 binding',
      measured: `mean of ${x1000.perSec.length} runs each: ${fmt(x1000.meanPerSec)} vs ${fmt(x1.meanPerSec)} messages/s: ${(Math.abs(loss) * 100).toFixed(1)}% ${loss >= 0 ? 'lower' : 'higher'}`,
      met: loss <= 0.2,
    });
  }
  if (sidecar !== undefined) {
    const t = sidecar.throughput;
    checks.push({
      target: `sidecar >= 50,000 messages/s of ${SIDECAR_MESSAGE_BYTES} B end to end (PublishStream → Consume, ack each, 1 partition, ordered, at-least-once)`,
      measured: `${Math.round(t.endToEndPerSec).toLocaleString('en-US')} messages/s, ${sidecar.sidecars === 2 ? `two sidecars (the publisher's, the consumer's), CPU ${t.publisherSidecarCpuPct.toFixed(0)}% + ${t.consumerSidecarCpuPct.toFixed(0)}%` : `one sidecar, CPU ${t.sidecarCpuPct.toFixed(0)}%`}`,
      met: t.endToEndPerSec >= 50_000,
    });
    const l = sidecar.latency;
    checks.push({
      target: `sidecar adds <= 1 ms to the end-to-end p99 at ${l.ratePerSec.toLocaleString('en-US')} messages/s`,
      measured: `p99 ${l.sidecar.consumer.p99Ms.toFixed(2)} ms via sidecar vs ${l.direct.consumer.p99Ms.toFixed(2)} ms direct: ${signedMs(l.addedP99Ms)}${l.rounds.length > 1 ? ` (the median of ${l.rounds.length} rounds: ${l.rounds.map((r) => signedMs(r.addedP99Ms)).join(', ')})` : ''}; one bare gRPC hop alone: p50 ${l.hops.grpc.p50Ms.toFixed(2)} ms, p99 ${l.hops.grpc.p99Ms.toFixed(2)} ms (raw TCP: ${l.hops.tcp.p99Ms.toFixed(2)} ms)`,
      met: l.addedP99Ms <= 1,
    });
  }
  checks.push({ target: 'broker RSS < 300 MB', measured: `peak ${peakRssMb.toFixed(0)} MB`, met: peakRssMb < 300 });
  return checks;
}

main().then(
  () => {
    cleanupSync();
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    cleanupSync();
    process.exit(1);
  },
);
