/**
 * The `cluster` suite: 1 KiB workloads on the run's single broker (acks=leader, the
 * settings of the produce and e2e suites) and on a cluster of 3 brokers and etcd (a
 * topic of replication factor 3, min.insync.replicas 2, acks=all). Each workload runs
 * on the single broker, then at once on the cluster, so both see the same machine.
 * The producer and consumer workers are those of the produce and e2e suites; the
 * cluster's workers get all three brokers as bootstrap.
 */
import { KmqClient, NO_BROKER } from '../client/index.js';
import type { E2eConsumeConfig, E2eProduceConfig, E2eProduceResult, LatencyResult, ProduceConfig, ProducerSettings, ThroughputResult } from './bench-config.js';
import { clientCpuPct } from './measure.js';
import { Phase } from './phase.js';
import type { PhaseBroker, PhaseFigures } from './phase.js';
import { BenchCluster, startWorker } from './processes.js';
import type { BenchBroker } from './processes.js';
import { ProcSampler } from './proc-sampler.js';
import type { Comparison, Row } from './report.js';
import { until } from '../testkit/until.js';

const MB = 1e6;
const CLUSTER_BROKERS = 3;
const REPLICATION_FACTOR = 3;
const MIN_INSYNC_REPLICAS = 2;
const RECORD_BYTES = 1024;
const PRODUCE_PARTITIONS = [1, 8] as const;
const E2E_RATES = [5000, 20_000] as const;
const E2E_PARTITIONS = 1;
/** PartitionMetadata.leader of a partition without one. */
const READY_TIMEOUT_MS = 30_000;
/** An e2e row whose consumer received less than this fraction of the offered rate is marked OVERLOADED. */
const OVERLOAD_FRACTION = 0.95;

/** What the runner hands the suite. */
export interface ClusterSuiteSettings {
  /** Where the cluster's etcd and broker data folders go. */
  dir: string;
  /** Flags of the single broker (--max-message-bytes, --flush), given to every cluster broker too. */
  brokerArgs: string[];
  nodeArgs: { broker: string[]; producer: string[]; consumer: string[] };
  produceRecords: number;
  callSize: number;
  callsInFlight: number;
  /** acks=leader settings of the produce and e2e suites; the cluster side sends with acks=all. */
  throughputProducer: ProducerSettings;
  e2eProducer: ProducerSettings;
  e2eMs: number;
  e2eWarmupMs: number;
  log: (msg: string) => void;
}

/** The run's single broker. */
export interface SingleBroker {
  broker: BenchBroker;
  sampler: ProcSampler;
  admin: KmqClient;
}

type SideName = 'single' | 'cluster';

/** One workload on one side: the worker results and the broker-side figures. */
export interface ClusterSideRun {
  produce?: ThroughputResult;
  e2e?: { producer: E2eProduceResult; consumer: LatencyResult };
  phase: PhaseFigures;
  etcdCpuPct?: number;
  /** Leader broker id per partition (the cluster side). */
  leaders?: number[];
}

export interface ClusterSuiteResult {
  brokers: number;
  replicationFactor: number;
  minInsyncReplicas: number;
  acks: { single: ProducerSettings['acks']; cluster: ProducerSettings['acks'] };
  recordBytes: number;
  clusterName: string;
  /** Workload → its run on each side. */
  workloads: Record<string, Record<SideName, ClusterSideRun>>;
}

interface Side {
  name: SideName;
  label: string;
  bootstrap: string;
  acks: ProducerSettings['acks'];
  brokers: PhaseBroker[];
  etcd?: ProcSampler;
  createTopic(topic: string, partitions: number): Promise<number[]>;
}

const cpuNote = (side: Side, run: ClusterSideRun): string | undefined => {
  if (side.name === 'single') return undefined;
  const per = run.phase.brokerCpuPcts.map((p) => `${p.toFixed(0)}%`).join(' + ');
  const leaders = run.leaders === undefined ? '' : run.leaders.length === 1 ? `, leader ${run.leaders[0]}` : '';
  return `brokers ${per}${leaders}, etcd ${(run.etcdCpuPct ?? 0).toFixed(0)}%`;
};

const joinNotes = (...notes: Array<string | undefined>): string | undefined => {
  const n = notes.filter((x): x is string => x !== undefined && x !== '');
  return n.length === 0 ? undefined : n.join('; ');
};

/** Runs the suite: starts the cluster, runs every workload on both sides, stops the cluster. */
export async function runClusterSuite(single: SingleBroker, s: ClusterSuiteSettings): Promise<{ rows: Row[]; comparisons: Comparison[]; result: ClusterSuiteResult }> {
  s.log(`cluster: etcd and ${CLUSTER_BROKERS} brokers, topics of replication factor ${REPLICATION_FACTOR}, min.insync.replicas ${MIN_INSYNC_REPLICAS}`);
  const cluster = await BenchCluster.start(s.dir, CLUSTER_BROKERS, s.brokerArgs, s.nodeArgs.broker);
  const samplers = cluster.brokers.map((b) => new ProcSampler(b.pid));
  const etcdSampler = new ProcSampler(cluster.etcd.pid ?? 0);
  for (const x of [...samplers, etcdSampler]) x.start();
  const admin = new KmqClient({ brokers: cluster.brokers.map((b) => b.address), clientId: 'bench-cluster-admin' });
  const result: ClusterSuiteResult = {
    brokers: CLUSTER_BROKERS,
    replicationFactor: REPLICATION_FACTOR,
    minInsyncReplicas: MIN_INSYNC_REPLICAS,
    acks: { single: s.throughputProducer.acks, cluster: 'all' },
    recordBytes: RECORD_BYTES,
    clusterName: cluster.name,
    workloads: {},
  };
  const rows: Row[] = [];
  const comparisons: Comparison[] = [];
  try {
    await until(`${CLUSTER_BROKERS} brokers registered and a controller elected`, READY_TIMEOUT_MS, async () => {
      const md = await admin.admin().describeCluster();
      return md.brokers.length === CLUSTER_BROKERS && md.controllerId !== 0 && md.controllerId !== NO_BROKER ? true : undefined;
    });
    s.log(`cluster ${cluster.name}: brokers ${cluster.brokers.map((b) => b.address).join(', ')}, etcd ${cluster.etcd.clientUrl}`);
    const sides: Side[] = [
      {
        name: 'single',
        label: '1 node',
        bootstrap: single.broker.address,
        acks: s.throughputProducer.acks,
        brokers: [{ sampler: single.sampler, httpPort: single.broker.httpPort }],
        createTopic: async (topic, partitions) => {
          await single.admin.admin().createTopic(topic, { partitions });
          return [];
        },
      },
      {
        name: 'cluster',
        label: `${CLUSTER_BROKERS} nodes`,
        bootstrap: cluster.bootstrap,
        acks: 'all',
        brokers: cluster.brokers.map((b, i) => ({ sampler: samplers[i]!, httpPort: b.httpPort })),
        etcd: etcdSampler,
        createTopic: async (topic, partitions) => {
          await admin.admin().createTopic(topic, { partitions, replicationFactor: REPLICATION_FACTOR, config: { minInsyncReplicas: MIN_INSYNC_REPLICAS } });
          // Every partition led and every replica in sync before the clock starts.
          return until(`every partition of ${topic} led, with ${REPLICATION_FACTOR} in sync`, READY_TIMEOUT_MS, async () => {
            const ps = (await admin.admin().describeTopic(topic)).topic.partitions;
            const ready = ps.length === partitions && ps.every((p) => p.leader !== NO_BROKER && p.isr.length === REPLICATION_FACTOR);
            return ready ? [...ps].sort((a, b) => a.partition - b.partition).map((p) => p.leader) : undefined;
          });
        },
      },
    ];

    /** Runs `work` on a side between a phase's begin and end, with the cluster's etcd CPU over the same interval. */
    const measured = async <T>(side: Side, work: () => Promise<T>): Promise<{ value: T; phase: PhaseFigures; etcdCpuPct: number | undefined }> => {
      const phase = await Phase.beginAll(side.brokers);
      const etcd0 = side.etcd?.cpuMs() ?? 0;
      const t0 = performance.now();
      const value = await work();
      const etcdCpuPct = side.etcd === undefined ? undefined : ((side.etcd.cpuMs() - etcd0) / (performance.now() - t0)) * 100;
      return { value, phase: await phase.end(), etcdCpuPct };
    };

    for (const partitions of PRODUCE_PARTITIONS) {
      const workload = `produce 1 KiB × ${partitions}p`;
      const topic = `cluster-produce-1k-${partitions}p`;
      const pair: Partial<Record<SideName, Row>> = {};
      result.workloads[workload] = {} as Record<SideName, ClusterSideRun>;
      for (const side of sides) {
        const leaders = await side.createTopic(topic, partitions);
        s.log(`${side.label}: ${workload}, ${s.produceRecords.toLocaleString('en-US')} records, acks=${side.acks}`);
        const cfg: ProduceConfig = {
          broker: side.bootstrap,
          topic,
          records: s.produceRecords,
          recordBytes: RECORD_BYTES,
          callSize: s.callSize,
          callsInFlight: s.callsInFlight,
          producer: { ...s.throughputProducer, acks: side.acks },
        };
        const m = await measured(side, () => startWorker<ThroughputResult>('produce', cfg, s.nodeArgs.producer).result);
        const r = m.value;
        const run: ClusterSideRun = { produce: r, phase: m.phase, etcdCpuPct: m.etcdCpuPct, ...(side.name === 'cluster' ? { leaders } : {}) };
        result.workloads[workload][side.name] = run;
        const { produceRequests: _requests, brokerCpuPcts, ...b } = m.phase;
        const row: Row = {
          workload: `${side.label}: ${workload}`,
          recordsPerSec: r.records / (r.elapsedMs / 1000),
          mbPerSec: r.bytes / MB / (r.elapsedMs / 1000),
          clientCpuPct: clientCpuPct(r),
          ...b,
          ...(side.name === 'cluster' ? { brokerCpuPcts, etcdCpuPct: m.etcdCpuPct } : {}),
          note: joinNotes(`acks=${side.acks}`, cpuNote(side, run)),
        };
        rows.push(row);
        pair[side.name] = row;
      }
      comparisons.push({ workload, single: pair.single!, cluster: pair.cluster! });
    }

    for (const rate of E2E_RATES) {
      const workload = `e2e 1 KiB × ${E2E_PARTITIONS}p @${rate / 1000}k/s`;
      const topic = `cluster-e2e-1k-${E2E_PARTITIONS}p-${rate}`;
      const records = Math.round((rate * s.e2eMs) / 1000);
      const pair: Partial<Record<SideName, Row>> = {};
      result.workloads[workload] = {} as Record<SideName, ClusterSideRun>;
      for (const side of sides) {
        const leaders = await side.createTopic(topic, E2E_PARTITIONS);
        s.log(`${side.label}: ${workload} for ${s.e2eMs / 1000} s, acks=${side.acks}`);
        const m = await measured(side, async () => {
          const consumer = startWorker<LatencyResult>(
            'e2e-consume',
            { broker: side.bootstrap, topic, partitions: E2E_PARTITIONS, records, warmupMs: s.e2eWarmupMs, timeoutMs: s.e2eMs + 60_000 } satisfies E2eConsumeConfig,
            s.nodeArgs.consumer,
          );
          await consumer.event('ready');
          const producer = startWorker<E2eProduceResult>(
            'e2e-produce',
            { broker: side.bootstrap, topic, recordBytes: RECORD_BYTES, ratePerSec: rate, durationMs: s.e2eMs, producer: { ...s.e2eProducer, acks: side.acks } } satisfies E2eProduceConfig,
            s.nodeArgs.producer,
          );
          const [p, c] = await Promise.all([producer.result, consumer.result]);
          return { producer: p, consumer: c };
        });
        const { producer: p, consumer: c } = m.value;
        const receivedPerSec = c.records / (c.elapsedMs / 1000);
        const run: ClusterSideRun = { e2e: m.value, phase: m.phase, etcdCpuPct: m.etcdCpuPct, ...(side.name === 'cluster' ? { leaders } : {}) };
        result.workloads[workload][side.name] = run;
        const { produceRequests: _requests, brokerCpuPcts, ...b } = m.phase;
        const row: Row = {
          workload: `${side.label}: ${workload}`,
          recordsPerSec: receivedPerSec,
          mbPerSec: (c.records * RECORD_BYTES) / MB / (c.elapsedMs / 1000),
          p50Ms: c.p50Ms,
          p95Ms: c.p95Ms,
          p99Ms: c.p99Ms,
          maxMs: c.maxMs,
          clientCpuPct: clientCpuPct(p) + clientCpuPct(c),
          ...b,
          ...(side.name === 'cluster' ? { brokerCpuPcts, etcdCpuPct: m.etcdCpuPct } : {}),
          note: joinNotes(
            `acks=${side.acks}`,
            cpuNote(side, run),
            p.records !== c.records ? `consumer got ${c.records} of ${p.records}` : undefined,
            // Received slower than sent: a backlog grew, so the percentiles measure the queue, not the path.
            receivedPerSec < OVERLOAD_FRACTION * rate ? `OVERLOADED: received ${Math.round(receivedPerSec).toLocaleString('en-US')}/s of ${rate.toLocaleString('en-US')}/s` : undefined,
            p.maxScheduleLagMs > 20 ? `producer fell ${p.maxScheduleLagMs.toFixed(0)} ms behind schedule` : undefined,
          ),
        };
        rows.push(row);
        pair[side.name] = row;
      }
      comparisons.push({ workload, single: pair.single!, cluster: pair.cluster! });
    }
  } finally {
    await admin.close().catch(() => {});
    for (const x of [...samplers, etcdSampler]) x.stop();
    await cluster.stop();
  }
  return { rows, comparisons, result };
}
