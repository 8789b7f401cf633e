/**
 * Operator scale benchmark: `npm run build && node dist/bench/operator-scale.js [--topics N]`.
 *
 * A real kube-apiserver and etcd (the test control plane, built by
 * scripts/setup-control-plane.sh), the CRDs, a real broker process and the operator as a
 * real process (`kmq operator` with the chart's NODE_OPTIONS, brokers reached through
 * --broker-address-override). N Topic objects (default 1,000) are created at once, 50
 * requests in flight; the clock runs from the first create until every Topic reports
 * Ready=True. The operator's RSS is sampled every 200 ms. Targets (reported, not
 * asserted): all Ready within 60 s, operator RSS at most 200 MB.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { ControlPlane, controlPlaneBinary } from '../testkit/control-plane.js';
import { BenchBroker } from './processes.js';
import { ProcSampler } from './proc-sampler.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const GROUP = 'kmq.dev';
const VERSION = 'v1alpha1';
const NAMESPACE = 'scale';
const CONCURRENCY = 50;
const TARGET_SECONDS = 60;
const TARGET_RSS_MB = 200;

const log = (m: string): void => void process.stderr.write(`bench: ${m}\n`);

function parseTopics(argv: string[]): number {
  const i = argv.indexOf('--topics');
  if (i < 0) return 1000;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error('--topics must be a positive integer');
  return n;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${path.basename(cmd)} ${args.join(' ')}: exit ${code}\n${out}`))));
  });
}

interface TopicObject {
  metadata: { name: string };
  status?: { conditions?: Array<{ type: string; status: string }> };
}

const ready = (t: TopicObject): boolean => t.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

async function main(): Promise<void> {
  const topics = parseTopics(process.argv.slice(2));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-opscale-'));
  let cp: ControlPlane | undefined;
  let broker: BenchBroker | undefined;
  let operator: ChildProcess | undefined;
  const operatorTail: string[] = [];
  try {
    log('starting etcd and kube-apiserver');
    cp = await ControlPlane.start();
    await run(controlPlaneBinary('kubectl'), ['apply', '--server-side', '-f', path.join(root, 'crds'), '--kubeconfig', cp.kubeconfigPath]);
    await run(controlPlaneBinary('kubectl'), ['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s', '--kubeconfig', cp.kubeconfigPath]);
    broker = await BenchBroker.start(path.join(tmp, 'broker'), []);
    log(`broker on ${broker.address}`);
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NAMESPACE,
      plural: 'brokerclusters',
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'BrokerCluster', metadata: { name: 'main' }, spec: { replicas: 1 } },
    });

    // As the chart runs it: its NODE_OPTIONS (a heap cap), unless OPERATOR_NODE_OPTIONS says otherwise.
    const chartValues = parseYaml(fs.readFileSync(path.join(root, 'charts', 'kmq', 'values.yaml'), 'utf8')) as { nodeOptions?: string };
    const nodeOptions = process.env.OPERATOR_NODE_OPTIONS ?? chartValues.nodeOptions ?? '';
    log(`operator: kmq operator, NODE_OPTIONS=${nodeOptions}`);
    operator = spawn(
      process.execPath,
      [path.join(root, 'dist', 'cli', 'main.js'), 'operator', '--leader-elect=false', '--no-webhook', '--health-host=127.0.0.1', '--health-port=0', `--broker-address-override=${broker.address}`],
      { env: { ...process.env, KUBECONFIG: cp.kubeconfigPath, KMQ_LOG_LEVEL: 'warn', NODE_OPTIONS: nodeOptions }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (d: Buffer): void => {
      operatorTail.push(...d.toString().split('\n').filter(Boolean));
      operatorTail.splice(0, Math.max(0, operatorTail.length - 30));
    };
    operator.stdout!.on('data', keep);
    operator.stderr!.on('data', keep);
    const sampler = new ProcSampler(operator.pid!);
    sampler.start();
    // Let the operator start and sync before the clock starts.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const idleRssMb = sampler.peakRss / 1024 / 1024;

    log(`creating ${topics.toLocaleString('en-US')} Topic objects, ${CONCURRENCY} at a time`);
    const t0 = performance.now();
    let next = 0;
    const create = async (): Promise<void> => {
      while (next < topics) {
        const i = next++;
        await custom.createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: NAMESPACE,
          plural: 'topics',
          body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Topic', metadata: { name: `t-${i}` }, spec: { partitions: 1 } },
        });
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, create));
    const createdS = (performance.now() - t0) / 1000;
    log(`created in ${createdS.toFixed(1)} s; waiting for Ready`);
    let readyCount = 0;
    let allReadyS = NaN;
    const deadline = t0 + 5 * 60_000;
    let lastReport = 0;
    while (performance.now() < deadline) {
      const list = (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NAMESPACE, plural: 'topics' })) as { items: TopicObject[] };
      readyCount = list.items.filter(ready).length;
      if (readyCount >= topics) {
        allReadyS = (performance.now() - t0) / 1000;
        break;
      }
      if (performance.now() - lastReport > 5000) {
        lastReport = performance.now();
        log(`${readyCount.toLocaleString('en-US')} of ${topics.toLocaleString('en-US')} Ready after ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const peakRssMb = sampler.peakRss / 1024 / 1024;
    sampler.stop();
    const result = { topics, concurrency: CONCURRENCY, nodeOptions, createdSeconds: createdS, allReadySeconds: allReadyS, readyCount, operatorIdleRssMb: idleRssMb, operatorPeakRssMb: peakRssMb };
    const outDir = path.join(root, '.bench-out');
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'operator-scale.json'), JSON.stringify(result, null, 2));
    const met = (ok: boolean): string => (ok ? '[met]' : '[MISSED]');
    process.stdout.write(
      [
        `kmq operator scale (${os.cpus().length} CPUs, node ${process.version})`,
        `  ${topics.toLocaleString('en-US')} Topic objects created (${CONCURRENCY} in flight) in ${createdS.toFixed(1)} s`,
        `  all Ready after ${Number.isNaN(allReadyS) ? `— (only ${readyCount} within 5 min)` : `${allReadyS.toFixed(1)} s`} from the first create`,
        `  operator RSS: ${idleRssMb.toFixed(0)} MB idle, ${peakRssMb.toFixed(0)} MB peak (NODE_OPTIONS=${nodeOptions})`,
        `  ${met(allReadyS <= TARGET_SECONDS)} ${topics.toLocaleString('en-US')} Topics Ready in <= ${TARGET_SECONDS} s`,
        `  ${met(peakRssMb <= TARGET_RSS_MB)} operator RSS <= ${TARGET_RSS_MB} MB`,
        `JSON: ${path.join(outDir, 'operator-scale.json')}`,
        '',
      ].join('\n'),
    );
    if (readyCount < topics) process.stderr.write(`operator log tail:\n${operatorTail.join('\n')}\n`);
  } finally {
    if (operator !== undefined && operator.exitCode === null) {
      operator.kill('SIGTERM');
      await new Promise((resolve) => {
        const t = setTimeout(() => operator!.kill('SIGKILL'), 10_000);
        operator!.once('exit', () => resolve(clearTimeout(t)));
      });
    }
    await broker?.stop();
    await cp?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
