/**
 * Broker-side figures of one benchmark phase: CPU and peak RSS of the broker
 * process(es), whole-machine busy and iowait, and the mean produce time from the
 * brokers' `/metrics`. A phase starts once the machine is nearly idle.
 */
import os from 'node:os';
import { ProcSampler } from './proc-sampler.js';

const MiB = 1024 * 1024;

/** One broker process measured by a phase: its sampler and its HTTP (metrics) port. */
export interface PhaseBroker {
  sampler: ProcSampler;
  httpPort: number;
}

/** What Phase.end() reports. CPU in % of one core, machine figures in % of all CPUs. */
export interface PhaseFigures {
  /** Every broker of the phase together. */
  brokerCpuPct: number;
  /** Per broker, in the order given to begin(). */
  brokerCpuPcts: number[];
  machineCpuPct: number;
  iowaitPct: number;
  /** The largest peak RSS of any one broker. */
  brokerPeakRssMb: number;
  /** Mean time per produce request over every broker that answered one (frame read to answer, fsync and, for acks=all, replication included). */
  brokerProduceMs: number | undefined;
  produceRequests: number;
}

interface ProduceLatencySum {
  seconds: number;
  count: number;
}

const log = (msg: string): void => void process.stderr.write(`bench: ${msg}\n`);

/** Sum and count of a broker's produce-latency histogram (frame read to answer, fsync included), from /metrics. */
export async function brokerProduceLatency(httpPort: number): Promise<ProduceLatencySum> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const num = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { seconds: num('kmq_broker_produce_seconds_sum'), count: num('kmq_broker_produce_seconds_count') };
}

/**
 * Waits (up to 30 s) until the machine has been nearly idle for half a second, so
 * that a phase does not start while other work from before (the previous phase's
 * writeback, another process) still holds the CPUs. Returns the ms waited.
 */
export async function waitForQuiet(): Promise<number> {
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

/** Broker-side figures of one phase, over one broker or every broker of a cluster. */
export class Phase {
  private readonly t0 = performance.now();
  private constructor(
    private readonly brokers: PhaseBroker[],
    private readonly cpu0: number[],
    private readonly produce0: ProduceLatencySum[],
    private readonly machine0 = ProcSampler.machineCpuMs(),
  ) {}

  static begin(sampler: ProcSampler, httpPort: number): Promise<Phase> {
    return Phase.beginAll([{ sampler, httpPort }]);
  }

  static async beginAll(brokers: PhaseBroker[]): Promise<Phase> {
    const waited = await waitForQuiet();
    if (waited > 5000) log(`waited ${(waited / 1000).toFixed(0)} s for the machine to quieten`);
    const produce0 = await Promise.all(brokers.map((b) => brokerProduceLatency(b.httpPort)));
    for (const b of brokers) b.sampler.takePhasePeak();
    return new Phase(
      brokers,
      brokers.map((b) => b.sampler.cpuMs()),
      produce0,
    );
  }

  async end(): Promise<PhaseFigures> {
    const wall = performance.now() - this.t0;
    const brokerCpuPcts = this.brokers.map((b, i) => ((b.sampler.cpuMs() - this.cpu0[i]!) / wall) * 100);
    const m = ProcSampler.machineCpuMs();
    const cpus = os.cpus().length;
    const machineCpuPct = ((m.busyMs - this.machine0.busyMs) / wall / cpus) * 100;
    const iowaitPct = ((m.iowaitMs - this.machine0.iowaitMs) / wall / cpus) * 100;
    const brokerPeakRssMb = Math.max(...this.brokers.map((b) => b.sampler.takePhasePeak())) / MiB;
    const produce = await Promise.all(this.brokers.map((b) => brokerProduceLatency(b.httpPort)));
    let seconds = 0;
    let requests = 0;
    produce.forEach((p, i) => {
      seconds += p.seconds - this.produce0[i]!.seconds;
      requests += p.count - this.produce0[i]!.count;
    });
    return {
      brokerCpuPct: brokerCpuPcts.reduce((a, b) => a + b, 0),
      brokerCpuPcts,
      machineCpuPct,
      iowaitPct,
      brokerPeakRssMb,
      brokerProduceMs: requests > 0 ? (seconds / requests) * 1000 : undefined,
      produceRequests: requests,
    };
  }
}
