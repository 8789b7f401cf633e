/**
 * Comparison benchmark: `node dist/bench/compare.js [--quick] [--reps N]
 * [--systems kmq,kafka,...] [--no-install]`.
 *
 * Installs the peers (bench/peers/install-*.sh, each idempotent), measures the
 * machine's limits, starts kmq and every peer that installed on loopback, then runs
 * each workload on every system, interleaved (the systems' order rotates with every
 * repetition), each client in its own worker process running the same code
 * (compare-workloads.ts). Writes .bench-out/compare/report.md, PNG charts and
 * results.json; progress goes to stderr.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BandwidthResult, DiskConfig, LatencyResult, SidecarConsumeConfig, SidecarPublishConfig, SidecarPublishResult, TcpSourceConfig } from './bench-config.js';
import { BenchBroker, BenchSidecar, killAll, startWorker, stopWhenAcked } from './processes.js';
import type { WorkerHandle } from './processes.js';
import { tallyDeliveries } from './delivery-tally.js';
import type {
  CompareE2eConsumeConfig,
  CompareE2eProduceConfig,
  CompareE2eProduceResult,
  CompareLatencyResult,
  CompareProduceConfig,
  CompareQueueConsumeConfig,
  CompareQueueConsumeResult,
  CompareQueuePublishConfig,
  CompareThroughputResult,
} from './compare-workloads.js';
import { SYSTEMS, openClient } from './peers/peer-client.js';
import type { PeerClient, SystemId } from './peers/peer-client.js';
import { installScriptsDir, killAllPeers } from './peers/peer-process.js';
import type { RunningPeer } from './peers/peer-process.js';
import { KAFKA_PERF_PRODUCER_PROPS, kafkaMissing, kafkaProducerPerf, startKafka } from './peers/kafka.js';
import { natsMissing, startNats } from './peers/nats.js';
import { rabbitmqMissing, startRabbitmq } from './peers/rabbitmq.js';
import { redisMissing, startRedis } from './peers/redis.js';
import { KMQ_PRODUCER } from './peers/kmq-client.js';
import { barChart, latencyChart } from './charts.js';
import { fix, int, latencyCells, latencyFigures, p99Ratio, pct, summarise } from './compare-summary.js';
import type { RunResult, Summary } from './compare-summary.js';
import type { BarPoint, ChartFile, LatencyPoint } from './charts.js';

const MiB = 1024 * 1024;
const MB = 1e6;

/** Servers: RabbitMQ serves both of its queue types. */
type ServerId = 'kmq' | 'kafka' | 'rabbitmq' | 'nats' | 'redis';
const SERVER_OF: Record<SystemId, ServerId> = { kmq: 'kmq', 'kmq-sidecar': 'kmq', kafka: 'kafka', 'kafka-java': 'kafka', 'rabbitmq-classic': 'rabbitmq', 'rabbitmq-quorum': 'rabbitmq', nats: 'nats', redis: 'redis' };

interface Args {
  quick: boolean;
  reps: number;
  systems: SystemId[];
  install: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, reps: 0, systems: [...SYSTEMS], install: true };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === '--quick') a.quick = true;
    else if (x === '--no-install') a.install = false;
    else if (x === '--reps') a.reps = Number(argv[++i]);
    else if (x === '--systems') {
      const list = (argv[++i] ?? '').split(',').filter((s) => s !== '');
      const bad = list.filter((s) => !(SYSTEMS as readonly string[]).includes(s));
      if (bad.length > 0) usage(`unknown system(s) ${bad.join(', ')}; known: ${SYSTEMS.join(', ')}`);
      a.systems = list as SystemId[];
    } else usage(`unknown argument "${x}"`);
  }
  if (a.reps === 0) a.reps = a.quick ? 2 : 3;
  if (!Number.isInteger(a.reps) || a.reps < 1 || a.reps > 20) usage('--reps must be an integer from 1 to 20');
  if (!a.systems.includes('kmq')) usage('--systems must include kmq (every ratio is kmq / peer)');
  return a;
}

function usage(problem: string): never {
  process.stderr.write(`compare: ${problem}\nusage: node dist/bench/compare.js [--quick] [--reps N] [--systems ${SYSTEMS.join(',')}] [--no-install]\n`);
  process.exit(2);
}

const args = parseArgs(process.argv.slice(2));
const quick = args.quick;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const outDir = path.join(repoRoot, '.bench-out', 'compare');

/** Workload sizes; --quick runs are short (the JIT is still warming up: check the harness, do not quote). */
const sizes = {
  produceRecords: quick ? 200_000 : 2_000_000,
  /** No new produce call after this long: a slow system sends fewer records rather than taking longer. */
  produceMaxMs: quick ? 2000 : 8000,
  produceBytes: 100,
  /** 1 KiB produce: shorter runs (the disk, not the call count, sets the pace) to keep a full run under 20 minutes. */
  produce1kRecords: quick ? 100_000 : 1_000_000,
  produce1kMaxMs: quick ? 1000 : 4000,
  /** kafka-java has no time cap: fewer records at 1 KiB. */
  kafkaJava1kRecords: quick ? 50_000 : 300_000,
  largeBytes: 1024,
  /** Values per call: 10,000 × 100 B; at 1 KiB 1,000 (about 1 MB a call, under Kafka's 1 MiB message.max.bytes). */
  produceCallSize: 10_000,
  produce1kCallSize: 1000,
  produceCallsInFlight: 8,
  /** End-to-end rates: the workload's 50,000 msg/s, and a rate every system here can take. */
  e2eRates: [50_000, 5_000],
  e2eBytes: 100,
  e2eMs: quick ? 2000 : 6000,
  e2e1kMs: quick ? 2000 : 4000,
  e2eWarmupMs: quick ? 500 : 2000,
  /** The producer stops once it is this far behind its schedule: the system cannot take the rate. */
  e2eGiveUpLagMs: 500,
  queueMessages: quick ? 20_000 : 60_000,
  queueBytes: 1024,
  queueConsumers: 4,
  queuePrefetch: 1000,
  queueCallSize: 250,
  queueCallsInFlight: 8,
  /** kmq-sidecar: PublishBatch entries at most, PublishStream messages unanswered at most, the subscription's max in flight, Consume max_batch. */
  sidecarPublishBatch: 1000,
  sidecarPublishInFlight: 10_000,
  sidecarMaxInFlight: 2000,
  sidecarConsumeBatch: 500,
  /** e2e: wait after Consume started before publishing (the subscription's group join). */
  sidecarSettleMs: 1000,
  /** kmq-sidecar produce: a fixed count (sidecarPublish has no time cap). */
  sidecarProduceMessages: quick ? 100_000 : 300_000,
  sidecarProduce1kMessages: quick ? 50_000 : 150_000,
  diskBytes: quick ? 64 * MiB : 256 * MiB,
  tcpMs: quick ? 1000 : 3000,
};

type WorkloadKind = 'produce' | 'e2e' | 'queue';
interface Workload {
  id: string;
  kind: WorkloadKind;
  title: string;
  partitions: number;
  /** Value size, bytes. */
  bytes: number;
  /** produce: records at most, and no new call after maxMs. */
  records?: number;
  maxMs?: number;
  /** e2e: messages per second, for durationMs. */
  rate?: number;
  durationMs?: number;
  /** produce: values per call. */
  callSize?: number;
  /** Run in the first repetitions only (1 KiB workloads: 1 under --quick, 2 otherwise, to stay under 5 and 20 minutes). */
  maxReps?: number;
  /** Systems that cannot run it, with the reason. */
  notFor: Partial<Record<SystemId, string>>;
}

const NO_PARTITIONS = 'no partitions: one queue or stream is one log';
const PRODUCE_ONLY = "Kafka's perf tool row measures produce only";
const SIDECAR_ONE_PARTITION = 'the sidecar row measures the 1-partition produce and e2e paths only';
const SIDECAR_NO_QUEUE = 'the sidecar row covers the log path (PublishStream, Consume of a topic subscription), not queues';
const kb = (bytes: number): string => (bytes === 1024 ? '1 KiB' : `${bytes} B`);
const produceWorkload = (partitions: number, bytes: number): Workload => ({
  id: `produce-${partitions}p${bytes === sizes.largeBytes ? '-1k' : ''}`,
  kind: 'produce',
  title: `produce ${kb(bytes)}, ${partitions} partition${partitions === 1 ? '' : 's'}, max rate`,
  partitions,
  bytes,
  records: bytes === sizes.largeBytes ? sizes.produce1kRecords : sizes.produceRecords,
  maxMs: bytes === sizes.largeBytes ? sizes.produce1kMaxMs : sizes.produceMaxMs,
  callSize: bytes === sizes.largeBytes ? sizes.produce1kCallSize : sizes.produceCallSize,
  maxReps: bytes === sizes.largeBytes ? (quick ? 1 : 2) : undefined,
  notFor: partitions === 1 ? {} : { 'rabbitmq-classic': NO_PARTITIONS, 'rabbitmq-quorum': NO_PARTITIONS, nats: NO_PARTITIONS, redis: NO_PARTITIONS, 'kmq-sidecar': SIDECAR_ONE_PARTITION },
});
const e2eWorkload = (rate: number, bytes: number): Workload => ({
  id: `e2e-${rate / 1000}k${bytes === sizes.largeBytes ? '-1k' : ''}`,
  kind: 'e2e',
  rate,
  bytes,
  durationMs: bytes === sizes.largeBytes ? sizes.e2e1kMs : sizes.e2eMs,
  maxReps: bytes === sizes.largeBytes ? (quick ? 1 : 2) : undefined,
  title: `end to end ${kb(bytes)} at ${rate.toLocaleString('en-US')} msg/s, 1 partition`,
  partitions: 1,
  notFor: { 'kafka-java': PRODUCE_ONLY },
});
const WORKLOADS: Workload[] = [
  produceWorkload(1, sizes.produceBytes),
  produceWorkload(16, sizes.produceBytes),
  produceWorkload(1, sizes.largeBytes),
  produceWorkload(16, sizes.largeBytes),
  ...sizes.e2eRates.map((rate) => e2eWorkload(rate, sizes.e2eBytes)),
  e2eWorkload(50_000, sizes.largeBytes),
  {
    id: 'queue',
    kind: 'queue',
    title: `work queue ${sizes.queueBytes} B, ${sizes.queueConsumers} consumers, ack per message`,
    partitions: 1,
    bytes: sizes.queueBytes,
    notFor: { kafka: 'no work queue in kafkajs (Kafka share groups, KIP-932, need the Java client)', 'kafka-java': PRODUCE_ONLY, 'kmq-sidecar': SIDECAR_NO_QUEUE },
  },
];

interface SystemState {
  id: SystemId;
  address?: string;
  version?: string;
  serverSettings: string[];
  failure?: string;
  pids: () => number[];
  admin?: PeerClient;
}

function log(msg: string): void {
  process.stderr.write(`compare: ${msg}\n`);
}

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-compare-'));
const running: Array<{ stop(): Promise<void> }> = [];
let cleanedUp = false;
function cleanupSync(): void {
  if (cleanedUp) return;
  cleanedUp = true;
  killAll();
  killAllPeers();
  fs.rmSync(tmpRoot, { recursive: true, force: true });
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\ncompare: ${sig}, stopping\n`);
    cleanupSync();
    process.exit(130);
  });
}

// ---- installing and starting ----

const INSTALLERS: Record<Exclude<ServerId, 'kmq'>, string> = { kafka: 'install-kafka.sh', rabbitmq: 'install-rabbitmq.sh', nats: 'install-nats.sh', redis: 'install-redis.sh' };

/** Runs a peer's install script; the reason it failed, or undefined. */
function install(server: Exclude<ServerId, 'kmq'>): string | undefined {
  const script = path.join(installScriptsDir(), INSTALLERS[server]);
  const t0 = Date.now();
  const r = spawnSync('bash', [script], { encoding: 'utf8', timeout: 20 * 60_000 });
  for (const line of `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').filter((l) => l.trim() !== '')) log(`  ${line}`);
  if (r.status === 0) {
    log(`${server}: install step done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return undefined;
  }
  const last = ((r.stderr ?? '').trim().split('\n').pop() ?? '').replace(/\x1b\[[0-9;]*m/g, '');
  return `${INSTALLERS[server]} failed (${r.error?.message ?? `exit ${r.status}`}): ${last}`;
}

const MISSING: Record<Exclude<ServerId, 'kmq'>, () => string | undefined> = { kafka: kafkaMissing, rabbitmq: rabbitmqMissing, nats: natsMissing, redis: redisMissing };
const STARTERS: Record<Exclude<ServerId, 'kmq'>, () => Promise<RunningPeer>> = { kafka: startKafka, rabbitmq: startRabbitmq, nats: startNats, redis: startRedis };

const KMQ_BROKER_ARGS = ['--max-message-bytes', String(2 * MiB), '--flush', 'interval'];

interface ServerInfo {
  address?: string;
  version?: string;
  settings: string[];
  failure?: string;
  pids: () => number[];
}

async function startServer(server: ServerId): Promise<ServerInfo> {
  const t0 = Date.now();
  if (server === 'kmq') {
    const broker = await BenchBroker.start(path.join(tmpRoot, 'kmq'), KMQ_BROKER_ARGS);
    running.push(broker);
    log(`kmq: broker up on ${broker.address} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    return {
      address: broker.address,
      version: `kmq ${pkg.version} (this checkout, ${gitHead()}), Node ${process.version}`,
      settings: [`kmq broker ${KMQ_BROKER_ARGS.join(' ')} (flush interval: 1000 ms; the queue's __share_state journal is always flushed before an answer)`],
      pids: () => [broker.pid],
    };
  }
  const missing = MISSING[server]();
  if (missing !== undefined) return { settings: [], failure: `not installed: ${missing}`, pids: () => [] };
  try {
    const peer = await STARTERS[server]();
    running.push(peer);
    log(`${server}: up on ${peer.address} in ${((Date.now() - t0) / 1000).toFixed(1)} s (${peer.version})`);
    return { address: peer.address, version: peer.version, settings: peer.settings, pids: () => peer.pids() };
  } catch (err) {
    return { settings: [], failure: `did not start: ${firstLines((err as Error).message, 6)}`, pids: () => [] };
  }
}

function firstLines(s: string, n: number): string {
  return s.split('\n').slice(0, n).join(' | ');
}

function gitHead(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown commit';
}

// ---- machine ----

const mbps = (r: BandwidthResult): number => r.bytes / MB / (r.elapsedMs / 1000);

interface MachineLimits {
  diskFsyncMBps: number;
  diskNoFsyncMBps: number;
  tcpMBps: number;
}

async function measureMachine(): Promise<MachineLimits> {
  const disk = (syncEachChunk: boolean): Promise<BandwidthResult> =>
    startWorker<BandwidthResult>('disk', { dir: path.join(tmpRoot, 'disk'), totalBytes: sizes.diskBytes, chunkBytes: MiB, syncEachChunk } satisfies DiskConfig).result;
  log(`machine: disk ${sizes.diskBytes / MiB} MiB in 1 MiB writes, fdatasync after each`);
  const fsync = await disk(true);
  log(`machine: disk ${sizes.diskBytes / MiB} MiB, one fdatasync at the end`);
  const nofsync = await disk(false);
  log(`machine: loopback TCP, 1 MiB writes for ${sizes.tcpMs} ms`);
  const sink = startWorker<BandwidthResult>('tcp-sink', {});
  const { port } = (await sink.event('listening')) as { port: number };
  const source = startWorker<BandwidthResult>('tcp-source', { port, durationMs: sizes.tcpMs, chunkBytes: MiB } satisfies TcpSourceConfig);
  const [received] = await Promise.all([sink.result, source.result]);
  return { diskFsyncMBps: mbps(fsync), diskNoFsyncMBps: mbps(nofsync), tcpMBps: mbps(received) };
}

/** CPU time (user + system) of each pid so far, ms. */
function cpuOf(pids: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      m.set(pid, (Number(f[11]) + Number(f[12])) * 10);
    } catch {
      // Gone.
    }
  }
  return m;
}

/** Measures a server's CPU over an interval: call the returned function at its end; % of one core. */
function serverCpu(s: SystemState, extraPids: number[] = []): () => number {
  const before = cpuOf([...s.pids(), ...extraPids]);
  const t0 = performance.now();
  return () => {
    const after = cpuOf([...s.pids(), ...extraPids]);
    let ms = 0;
    for (const [pid, v] of after) ms += v - (before.get(pid) ?? 0);
    return (ms / (performance.now() - t0)) * 100;
  };
}

// ---- workloads ----

type Handle<R> = WorkerHandle<R>;
const compareWorker = <R>(config: Record<string, unknown>): Handle<R> => startWorker<R>('compare', config);

async function runProduce(s: SystemState, w: Workload, name: string, rep: number): Promise<RunResult> {
  await s.admin!.createLog(name, w.partitions);
  if (s.id === 'kmq-sidecar') return runSidecarProduce(s, w, name, rep);
  const cpu = serverCpu(s);
  if (s.id === 'kafka-java') {
    const k = await kafkaProducerPerf(s.address!, name, w.bytes === sizes.largeBytes ? sizes.kafkaJava1kRecords : sizes.produceRecords, w.bytes);
    return { system: s.id, workload: w.id, rep, msgsPerSec: k.recordsPerSec, mbPerSec: (k.recordsPerSec * w.bytes) / MB, serverCpuPct: cpu(), clientCpuPct: NaN, problems: [], raw: k };
  }
  const cfg: CompareProduceConfig = { role: 'produce', system: s.id, address: s.address!, name, records: w.records!, recordBytes: w.bytes, callSize: w.callSize!, callsInFlight: sizes.produceCallsInFlight, maxMs: w.maxMs! };
  const r = await compareWorker<CompareThroughputResult>({ ...cfg }).result;
  const serverCpuPct = cpu();
  const sec = r.elapsedMs / 1000;
  return {
    system: s.id,
    workload: w.id,
    rep,
    msgsPerSec: r.records / sec,
    mbPerSec: (r.records * w.bytes) / MB / sec,
    serverCpuPct,
    clientCpuPct: ((r.cpuUserMs + r.cpuSystemMs) / r.elapsedMs) * 100,
    problems: [],
    raw: r,
  };
}

async function runE2e(s: SystemState, w: Workload, name: string, rep: number): Promise<RunResult> {
  await s.admin!.createLog(name, w.partitions);
  if (s.id === 'kmq-sidecar') return runSidecarE2e(s, w, name, rep);
  const rate = w.rate!;
  const records = Math.round((rate * w.durationMs!) / 1000);
  const consumerCfg: CompareE2eConsumeConfig = { role: 'e2e-consume', system: s.id, address: s.address!, name, partitions: w.partitions, records, warmupMs: sizes.e2eWarmupMs, timeoutMs: w.durationMs! + 30_000, idleMs: 1500 };
  const consumer = compareWorker<CompareLatencyResult>({ ...consumerCfg });
  await consumer.event('ready');
  const cpu = serverCpu(s);
  const producerCfg: CompareE2eProduceConfig = { role: 'e2e-produce', system: s.id, address: s.address!, name, recordBytes: w.bytes, ratePerSec: rate, durationMs: w.durationMs!, giveUpLagMs: sizes.e2eGiveUpLagMs };
  const producer = compareWorker<CompareE2eProduceResult>({ ...producerCfg });
  const [p, c] = await Promise.all([producer.result, consumer.result]);
  const serverCpuPct = cpu();
  const achievedRate = p.records / (p.elapsedMs / 1000);
  const problems: string[] = [];
  if (p.gaveUp) problems.push(`OVERLOADED: the send loop fell ${sizes.e2eGiveUpLagMs} ms behind ${rate.toLocaleString('en-US')} msg/s after ${p.records.toLocaleString('en-US')} messages and stopped`);
  else if (achievedRate < rate * 0.95) problems.push(`OVERLOADED: only ${Math.round(achievedRate).toLocaleString('en-US')} msg/s acknowledged (the client buffered the rest)`);
  if (c.records < p.records) problems.push(`received ${c.records.toLocaleString('en-US')} of ${p.records.toLocaleString('en-US')} sent`);
  const receivedRate = c.records / (c.elapsedMs / 1000);
  if (!(c.measured > 0)) problems.push(`no latency measured: nothing received after the first ${sizes.e2eWarmupMs / 1000} s`);
  if (!p.gaveUp && receivedRate < achievedRate * 0.95) problems.push(`OVERLOADED: the consumer received only ${Math.round(receivedRate).toLocaleString('en-US')} msg/s`);
  return {
    system: s.id,
    workload: w.id,
    rep,
    msgsPerSec: c.records / (c.elapsedMs / 1000),
    mbPerSec: (c.records * w.bytes) / MB / (c.elapsedMs / 1000),
    ...latencyFigures(c),
    achievedRate,
    serverCpuPct,
    clientCpuPct: ((p.cpuUserMs + p.cpuSystemMs) / p.elapsedMs + (c.cpuUserMs + c.cpuSystemMs) / Math.max(1, c.elapsedMs)) * 100,
    problems,
    raw: { producer: p, consumer: c },
  };
}

async function runQueue(s: SystemState, w: Workload, name: string, rep: number): Promise<RunResult> {
  await s.admin!.createQueue(name);
  const messages = sizes.queueMessages;
  const consumers: Array<Handle<CompareQueueConsumeResult>> = [];
  for (let i = 0; i < sizes.queueConsumers; i++) {
    const cfg: CompareQueueConsumeConfig = { role: 'queue-consume', system: s.id, address: s.address!, name, prefetch: sizes.queuePrefetch, messages, idleTimeoutMs: 15_000 };
    consumers.push(compareWorker<CompareQueueConsumeResult>({ ...cfg }));
  }
  await Promise.all(consumers.map((c) => c.event('ready')));
  stopWhenAcked(consumers, messages);
  const cpu = serverCpu(s);
  const pubCfg: CompareQueuePublishConfig = { role: 'queue-publish', system: s.id, address: s.address!, name, messages, messageBytes: sizes.queueBytes, callSize: sizes.queueCallSize, callsInFlight: sizes.queueCallsInFlight };
  const p = await compareWorker<CompareThroughputResult>({ ...pubCfg }).result;
  const cs = await Promise.all(consumers.map((c) => c.result));
  const serverCpuPct = cpu();
  const tally = tallyDeliveries(messages, cs.map((c) => c.countsBase64));
  const lastAckAt = Math.max(...cs.map((c) => c.lastAckAt));
  const endToEndMs = lastAckAt - p.firstSendAt;
  const totalAcked = cs.reduce((a, c) => a + c.acked, 0);
  const problems: string[] = [];
  if (tally.missing > 0) problems.push(`${tally.missing} never acked`);
  if (tally.duplicates > 0) problems.push(`${tally.duplicates} acked twice`);
  const clientCpuMs = p.cpuUserMs + p.cpuSystemMs + cs.reduce((a, c) => a + c.cpuUserMs + c.cpuSystemMs, 0);
  return {
    system: s.id,
    workload: w.id,
    rep,
    msgsPerSec: totalAcked / (endToEndMs / 1000),
    mbPerSec: (totalAcked * sizes.queueBytes) / MB / (endToEndMs / 1000),
    serverCpuPct,
    clientCpuPct: (clientCpuMs / endToEndMs) * 100,
    problems,
    raw: { publisher: p, publishPerSec: p.records / (p.elapsedMs / 1000), consumers: cs.map(({ countsBase64: _c, ...rest }) => rest), tally, perConsumer: cs.map((c) => c.acked) },
  };
}

// ---- kmq through its sidecar ----

/**
 * A `kmq sidecar` in front of the kmq broker for one run, with an ordered,
 * at-least-once subscription of the run's topic (a fresh sidecar per run: its
 * subscriptions are set at start). Its CPU counts as the server's.
 */
async function withSidecar<T>(s: SystemState, name: string, subscribe: boolean, run: (sidecar: BenchSidecar) => Promise<T>): Promise<T> {
  const configFile = path.join(tmpRoot, `sidecar-${name}.json`);
  const subscriptions = subscribe ? [{ name, topic: name, mode: 'ordered', guarantee: 'at-least-once', startFrom: 'earliest', maxInFlight: sizes.sidecarMaxInFlight }] : [];
  // JSON is YAML: the sidecar's config reader takes it as is.
  fs.writeFileSync(configFile, JSON.stringify({ port: 0, subscriptions }));
  const sidecar = await BenchSidecar.start(configFile, s.address!);
  try {
    return await run(sidecar);
  } finally {
    await sidecar.stop();
    fs.rmSync(configFile, { force: true });
  }
}

const workerCpuPct = (r: { cpuUserMs: number; cpuSystemMs: number }, elapsedMs: number): number => ((r.cpuUserMs + r.cpuSystemMs) / Math.max(1, elapsedMs)) * 100;

/** Max-rate publish through the sidecar: PublishBatch requests on one PublishStream, a fixed count (no time cap). */
async function runSidecarProduce(s: SystemState, w: Workload, name: string, rep: number): Promise<RunResult> {
  const messages = w.bytes === sizes.largeBytes ? sizes.sidecarProduce1kMessages : sizes.sidecarProduceMessages;
  return withSidecar(s, name, false, async (sidecar) => {
    const cpu = serverCpu(s, [sidecar.pid]);
    const cfg: SidecarPublishConfig = { sidecar: sidecar.address, topic: name, messages, messageBytes: w.bytes, inFlight: sizes.sidecarPublishInFlight, batch: sizes.sidecarPublishBatch };
    const p = await startWorker<SidecarPublishResult>('sidecar-publish', cfg).result;
    const serverCpuPct = cpu();
    const ok = p.messages - p.errors;
    const sec = p.elapsedMs / 1000;
    return {
      system: s.id,
      workload: w.id,
      rep,
      msgsPerSec: ok / sec,
      mbPerSec: (ok * w.bytes) / MB / sec,
      serverCpuPct,
      clientCpuPct: workerCpuPct(p, p.elapsedMs),
      problems: p.errors > 0 ? [`${p.errors} publish errors`] : [],
      raw: p,
    };
  });
}

/** Fixed rate through the sidecar: app → PublishStream → sidecar → broker → sidecar → Consume → app. */
async function runSidecarE2e(s: SystemState, w: Workload, name: string, rep: number): Promise<RunResult> {
  const rate = w.rate!;
  const messages = Math.round((rate * w.durationMs!) / 1000);
  return withSidecar(s, name, true, async (sidecar) => {
    const consumerCfg: SidecarConsumeConfig = { sidecar: sidecar.address, subscription: name, messages, maxInFlight: 0, maxBatch: sizes.sidecarConsumeBatch, warmupMs: sizes.e2eWarmupMs, timeoutMs: w.durationMs! + 60_000 };
    const consumer = startWorker<LatencyResult & { lastAckAt: number; redeliveries: number }>('sidecar-consume', consumerCfg);
    await consumer.event('ready');
    // The subscription's consumer joins its group once Consume starts: let it settle, or the first messages queue behind the join.
    await new Promise((resolve) => setTimeout(resolve, sizes.sidecarSettleMs));
    const cpu = serverCpu(s, [sidecar.pid]);
    const publisherCfg: SidecarPublishConfig = { sidecar: sidecar.address, topic: name, messages, messageBytes: w.bytes, inFlight: sizes.sidecarPublishInFlight, batch: sizes.sidecarPublishBatch, ratePerSec: rate };
    const [p, c] = await Promise.all([startWorker<SidecarPublishResult>('sidecar-publish', publisherCfg).result, consumer.result]);
    const serverCpuPct = cpu();
    const achievedRate = p.messages / (p.elapsedMs / 1000);
    const receivedRate = c.records / (c.elapsedMs / 1000);
    const problems: string[] = [];
    // The sidecar's publisher never gives up: a send loop far behind its schedule means the rate was not taken.
    if (p.maxScheduleLagMs > sizes.e2eGiveUpLagMs) problems.push(`OVERLOADED: the send loop fell ${Math.round(p.maxScheduleLagMs).toLocaleString('en-US')} ms behind ${rate.toLocaleString('en-US')} msg/s (latencies include the backlog)`);
    else if (achievedRate < rate * 0.95) problems.push(`OVERLOADED: only ${Math.round(achievedRate).toLocaleString('en-US')} msg/s acknowledged`);
    else if (receivedRate < achievedRate * 0.95) problems.push(`OVERLOADED: the consumer received only ${Math.round(receivedRate).toLocaleString('en-US')} msg/s`);
    if (p.errors > 0) problems.push(`${p.errors} publish errors`);
    if (c.redeliveries > 0) problems.push(`${c.redeliveries} redeliveries`);
    if (!(c.measured > 0)) problems.push(`no latency measured: nothing received after the first ${sizes.e2eWarmupMs / 1000} s`);
    return {
      system: s.id,
      workload: w.id,
      rep,
      msgsPerSec: receivedRate,
      mbPerSec: (c.records * w.bytes) / MB / (c.elapsedMs / 1000),
      ...latencyFigures(c),
      achievedRate,
      serverCpuPct,
      clientCpuPct: workerCpuPct(p, p.elapsedMs) + workerCpuPct(c, c.elapsedMs),
      problems,
      raw: { publisher: p, consumer: c },
    };
  });
}

const RUNNERS: Record<WorkloadKind, (s: SystemState, w: Workload, name: string, rep: number) => Promise<RunResult>> = { produce: runProduce, e2e: runE2e, queue: runQueue };

// ---- aggregation and report ----

/** kmq's own rows (direct and through its sidecar) get no kmq/peer ratio. */
const isKmq = (id: SystemId): boolean => id === 'kmq' || id === 'kmq-sidecar';

function packageVersion(name: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

function clientSettings(): Record<SystemId, string> {
  return {
    kmq: `kmq client (client/): producer acks=${KMQ_PRODUCER.acks}, idempotent=${KMQ_PRODUCER.idempotent}, lingerMs=${KMQ_PRODUCER.lingerMs}, batchSizeBytes=1 MiB; e2e consumer: manual assignment from offset 0, no commits, maxWaitMs 500; queue: queueConsumer push, prefetch ${sizes.queuePrefetch}, delivery.ack() per message`,
    'kmq-sidecar': `kmq sidecar (sidecar/, gRPC) in front of the same kmq broker, one sidecar process started per run, its CPU counted as the server's; apps use the generated gRPC client (@grpc/grpc-js): produce: one PublishStream, PublishBatch requests of ${sizes.sidecarPublishBatch.toLocaleString('en-US')} entries, ${sizes.sidecarPublishInFlight.toLocaleString('en-US')} messages unanswered at most, ${sizes.sidecarProduceMessages.toLocaleString('en-US')} messages (${sizes.sidecarProduce1kMessages.toLocaleString('en-US')} at 1 KiB, no time cap); e2e: every 1 ms the messages due go as one PublishBatch (up to ${sizes.sidecarPublishBatch.toLocaleString('en-US')}), received on one Consume stream of an ordered, at-least-once subscription (startFrom earliest, maxInFlight ${sizes.sidecarMaxInFlight.toLocaleString('en-US')}) with max_batch ${sizes.sidecarConsumeBatch}, every response's deliveries acked with one Acks; the sidecar's own producer and consumer are kmq's client`,
    'kafka-java': `Kafka's own producer perf tool (org.apache.kafka.tools.ProducerPerformance, kafka-tools ${process.env.KAFKA_VERSION ?? '4.3.1'}) in its own JVM: ${KAFKA_PERF_PRODUCER_PROPS.join(' ')}; the Java producer batches on its own (a batch grows while requests are in flight), so this row is Kafka with its best client, not the same batching rule; all ${sizes.produceRecords.toLocaleString('en-US')} records (no time cap); client CPU not measured`,
    kafka: `kafkajs ${packageVersion('kafkajs')}: producer acks=1, idempotent=false, compression none, one send() per call; e2e consumer: a fresh group, fromBeginning, autoCommit off, eachBatch, maxWaitTimeInMs 500, minBytes 1`,
    'rabbitmq-classic': `amqplib ${packageVersion('amqplib')}: durable classic queue, persistent messages (delivery_mode 2) through the default exchange on a confirm channel (a call resolves when each of its messages is confirmed); e2e consumer noAck (automatic ack); queue: prefetch ${sizes.queuePrefetch}, channel.ack() per message`,
    'rabbitmq-quorum': `amqplib ${packageVersion('amqplib')}: quorum queue (x-queue-type quorum, 1 member), otherwise as classic`,
    nats: `@nats-io/jetstream ${packageVersion('@nats-io/jetstream')} + @nats-io/transport-node ${packageVersion('@nats-io/transport-node')}: file stream, 1 replica, limits retention (produce, e2e) or workqueue retention (queue); js.publish() per message, a call's publishes all in flight at once; e2e consumer: ordered consumer, consume() max_messages 1000; queue: one durable pull consumer (explicit ack, max_ack_pending 100,000) shared by the 4 processes, consume() max_messages ${sizes.queuePrefetch}, m.ack() per message`,
    redis: `ioredis ${packageVersion('ioredis')}: XADD per message, a call is one pipeline; e2e consumer: XREAD COUNT 1000 BLOCK 500 loop; queue: consumer group, XREADGROUP COUNT ${sizes.queuePrefetch} BLOCK 500 per consumer, XACK per message (its own connection)`,
  };
}

const DURABILITY: Record<SystemId, string> = {
  kmq: 'acknowledged once in the page cache; segments fsynced every 1 s (--flush interval). Queue acquisition/ack state (__share_state) is fsynced before each answer.',
  'kmq-sidecar': 'as kmq (the same broker); a PublishStream answer comes after the broker acknowledged the message; deliveries at least once, acks committed by the sidecar.',
  kafka: 'acks=1: acknowledged once the leader has it in the page cache; fsync every 1 s (log.flush.interval.ms=1000).',
  'kafka-java': 'as kafka (the same broker).',
  'rabbitmq-classic': 'persistent messages on a durable queue; a confirm is sent once the message is written to the queue index/message store, which fsyncs in batches (not configurable): stronger than the others.',
  'rabbitmq-quorum': 'Raft log (1 member); a confirm is sent after the WAL is fsynced, in batches (not configurable): stronger than the others.',
  nats: 'acknowledged once written to the stream file; fsync every 1 s (sync_interval 1s).',
  redis: 'appendonly yes, appendfsync everysec: acknowledged once in the AOF buffer; fsync every second.',
};

function machineDescription(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${os.release()}, Node ${process.version}`;
}

async function writeReport(state: {
  started: Date;
  elapsedMs: number;
  machine: MachineLimits;
  systems: SystemState[];
  results: RunResult[];
  failures: Array<{ system: SystemId; workload: string; rep: number; error: string }>;
}): Promise<string> {
  fs.mkdirSync(outDir, { recursive: true });
  // Charts of an earlier run would sit beside this report as if they were its own.
  for (const f of fs.readdirSync(outDir)) if (/\.(png|svg)$/.test(f)) fs.rmSync(path.join(outDir, f));
  const { systems, results } = state;
  const ran = systems.filter((s) => s.failure === undefined).map((s) => s.id);
  const summaries = new Map<string, Summary>();
  for (const w of WORKLOADS)
    for (const sys of ran) {
      const rs = results.filter((r) => r.workload === w.id && r.system === sys);
      if (rs.length > 0) summaries.set(`${w.id}/${sys}`, summarise(rs));
    }
  const L: string[] = [];
  L.push(`# kmq compared with Kafka, RabbitMQ, NATS JetStream and Redis Streams`, '');
  L.push(`${state.started.toISOString()} · ${quick ? '**--quick** (short runs: check the harness, do not quote)' : 'full run'} · ${args.reps} repetitions, systems interleaved (order rotates each repetition) · ${(state.elapsedMs / 60_000).toFixed(1)} min`, '');
  L.push(`Machine: ${machineDescription()}. Servers, clients and load generators share it.`, '');
  L.push('## Machine limits (measured in this run)', '');
  L.push('| disk, 1 MiB writes + fdatasync each | disk, one fdatasync at the end | loopback TCP, one connection |', '|---:|---:|---:|');
  L.push(`| ${fix(state.machine.diskFsyncMBps, 0)} MB/s | ${fix(state.machine.diskNoFsyncMBps, 0)} MB/s | ${fix(state.machine.tcpMBps, 0)} MB/s |`, '');
  L.push('## Systems', '');
  L.push('| system | server | client | status |', '|---|---|---|---|');
  const clients = clientSettings();
  for (const s of systems) L.push(`| ${s.id} | ${s.version ?? '–'} | ${clients[s.id].split(':')[0]} | ${s.failure === undefined ? 'ran' : `**not run**: ${s.failure.replace(/\|/g, '/')}`} |`);
  L.push('');
  L.push('## Results', '');
  L.push('msg/s: median over the repetitions (min–max in brackets); latency percentiles: mean over the repetitions; CPU: % of one core, mean. kmq/peer: kmq msg/s over the peer\'s (above 1: kmq is faster); for latency kmq p99 over the peer\'s (below 1: kmq is faster).', '');
  for (const w of WORKLOADS) {
    L.push(`### ${w.title}`, '');
    const kmq = summaries.get(`${w.id}/kmq`);
    if (w.kind === 'e2e') {
      L.push('| system | msg/s received | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | kmq/peer p99 | server CPU | client CPU | notes |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
    } else {
      L.push('| system | msg/s | MB/s | kmq/peer | server CPU | client CPU | notes |', '|---|---:|---:|---:|---:|---:|---|');
    }
    for (const s of systems) {
      const reason = w.notFor[s.id];
      const sm = summaries.get(`${w.id}/${s.id}`);
      const failed = state.failures.filter((f) => f.system === s.id && f.workload === w.id);
      const failNote = failed.map((f) => `rep ${f.rep} failed: ${firstLines(f.error, 2).replace(/\|/g, '/')}`);
      if (sm === undefined) {
        const why = reason ?? s.failure ?? (failNote.join('; ') || 'no result');
        L.push(w.kind === 'e2e' ? `| ${s.id} | – | – | – | – | – | – | – | – | – | not run: ${why} |` : `| ${s.id} | – | – | – | – | – | not run: ${why} |`);
        continue;
      }
      const clientBound = w.kind === 'produce' && sm.clientCpuPct >= 90 ? [`client-bound: the producer process used ${sm.clientCpuPct.toFixed(0)}% of a core`] : [];
      const notes = [...clientBound, ...sm.problems, ...failNote].join('; ');
      if (w.kind === 'e2e') {
        L.push(`| ${s.id} | ${int(sm.msgsPerSec)} | ${latencyCells(sm).join(' | ')} | ${isKmq(s.id) ? '' : p99Ratio(kmq, sm)} | ${pct(sm.serverCpuPct)} | ${pct(sm.clientCpuPct)} | ${notes} |`);
      } else {
        const ratio = kmq !== undefined ? fix(kmq.msgsPerSec / sm.msgsPerSec, 2) : '–';
        L.push(`| ${s.id} | ${int(sm.msgsPerSec)} (${int(sm.min)}–${int(sm.max)}) | ${fix(sm.mbPerSec, 1)} | ${isKmq(s.id) ? '' : ratio} | ${pct(sm.serverCpuPct)} | ${pct(sm.clientCpuPct)} | ${notes} |`);
      }
    }
    L.push('');
  }
  // Charts.
  const charts: ChartFile[] = [];
  try {
    // One chart per workload: the rates differ by orders of magnitude between workloads.
    for (const w of WORKLOADS.filter((x) => x.kind !== 'e2e')) {
      const bars: BarPoint[] = [];
      for (const sys of ran) {
        const sm = summaries.get(`${w.id}/${sys}`);
        if (sm !== undefined) bars.push({ group: w.id, series: sys, value: Math.round(sm.msgsPerSec) });
      }
      if (bars.length > 0) charts.push(await barChart(bars, `${w.title} (msg/s, median)`, 'messages/s', path.join(outDir, `throughput-${w.id}`), ran));
    }
    for (const w of WORKLOADS.filter((x) => x.kind === 'e2e')) {
      const lat: LatencyPoint[] = [];
      for (const sys of ran) {
        const sm = summaries.get(`${w.id}/${sys}`);
        if (sm === undefined) continue;
        for (const [p, v] of [['p50', sm.p50Ms], ['p95', sm.p95Ms], ['p99', sm.p99Ms], ['p99.9', sm.p999Ms], ['max', sm.maxMs]] as const) lat.push({ series: sys, percentile: p, ms: v ?? NaN });
      }
      if (lat.length > 0) charts.push(await latencyChart(lat, ['p50', 'p95', 'p99', 'p99.9', 'max'], `End-to-end latency at ${w.rate!.toLocaleString('en-US')} msg/s, ${kb(w.bytes)}`, path.join(outDir, `latency-${w.id}`), ran));
    }
  } catch (err) {
    L.push(`Charts failed: ${(err as Error).message}`, '');
  }
  if (charts.length > 0) {
    L.push('## Charts', '');
    for (const c of charts) L.push(`![${path.basename(c.file)}](${path.basename(c.file)})`, ...(c.note === undefined ? [] : ['', `(${c.note})`]), '');
  }
  L.push('## Workloads and rules', '');
  L.push(
    `- Every client runs in its own Node process (${process.version}) with the same workload code (bench/compare-workloads.ts) over a per-system adapter (bench/peers/*-client.ts). Node clients on every side, so client cost is alike; the servers are native (Go, C, Erlang, JVM, and kmq in Node).`,
    `- Batching, the same for all: the application hands the client calls of values; a call goes to the server at once (no linger: kmq lingerMs 0, kafkajs has none) and resolves when every value of it is acknowledged. Where the protocol batches (kmq, Kafka) a call is one request (one batch per partition); where it does not (RabbitMQ, NATS), each message is its own publish with the call's publishes all in flight; Redis sends a call as one pipeline.`,
    `- produce: up to ${sizes.produceRecords.toLocaleString('en-US')} × ${sizes.produceBytes} B, no new call after ${sizes.produceMaxMs / 1000} s (one value buffer reused), calls of ${sizes.produceCallSize.toLocaleString('en-US')}, ${sizes.produceCallsInFlight} calls pending; msg/s = records / (first call → last answer). 16 partitions: unkeyed, spread by the client's default partitioner.`,
    `- end to end: a consumer process subscribed first, then a producer sending ${sizes.e2eRates.map((r) => r.toLocaleString('en-US')).join(' or ')} msg/s for ${sizes.e2eMs / 1000} s: every 1 ms the values due go as one call; each value starts with its send time, latency = receive − send on the consumer, the first ${sizes.e2eWarmupMs / 1000} s skipped; nearest-rank percentiles. The consumer commits/acks nothing (RabbitMQ: automatic ack). A producer more than ${sizes.e2eGiveUpLagMs} ms behind its schedule stops (OVERLOADED in the notes): that system, with its Node client, cannot take the rate on this machine, and its latencies then include the backlog.`,
    `- 1 KiB: produce (1 and 16 partitions) and end to end at 50,000 msg/s also with 1,024-byte values: produce up to ${sizes.produce1kRecords.toLocaleString('en-US')} records, no new call after ${sizes.produce1kMaxMs / 1000} s (kafka-java: ${sizes.kafkaJava1kRecords.toLocaleString('en-US')} records); end to end for ${sizes.e2e1kMs / 1000} s; calls of ${sizes.produce1kCallSize.toLocaleString('en-US')} values (about 1 MB, as 10,000 × 100 B; an e2e call is also capped at 1 MB). The 1 KiB workloads run in the first ${quick ? 'repetition' : '2 repetitions'} only.`,
    `- kmq-sidecar: the kmq broker through a \`kmq sidecar\` process (one per run), gRPC apps on both sides: PublishStream with PublishBatch requests of up to ${sizes.sidecarPublishBatch.toLocaleString('en-US')} (end to end: each 1 ms tick's messages as one batch), ${sizes.sidecarPublishInFlight.toLocaleString('en-US')} unanswered at most; Consume of an ordered, at-least-once subscription with max_batch ${sizes.sidecarConsumeBatch}, each response acked with one Acks; the publisher starts ${sizes.sidecarSettleMs / 1000} s after Consume started (the subscription's consumer group join). Produce: a fixed ${sizes.sidecarProduceMessages.toLocaleString('en-US')} messages (${sizes.sidecarProduce1kMessages.toLocaleString('en-US')} at 1 KiB), no time cap. Server CPU = broker + sidecar. Its sender never gives up: a send loop more than ${sizes.e2eGiveUpLagMs} ms behind schedule is marked OVERLOADED. No kmq/peer ratio (it is kmq); compare it with the kmq row.`,
    `- work queue: ${sizes.queueConsumers} consumer processes (prefetch ${sizes.queuePrefetch}) subscribed first, then one publisher: ${sizes.queueMessages.toLocaleString('en-US')} × ${sizes.queueBytes} B, calls of ${sizes.queueCallSize}, ${sizes.queueCallsInFlight} pending. Each consumer acks every message as it arrives; msg/s = acks / (first publish → last ack handed to the client). Every value carries its sequence number: messages never acked or acked twice are noted.`,
    `- Each run gets a fresh topic/queue/stream, removed afterwards. Server CPU: all processes of the server (JVM, Erlang VM, epmd, …) from /proc over the run.`,
    '',
  );
  L.push('## Fairness notes', '');
  L.push(
    '- Every system is driven by a Node client, so most rows measure the system *with its Node client*: a producer process near 100% of a core (noted as client-bound) says the client, not the server, set the rate. kmq\'s broker and client are Node too; the peers\' servers are Go (NATS), C (Redis), Erlang (RabbitMQ) and Java (Kafka). The kafka-java row shows the Kafka broker fed by its own Java producer.',
    '- Servers, clients and the load generator share the machine\'s CPUs; every server runs (idle) for the whole run, so an idle server\'s background work touches the others\' rows alike.',
    '- The systems run interleaved and in a rotating order, so drift (a noisy neighbour, a warming disk) spreads over all of them; compare ratios within one report.',
    '- RabbitMQ confirms only after its batched fsync, a stronger guarantee than the others\' (see Durability); it cannot be configured otherwise.',
    `- End-to-end figures at a rate a system cannot take (OVERLOADED) are backlog, not latency: read the ${sizes.e2eRates[sizes.e2eRates.length - 1]!.toLocaleString('en-US')} msg/s table for those systems.`,
    '',
  );
  L.push('## Durability (matched: acknowledged before fsync, fsync about every second, where the system allows it)', '');
  L.push('| system | durability |', '|---|---|');
  for (const s of systems) L.push(`| ${s.id} | ${DURABILITY[s.id]} |`);
  L.push('');
  L.push('## Settings', '');
  for (const s of systems) {
    L.push(`### ${s.id}`, '');
    L.push(`- server: ${s.version ?? 'not started'}${s.failure === undefined ? '' : ` (${s.failure})`}`);
    for (const line of s.serverSettings) L.push(`  - \`${line}\``);
    L.push(`- client: ${clients[s.id]}`, '');
  }
  const file = path.join(outDir, 'report.md');
  fs.writeFileSync(file, L.join('\n') + '\n');
  fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify({ started: state.started, quick, reps: args.reps, sizes, machine: state.machine, systems: systems.map(({ admin: _a, pids: _p, ...rest }) => rest), summaries: [...summaries.values()], runs: results, failures: state.failures }, null, 2));
  return file;
}

// ---- main ----

async function main(): Promise<void> {
  const started = new Date();
  const t0 = Date.now();
  const servers = [...new Set(args.systems.map((s) => SERVER_OF[s]))];
  const installFailures = new Map<ServerId, string>();
  if (args.install)
    for (const server of servers) {
      if (server === 'kmq') continue;
      log(`${server}: install step`);
      const failure = install(server);
      if (failure !== undefined) {
        installFailures.set(server, failure);
        log(`${server}: ${failure}`);
      }
    }
  const machine = await measureMachine();
  log(`machine: disk ${machine.diskFsyncMBps.toFixed(0)} MB/s with fdatasync per MiB, ${machine.diskNoFsyncMBps.toFixed(0)} MB/s without; loopback ${machine.tcpMBps.toFixed(0)} MB/s`);

  const info = new Map<ServerId, ServerInfo>();
  for (const server of servers) {
    const failed = installFailures.get(server);
    if (failed !== undefined) info.set(server, { settings: [], failure: `install failed: ${failed}`, pids: () => [] });
    else {
      log(`${server}: starting`);
      info.set(server, await startServer(server));
    }
  }
  const systems: SystemState[] = [];
  for (const id of args.systems) {
    const i = info.get(SERVER_OF[id])!;
    const s: SystemState = { id, address: i.address, version: i.version, serverSettings: id === 'kmq-sidecar' ? [...i.settings, `kmq sidecar --config <per run: port 0, one subscription of the run's topic> --broker <the kmq broker>`] : i.settings, failure: i.failure, pids: i.pids };
    if (s.failure === undefined) {
      try {
        s.admin = await openClient(id, s.address!);
      } catch (err) {
        s.failure = `client could not connect: ${(err as Error).message}`;
      }
    }
    if (s.failure !== undefined) log(`${id}: NOT RUN, ${s.failure}`);
    systems.push(s);
  }

  const results: RunResult[] = [];
  const failures: Array<{ system: SystemId; workload: string; rep: number; error: string }> = [];
  const live = systems.filter((s) => s.failure === undefined);
  const plan: Array<{ rep: number; w: Workload; s: SystemState }> = [];
  for (let rep = 1; rep <= args.reps; rep++)
    for (const w of WORKLOADS) {
      if (w.maxReps !== undefined && rep > w.maxReps) continue;
      const eligible = live.filter((s) => w.notFor[s.id] === undefined);
      const shift = (rep - 1) % Math.max(1, eligible.length);
      for (const s of [...eligible.slice(shift), ...eligible.slice(0, shift)]) plan.push({ rep, w, s });
    }
  for (let i = 0; i < plan.length; i++) {
    const { rep, w, s } = plan[i]!;
    const name = `cmp-${w.id}-r${rep}-${Date.now().toString(36)}`;
    const at = `[${i + 1}/${plan.length}, ${((Date.now() - t0) / 1000).toFixed(0)} s]`;
    log(`${at} rep ${rep}/${args.reps} ${w.id} on ${s.id}`);
    try {
      const r = await RUNNERS[w.kind](s, w, name, rep);
      results.push(r);
      const lat = r.p99Ms === undefined ? '' : `, p50 ${fix(r.p50Ms, 2)} ms, p99 ${fix(r.p99Ms, 2)} ms`;
      log(`${at}   ${s.id}: ${int(r.msgsPerSec)} msg/s${lat}, server CPU ${fix(r.serverCpuPct, 0)}%${r.problems.length > 0 ? ` (${r.problems.join('; ')})` : ''}`);
    } catch (err) {
      const error = (err as Error).message;
      failures.push({ system: s.id, workload: w.id, rep, error });
      log(`${at}   ${s.id}: FAILED ${firstLines(error, 4)}`);
    } finally {
      await s.admin!.remove(name).catch(() => undefined);
    }
  }

  for (const s of systems) await s.admin?.close().catch(() => undefined);
  for (const r of running.reverse()) await r.stop().catch(() => undefined);
  const file = await writeReport({ started, elapsedMs: Date.now() - t0, machine, systems, results, failures });
  log(`done in ${((Date.now() - t0) / 60_000).toFixed(1)} min; report: ${path.relative(process.cwd(), file)}`);
}

main().then(
  () => {
    cleanupSync();
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`compare: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    cleanupSync();
    process.exit(1);
  },
);
