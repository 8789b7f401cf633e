/**
 * The `cluster` suite: 1 KiB workloads on the run's single broker (acks=leader, the
 * settings of the produce and e2e suites) and on a cluster of 3 brokers and etcd (a
 * topic of replication factor 3, min.insync.replicas 2, acks=all). Each workload runs
 * on the single broker, then at once on the cluster, so both see the same machine.
 * The producer and consumer workers are those of the produce, e2e and queue suites;
 * the cluster's workers get all three brokers as bootstrap. The cluster's queues are
 * served by the queue host (the leader of `__share_state` partition 0), their
 * partitions on its three replicas.
 */
import { KmqClient, NO_BROKER } from '../client/index.js';
import type {
  E2eConsumeConfig,
  E2eProduceConfig,
  E2eProduceResult,
  LatencyResult,
  ProduceConfig,
  ProducerSettings,
  ThroughputResult,
} from './bench-config.js';
import { queueRunNotes, runQueueWorkload } from './queue-run.js';
import type { QueueRunResult } from './queue-run.js';
import { clientCpuPct, latencyColumns } from './measure.js';
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
/** Queue workload (the queue suite's): partitions of the queue (one workload each) and consumer processes. */
const QUEUE_PARTITIONS = [1, 4] as const;
const QUEUE_CONSUMERS = 4;
/** The queue suite's full-run message count; the cluster suite's never exceeds it. */
const QUEUE_MESSAGES_MAX = 200_000;
/** A consumer stops after this long without a delivery (some messages never came). */
const QUEUE_IDLE_TIMEOUT_MS = 15_000;

/** The queue workload's client settings: the queue suite's, and its defaults where the runner gives none. */
export interface ClusterQueueSettings {
  /** Messages per run; default the produce workloads' record count, at most 200,000. */
  messages: number;
  prefetch: number;
  consumerMode: 'push' | 'pull';
  /** Messages per publish() call and calls pending. */
  publishCallSize: number;
  publishCallsInFlight: number;
}

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
  /** Queue workload; absent fields: 1000, push, 250 per call, 8 pending (the queue suite's defaults). */
  queue?: Partial<ClusterQueueSettings>;
  log: (msg: string) => void;
}

/** The run's single broker. */
export interface SingleBroker {
  broker: BenchBroker;
  sampler: ProcSampler;
  admin: KmqClient;
}

type SideName = 'single' | 'cluster';

/** One queue run (bench/queue-run.ts), and on the cluster side the queue host: the leader of every partition of the queue. */
export type ClusterQueueRun = QueueRunResult & { host?: number };

/** One workload on one side: the worker results and the broker-side figures. */
export interface ClusterSideRun {
  produce?: ThroughputResult;
  e2e?: { producer: E2eProduceResult; consumer: LatencyResult };
  queue?: ClusterQueueRun;
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
  queue: ClusterQueueSettings & { consumers: number; ack: string };
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
  admin: KmqClient;
  createTopic(topic: string, partitions: number): Promise<number[]>;
  /** Creates a queue; returns the leader of each partition (the cluster side: the queue host, 3 replicas in sync). */
  createQueue(queue: string, partitions: number): Promise<number[]>;
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

/** Runs `work` on a side between a phase's begin and end (with etcd's CPU over the same interval, on the cluster side). */
type Measure = <T>(side: Side, work: () => Promise<T>) => Promise<{ value: T; phase: PhaseFigures; etcdCpuPct: number | undefined }>;

/**
 * The queue suite's workload on one side: QUEUE_CONSUMERS consumer processes
 * (started and subscribed first) ack every delivery on its own while one publisher
 * publishes at max rate; the consumers stop once their acks add up to the message
 * count, then the sequence numbers they counted are added up. Rows: end to end, and
 * the publisher alone.
 */
async function runQueueSide(
  side: Side,
  queue: string,
  partitions: number,
  host: number | undefined,
  q: ClusterQueueSettings,
  s: ClusterSuiteSettings,
  measured: Measure,
): Promise<{ run: ClusterSideRun; rows: [Row, Row] }> {
  const { result: r, measured: m, problems } = await runQueueWorkload(
    {
      bootstrap: side.bootstrap,
      queue,
      partitions,
      messages: q.messages,
      messageBytes: RECORD_BYTES,
      consumers: QUEUE_CONSUMERS,
      prefetch: q.prefetch,
      consumerMode: q.consumerMode,
      publishCallSize: q.publishCallSize,
      publishCallsInFlight: q.publishCallsInFlight,
      idleTimeoutMs: QUEUE_IDLE_TIMEOUT_MS,
      nodeArgs: s.nodeArgs,
      admin: side.admin,
      log: s.log,
    },
    async (work) => {
      const x = await measured(side, work);
      return { value: x.value, measured: { phase: x.phase, etcdCpuPct: x.etcdCpuPct } };
    },
  );
  const run: ClusterSideRun = { queue: { ...r, ...(host === undefined ? {} : { host }) }, phase: m.phase, etcdCpuPct: m.etcdCpuPct };
  const p = r.publisher;
  const totalAcked = r.consumers.reduce((n, c) => n + c.acked, 0);
  // Publishes go to the queue host's partitions, not through produce requests.
  const { produceRequests: _requests, brokerProduceMs: _unused, brokerCpuPcts, ...b } = m.phase;
  const brokersNote =
    side.name === 'single' ? undefined : `brokers ${brokerCpuPcts.map((x) => `${x.toFixed(0)}%`).join(' + ')}${host === undefined ? '' : `, queue host ${host}`}, etcd ${(m.etcdCpuPct ?? 0).toFixed(0)}%`;
  return {
    run,
    rows: [
      {
        workload: `${side.label}: queue 1 KiB × ${partitions}p, ${QUEUE_CONSUMERS} cons`,
        recordsPerSec: r.endToEndPerSec,
        mbPerSec: (totalAcked * RECORD_BYTES) / MB / (r.endToEndMs / 1000),
        clientCpuPct: r.consumersCpuPct + r.publisherCpuPct,
        ...b,
        ...(side.name === 'cluster' ? { brokerCpuPcts, etcdCpuPct: m.etcdCpuPct } : {}),
        note: joinNotes(`end to end, prefetch ${q.prefetch}`, brokersNote, ...queueRunNotes(r, RECORD_BYTES), problems.join(', ')),
      },
      {
        workload: `${side.label}:   publish (same run)`,
        recordsPerSec: r.publishPerSec,
        mbPerSec: p.bytes / MB / (p.elapsedMs / 1000),
        clientCpuPct: ((p.cpuUserMs + p.cpuSystemMs) / p.elapsedMs) * 100,
        note: `${q.publishCallSize} per call, ${q.publishCallsInFlight} calls in flight, while consuming${side.name === 'cluster' ? '; answered once the in-sync replicas have it' : ''}`,
      },
    ],
  };
}

/** Runs the suite: starts the cluster, runs every workload on both sides, stops the cluster. */
export async function runClusterSuite(single: SingleBroker, s: ClusterSuiteSettings): Promise<{ rows: Row[]; comparisons: Comparison[]; result: ClusterSuiteResult }> {
  s.log(`cluster: etcd and ${CLUSTER_BROKERS} brokers, topics of replication factor ${REPLICATION_FACTOR}, min.insync.replicas ${MIN_INSYNC_REPLICAS}`);
  const cluster = await BenchCluster.start(s.dir, CLUSTER_BROKERS, s.brokerArgs, s.nodeArgs.broker);
  const samplers = cluster.brokers.map((b) => new ProcSampler(b.pid));
  const etcdSampler = new ProcSampler(cluster.etcd.pid ?? 0);
  for (const x of [...samplers, etcdSampler]) x.start();
  const admin = new KmqClient({ brokers: cluster.brokers.map((b) => b.address), clientId: 'bench-cluster-admin' });
  const queueSettings: ClusterQueueSettings = {
    messages: Math.min(QUEUE_MESSAGES_MAX, s.produceRecords),
    prefetch: 1000,
    consumerMode: 'push',
    publishCallSize: 250,
    publishCallsInFlight: 8,
    ...s.queue,
  };
  const result: ClusterSuiteResult = {
    brokers: CLUSTER_BROKERS,
    replicationFactor: REPLICATION_FACTOR,
    minInsyncReplicas: MIN_INSYNC_REPLICAS,
    acks: { single: s.throughputProducer.acks, cluster: 'all' },
    recordBytes: RECORD_BYTES,
    queue: { ...queueSettings, consumers: QUEUE_CONSUMERS, ack: 'per message (delivery.ack())' },
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
    /** Every partition of `topic` led and every replica in sync before the clock starts; the leaders by partition. */
    const replicated = (topic: string, partitions: number): Promise<number[]> =>
      until(`every partition of ${topic} led, with ${REPLICATION_FACTOR} in sync`, READY_TIMEOUT_MS, async () => {
        const ps = (await admin.admin().describeTopic(topic)).topic.partitions;
        const ready = ps.length === partitions && ps.every((p) => p.leader !== NO_BROKER && p.isr.length === REPLICATION_FACTOR);
        return ready ? [...ps].sort((a, b) => a.partition - b.partition).map((p) => p.leader) : undefined;
      });
    const sides: Side[] = [
      {
        name: 'single',
        label: '1 node',
        bootstrap: single.broker.address,
        acks: s.throughputProducer.acks,
        brokers: [{ sampler: single.sampler, httpPort: single.broker.httpPort }],
        admin: single.admin,
        createTopic: async (topic, partitions) => {
          await single.admin.admin().createTopic(topic, { partitions });
          return [];
        },
        createQueue: async (queue, partitions) => {
          await single.admin.admin().createQueue(queue, { partitions });
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
        admin,
        createTopic: async (topic, partitions) => {
          await admin.admin().createTopic(topic, { partitions, replicationFactor: REPLICATION_FACTOR, config: { minInsyncReplicas: MIN_INSYNC_REPLICAS } });
          return replicated(topic, partitions);
        },
        // The queue's partitions go on the replicas of __share_state partition 0 (3 here), led by the queue host; min.insync.replicas is the brokers' default, 2.
        createQueue: async (queue, partitions) => {
          await admin.admin().createQueue(queue, { partitions });
          return replicated(queue, partitions);
        },
      },
    ];

    const measured: Measure = async (side, work) => {
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
          ...latencyColumns(c, RECORD_BYTES),
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

    for (const partitions of QUEUE_PARTITIONS) {
      const workload = `queue 1 KiB × ${partitions}p`;
      const queue = `cluster-queue-1k-${partitions}p`;
      const pair: Partial<Record<SideName, Row>> = {};
      const publishPair: Partial<Record<SideName, Row>> = {};
      result.workloads[workload] = {} as Record<SideName, ClusterSideRun>;
      for (const side of sides) {
        const leaders = await side.createQueue(queue, partitions);
        const host = leaders[0];
        s.log(
          `${side.label}: ${workload}, ${queueSettings.messages.toLocaleString('en-US')} messages, prefetch ${queueSettings.prefetch} (${queueSettings.consumerMode}), ack per message${host === undefined ? '' : `, queue host ${host}`}`,
        );
        const { run, rows: sideRows } = await runQueueSide(side, queue, partitions, host, queueSettings, s, measured);
        result.workloads[workload][side.name] = run;
        rows.push(...sideRows);
        pair[side.name] = sideRows[0];
        publishPair[side.name] = sideRows[1];
      }
      comparisons.push({ workload, single: pair.single!, cluster: pair.cluster! });
      comparisons.push({ workload: `  publish (same run)`, single: publishPair.single!, cluster: publishPair.cluster! });
    }
  } finally {
    await admin.close().catch(() => {});
    for (const x of [...samplers, etcdSampler]) x.stop();
    await cluster.stop();
  }
  return { rows, comparisons, result };
}
