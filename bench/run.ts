/**
 * Broker benchmark runner: `npm run bench -- produce|consume|e2e|all [--quick]
 * [--flush every-batch|interval|none] [--cpu-prof broker|producer|consumer]`.
 *
 * Starts one broker process on a fresh temp folder, measures the machine's own
 * limits (disk write with and without fdatasync, loopback TCP), then runs each
 * workload with producer and consumer in their own worker processes, samples the
 * broker's RSS and CPU, prints a table and writes JSON to .bench-out/.
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
  TcpSourceConfig,
  ThroughputResult,
} from './bench-config.js';
import { BenchBroker, folderBytes, killAll, startWorker } from './processes.js';
import { ProcSampler } from './proc-sampler.js';
import { formatTable, formatTargets } from './report.js';
import type { Row, TargetCheck } from './report.js';

const MiB = 1024 * 1024;
const MB = 1e6;
const RECORD_SIZES = [100, 1024] as const;
const PARTITION_COUNTS = [1, 8] as const;
/** Raised from the broker's 1 MiB default so that 1 MiB producer batches plus their framing always fit. */
const BROKER_MAX_MESSAGE_BYTES = 2 * MiB;

type Suite = 'produce' | 'consume' | 'e2e' | 'all';
type ProfileTarget = 'broker' | 'producer' | 'consumer';

interface Args {
  suite: Suite;
  quick: boolean;
  flush: string | undefined;
  cpuProf: ProfileTarget | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { suite: 'all', quick: false, flush: undefined, cpuProf: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') args.quick = true;
    else if (a === '--flush') args.flush = argv[++i];
    else if (a === '--cpu-prof') args.cpuProf = argv[++i] as ProfileTarget;
    else if (['produce', 'consume', 'e2e', 'all'].includes(a)) args.suite = a as Suite;
    else usage(`unknown argument "${a}"`);
  }
  if (args.flush !== undefined && !['every-batch', 'interval', 'none'].includes(args.flush)) usage('--flush must be every-batch, interval or none');
  if (args.cpuProf !== undefined && !['broker', 'producer', 'consumer'].includes(args.cpuProf)) usage('--cpu-prof must be broker, producer or consumer');
  return args;
}

function usage(problem: string): never {
  process.stderr.write(`bench: ${problem}\nusage: npm run bench -- produce|consume|e2e|all [--quick] [--flush every-batch|interval|none] [--cpu-prof broker|producer|consumer]\n`);
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

interface ProduceLatencySum {
  seconds: number;
  count: number;
}

/** Sum and count of the broker's produce-latency histogram (frame read to answer, fsync included), from /metrics. */
async function brokerProduceLatency(httpPort: number): Promise<ProduceLatencySum> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const num = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { seconds: num('kmq_broker_produce_seconds_sum'), count: num('kmq_broker_produce_seconds_count') };
}

/**
 * Waits (up to 30 s) until the machine has been nearly idle for half a second, so
 * that a phase does not start while other work from before (the previous phase's
 * writeback, another process) still holds the CPUs. Returns the ms waited.
 */
async function waitForQuiet(): Promise<number> {
  const t0 = performance.now();
  const cpus = os.cpus().length;
  while (performance.now() - t0 < 30_000) {
    const a = ProcSampler.machineCpuMs();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const b = ProcSampler.machineCpuMs();
    if ((b.busyMs - a.busyMs) / 500 / cpus < 0.15) break;
  }
  return performance.now() - t0;
}

/** Broker-side figures of one phase. */
class Phase {
  private readonly t0 = performance.now();
  private constructor(
    private readonly sampler: ProcSampler,
    private readonly httpPort: number,
    private readonly cpu0: number,
    private readonly produce0: ProduceLatencySum,
    private readonly machine0 = ProcSampler.machineCpuMs(),
  ) {}

  static async begin(sampler: ProcSampler, httpPort: number): Promise<Phase> {
    const waited = await waitForQuiet();
    if (waited > 5000) log(`waited ${(waited / 1000).toFixed(0)} s for the machine to quieten`);
    const produce0 = await brokerProduceLatency(httpPort);
    sampler.takePhasePeak();
    return new Phase(sampler, httpPort, sampler.cpuMs(), produce0);
  }

  async end(): Promise<{ brokerCpuPct: number; machineCpuPct: number; iowaitPct: number; brokerPeakRssMb: number; brokerProduceMs: number | undefined; produceRequests: number }> {
    const wall = performance.now() - this.t0;
    const brokerCpuPct = ((this.sampler.cpuMs() - this.cpu0) / wall) * 100;
    const m = ProcSampler.machineCpuMs();
    const cpus = os.cpus().length;
    const machineCpuPct = ((m.busyMs - this.machine0.busyMs) / wall / cpus) * 100;
    const iowaitPct = ((m.iowaitMs - this.machine0.iowaitMs) / wall / cpus) * 100;
    const brokerPeakRssMb = this.sampler.takePhasePeak() / MiB;
    const p = await brokerProduceLatency(this.httpPort);
    const requests = p.count - this.produce0.count;
    return { brokerCpuPct, machineCpuPct, iowaitPct, brokerPeakRssMb, brokerProduceMs: requests > 0 ? ((p.seconds - this.produce0.seconds) / requests) * 1000 : undefined, produceRequests: requests };
  }
}

const clientCpuPct = (r: { cpuUserMs: number; cpuSystemMs: number; elapsedMs: number }): number => ((r.cpuUserMs + r.cpuSystemMs) / r.elapsedMs) * 100;

interface Results {
  produce: Record<string, ThroughputResult & { logBytes: number; produceRequests: number; brokerProduceMs: number | undefined }>;
  consume: Record<string, ThroughputResult>;
  e2e: Record<string, { producer: E2eProduceResult; consumer: LatencyResult; produceRequests: number }>;
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
  const results: Results = { produce: {}, consume: {}, e2e: {} };
  const runProduce = args.suite !== 'e2e';
  const runConsume = args.suite === 'consume' || args.suite === 'all';
  const runE2e = args.suite === 'e2e' || args.suite === 'all';

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
            recordsPerSec: c.records / (c.elapsedMs / 1000),
            mbPerSec: (c.records * recordBytes) / MB / (c.elapsedMs / 1000),
            p50Ms: c.p50Ms,
            p95Ms: c.p95Ms,
            p99Ms: c.p99Ms,
            maxMs: c.maxMs,
            clientCpuPct: clientCpuPct(p) + clientCpuPct(c),
            ...b,
            note: lost !== 0 ? `consumer got ${c.records} of ${p.records}` : p.maxScheduleLagMs > 20 ? `producer fell ${p.maxScheduleLagMs.toFixed(0)} ms behind schedule` : undefined,
          });
        }
      }
    }
  } finally {
    await admin.close().catch(() => {});
    sampler.stop();
    const cpus = os.cpus().length;
    for (const r of rows) if (r.machineCpuPct !== undefined) r.otherCpuPct = Math.max(0, r.machineCpuPct * cpus - (r.brokerCpuPct ?? 0) - (r.clientCpuPct ?? 0));
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
  const targets = checkTargets(rows, diskFsyncMeanMBps, peakRssMb);

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
  process.stdout.write(`broker peak RSS over the whole run: ${peakRssMb.toFixed(0)} MB\n`);
  process.stdout.write(`targets (reported, not asserted):\n${formatTargets(targets)}\n\n`);
  if (args.cpuProf !== undefined) process.stdout.write(`CPU profiles (${args.cpuProf}): ${profDir}\n`);
  process.stdout.write(`JSON: ${file}\n`);
}

function checkTargets(rows: Row[], diskFsyncMBps: number, peakRssMb: number): TargetCheck[] {
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
