/**
 * One benchmark role in its own process: `node dist/bench/worker.js <role> '<json config>'`.
 * Prints progress lines as `{"event":...}` and, last, one `{"result":...}` line on
 * stdout; exits non-zero with the error on stderr on failure.
 */
import type { ConsumeConfig, DiskConfig, E2eConsumeConfig, E2eProduceConfig, ProduceConfig, PublishConfig, QueueConsumeConfig, SidecarConsumeConfig, SidecarPublishConfig, TcpSourceConfig } from './bench-config.js';
import { consumeCatchUp, consumeLatency, produceFixedRate, produceMaxRate } from './client-workloads.js';
import { diskWrite, tcpSink, tcpSource } from './machine-limits.js';
import { hopSink, hopSource } from './hop-latency.js';
import type { HopSinkConfig, HopSourceConfig } from './hop-latency.js';
import { consumeQueue, publishMaxRate } from './queue-workloads.js';
import { sidecarConsume, sidecarPublish } from './sidecar-workloads.js';
import { runCompareRole } from './compare-workloads.js';
import type { CompareWorkerConfig } from './compare-workloads.js';

export const WORKER_ROLES = ['produce', 'consume', 'e2e-produce', 'e2e-consume', 'publish', 'queue-consume', 'sidecar-publish', 'sidecar-consume', 'disk', 'tcp-sink', 'tcp-source', 'hop-sink', 'hop-source', 'compare'] as const;
export type WorkerRole = (typeof WORKER_ROLES)[number];

function emit(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function run(role: WorkerRole, config: unknown): Promise<unknown> {
  switch (role) {
    case 'produce':
      return produceMaxRate(config as ProduceConfig);
    case 'consume':
      return consumeCatchUp(config as ConsumeConfig);
    case 'e2e-produce':
      return produceFixedRate(config as E2eProduceConfig);
    case 'e2e-consume':
      return consumeLatency(config as E2eConsumeConfig, () => emit({ event: 'ready' }));
    case 'publish':
      return publishMaxRate(config as PublishConfig);
    case 'queue-consume':
      return consumeQueue(
        config as QueueConsumeConfig,
        () => emit({ event: 'ready' }),
        (acked) => emit({ event: 'progress', acked }),
      );
    case 'sidecar-publish':
      return sidecarPublish(config as SidecarPublishConfig);
    case 'sidecar-consume':
      return sidecarConsume(config as SidecarConsumeConfig, () => emit({ event: 'ready' }));
    case 'disk':
      return diskWrite(config as DiskConfig);
    case 'tcp-sink':
      return tcpSink((port) => emit({ event: 'listening', port }));
    case 'tcp-source':
      return tcpSource(config as TcpSourceConfig);
    case 'hop-sink':
      return hopSink(config as HopSinkConfig, (port) => emit({ event: 'listening', port }));
    case 'hop-source':
      return hopSource(config as HopSourceConfig);
    case 'compare':
      return runCompareRole(config as CompareWorkerConfig, emit);
  }
}

const [role, json] = process.argv.slice(2);
if (role === undefined || !(WORKER_ROLES as readonly string[]).includes(role)) {
  process.stderr.write(`usage: worker.js <${WORKER_ROLES.join('|')}> '<json config>'\n`);
  process.exit(2);
}
run(role as WorkerRole, JSON.parse(json ?? '{}'))
  .then((result) => {
    // Exit once the line is written: a result larger than the pipe's buffer would be cut off otherwise.
    process.stdout.write(`${JSON.stringify({ result })}\n`, () => process.exit(0));
  })
  .catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
