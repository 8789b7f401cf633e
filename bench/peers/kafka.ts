/**
 * Apache Kafka, one KRaft node (broker and controller in one JVM) on free loopback
 * ports, from the jars install-kafka.sh put in ~/.cache/kmq/peers/kafka-<version>/libs.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { Kafka, logLevel } from 'kafkajs';
import { ProcessGroup, freePort, peerTempDir, peersHome, stopAndRemove, waitReady } from './peer-process.js';
import type { RunningPeer } from './peer-process.js';

/** The version install-kafka.sh installs by default (KAFKA_VERSION overrides both). */
export const KAFKA_VERSION = process.env.KAFKA_VERSION ?? '4.3.1';

/** JVM options of Kafka's own kafka-server-start.sh / kafka-run-class.sh. */
const JVM_OPTS = ['-Xms1G', '-Xmx1G', '-server', '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-XX:InitiatingHeapOccupancyPercent=35', '-XX:+ExplicitGCInvokesConcurrent', '-Djava.awt.headless=true'];

/** server.properties beyond the listeners and folders; each stated in the report. */
const PINNED: Record<string, string> = {
  'num.network.threads': '3',
  'num.io.threads': '8',
  'num.partitions': '1',
  'auto.create.topics.enable': 'false',
  'offsets.topic.replication.factor': '1',
  'transaction.state.log.replication.factor': '1',
  'transaction.state.log.min.isr': '1',
  'share.coordinator.state.topic.replication.factor': '1',
  'share.coordinator.state.topic.min.isr': '1',
  'group.initial.rebalance.delay.ms': '0',
  'message.max.bytes': '2097152',
  // Durability row "acknowledged from the page cache, fsync about every second".
  'log.flush.interval.ms': '1000',
  'log.flush.scheduler.interval.ms': '1000',
};

export function kafkaLibs(): string {
  return path.join(peersHome(), `kafka-${KAFKA_VERSION}`, 'libs');
}

/** Why Kafka cannot run here, or undefined when its jars are installed. */
export function kafkaMissing(): string | undefined {
  if (!fs.existsSync(path.join(kafkaLibs(), `kafka_2.13-${KAFKA_VERSION}.jar`))) return `Kafka ${KAFKA_VERSION} jars not in ${kafkaLibs()} (run bench/peers/install-kafka.sh)`;
  try {
    execFileSync('java', ['-version'], { stdio: 'ignore' });
  } catch {
    return 'java not found';
  }
  return undefined;
}

export async function startKafka(): Promise<RunningPeer> {
  const dir = peerTempDir('kafka');
  const [port, controllerPort] = [await freePort(), await freePort()];
  const props: Record<string, string> = {
    'process.roles': 'broker,controller',
    'node.id': '1',
    'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    'log.dirs': path.join(dir, 'data'),
    ...PINNED,
  };
  const propsFile = path.join(dir, 'server.properties');
  fs.writeFileSync(propsFile, Object.entries(props).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  const log4j = path.join(dir, 'log4j2.properties');
  fs.writeFileSync(log4j, 'rootLogger.level=WARN\nrootLogger.appenderRef.out.ref=out\nappender.out.type=Console\nappender.out.name=out\nappender.out.layout.type=PatternLayout\nappender.out.layout.pattern=[%d] %p %m (%c)%n\n');
  const cp = `${kafkaLibs()}/*`;
  const java = ['-cp', cp, `-Dlog4j2.configurationFile=${log4j}`];
  const clusterId = randomBytes(16).toString('base64url');
  try {
    execFileSync('java', [...java, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', propsFile], { stdio: 'pipe', timeout: 60_000 });
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    const e = err as { stderr?: Buffer; stdout?: Buffer; message: string };
    throw new Error(`kafka-storage format failed: ${e.stderr?.toString() ?? ''}${e.stdout?.toString() ?? ''}${e.message}`);
  }
  const group = ProcessGroup.spawn('kafka', 'java', [...JVM_OPTS, ...java, 'kafka.Kafka', propsFile], path.join(dir, 'kafka.log'));
  const kafka = new Kafka({ clientId: 'bench-probe', brokers: [`127.0.0.1:${port}`], logLevel: logLevel.NOTHING, retry: { retries: 0 } });
  const admin = kafka.admin();
  try {
    await waitReady(group, 90_000, async () => {
      await admin.connect();
      const c = await admin.describeCluster();
      return c.brokers.length === 1 && c.controller !== null;
    });
  } catch (err) {
    await stopAndRemove(group, dir);
    throw err;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  return {
    address: `127.0.0.1:${port}`,
    pids: () => group.pids(),
    version: `Apache Kafka ${KAFKA_VERSION} (KRaft, 1 node), Java ${javaVersion()}`,
    settings: [`JVM: ${JVM_OPTS.join(' ')}`, ...Object.entries(PINNED).map(([k, v]) => `${k}=${v}`)],
    stop: () => stopAndRemove(group, dir),
  };
}

function javaVersion(): string {
  const out = spawnSync('java', ['-version'], { encoding: 'utf8' }).stderr ?? '';
  return /version "([^"]+)"/.exec(out)?.[1] ?? '?';
}

/** Settings of Kafka's ProducerPerformance in the comparison (stated in the report). */
export const KAFKA_PERF_PRODUCER_PROPS = ['acks=1', 'enable.idempotence=false', 'linger.ms=0', 'batch.size=1048576', 'max.request.size=1048576', 'compression.type=none', 'max.in.flight.requests.per.connection=5'];

/** What ProducerPerformance printed last: its summary of the whole run. */
export interface KafkaPerfResult {
  records: number;
  recordsPerSec: number;
  mbPerSec: number;
  avgLatencyMs: number;
  p50Ms: number;
  p99Ms: number;
  /** Wall-clock time of the tool's process, JVM start included, ms. */
  processMs: number;
}

/**
 * Runs Kafka's own producer perf tool (org.apache.kafka.tools.ProducerPerformance,
 * the kafka-producer-perf-test.sh main class) at max rate against `address`.
 */
export async function kafkaProducerPerf(address: string, topic: string, records: number, recordBytes: number): Promise<KafkaPerfResult> {
  const args = ['-Xmx512M', '-cp', `${kafkaLibs()}/*`, 'org.apache.kafka.tools.ProducerPerformance', '--topic', topic, '--num-records', String(records), '--record-size', String(recordBytes), '--throughput', '-1', '--producer-props', `bootstrap.servers=${address}`, ...KAFKA_PERF_PRODUCER_PROPS];
  const t0 = performance.now();
  const { spawn } = await import('node:child_process');
  const child = spawn('java', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  const m = /(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, [\d.]+ ms max latency, (\d+) ms 50th, \d+ ms 95th, (\d+) ms 99th/.exec(out);
  if (code !== 0 || m === null) throw new Error(`ProducerPerformance failed (exit ${code}): ${out.slice(-800)}`);
  return { records: Number(m[1]), recordsPerSec: Number(m[2]), mbPerSec: Number(m[3]), avgLatencyMs: Number(m[4]), p50Ms: Number(m[5]), p99Ms: Number(m[6]), processMs: performance.now() - t0 };
}
