import { hostname } from 'node:os';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { ErrorCode, KmqClient, KmqError } from '../../client/index.js';
import type { Logger } from '../../lib/logger.js';
import type { CompiledSidecarOptions } from '../config.js';
import type { ProcessedKeyStore } from '../delivery/idempotency.js';
import { SidecarProbe } from '../metrics.js';
import { HealthServer } from '../../lib/health-server.js';
import type { PublishRequest, PublishResponse, SidecarServer as SidecarHandlers } from '../gen/kmq/sidecar/v1/sidecar.js';
import { ConsumeService } from './consume.js';
import { DeadLetterTopics } from './dead-letter-topics.js';
import { DeliveryPipeline } from './delivery-pipeline.js';
import { IDEMPOTENCY_KEY_HEADER } from './headers.js';
import { PublishRouter } from './publish.js';
import { PublishStreamSession, destinationKind } from './publish-stream.js';
import { PushSubscription } from './push.js';
import { addReflection } from './reflection.js';
import { toServiceError } from './status.js';
import { FastSidecarService } from './wire-codec.js';

const SIDECAR_SERVICE = 'kmq.sidecar.v1.Sidecar';

/** What start() may be given besides the options. */
export interface SidecarServerDeps {
  /** The processed-key store of effectively-once subscriptions. Default: the broker's, scoped by subscription. */
  processedKeys?: ProcessedKeyStore;
  /** Names this sidecar in idempotency claims. Default `<hostname>-<pid>`. */
  instance?: string;
}

/**
 * The app-facing gRPC server: the Sidecar service, standard health checking
 * (grpc.health.v1: '' and kmq.sidecar.v1.Sidecar are SERVING while it runs) and
 * server reflection; push subscriptions, consumed from start-up; an HTTP server
 * with /metrics, /healthz and /readyz. It reaches the broker only through one
 * KmqClient.
 */
export class SidecarGrpcServer {
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    private readonly client: KmqClient,
    private readonly consume: ConsumeService,
    private readonly pipelines: ReadonlyMap<string, DeliveryPipeline>,
    private readonly pushes: readonly PushSubscription[],
    private readonly http: HealthServer,
    private readonly health: HealthImplementation,
    /** The bound port (the real one when options.port was 0). */
    readonly port: number,
    /** The bound port of /metrics, /healthz and /readyz. */
    readonly metricsPort: number,
    private readonly graceMs: number,
    private readonly log: Logger,
  ) {}

  static async start(options: CompiledSidecarOptions, log: Logger, deps: SidecarServerDeps = {}): Promise<SidecarGrpcServer> {
    const client = new KmqClient({ brokers: options.brokers, clientId: `kmq-sidecar-${options.namespace}`, logger: log.child({ component: 'client' }) });
    const probe = new SidecarProbe();
    const router = new PublishRouter(client, options);
    // Effectively-once keys are kept by the broker, one scope per subscription, so every
    // sidecar of a subscription shares them and they outlive a sidecar that dies.
    const storeFor = (subscription: string): ProcessedKeyStore => deps.processedKeys ?? client.processedKeys(subscription);
    const instance = deps.instance ?? `${hostname()}-${process.pid}`;
    const deliveryLog = log.child({ component: 'delivery' });
    const pipelines = new Map<string, DeliveryPipeline>();
    for (const sub of options.subscriptions.values()) pipelines.set(sub.name, new DeliveryPipeline(sub, probe.subscription(sub.name), storeFor(sub.name), instance, deliveryLog));
    const deadLetters = new DeadLetterTopics(client);
    const consume = new ConsumeService(client, options, deadLetters, pipelines, probe, log.child({ component: 'consume' }));
    // Room for a max-size payload plus its key and headers: the sidecar's own check names the limit.
    // Channelz (off): its per-call and per-message bookkeeping costs CPU on every message, and nothing reads it.
    const server = new Server({ 'grpc.max_receive_message_length': options.maxPayloadBytes + 1024 * 1024, 'grpc.enable_channelz': 0 });
    const handlers: SidecarHandlers = {
      publish: (call, callback) => publishUnary(router, probe, call, callback),
      publishStream: (call) => void new PublishStreamSession(router, probe, call),
      consume: (call) => consume.handle(call),
    };
    // The generated codecs, with hand-written ones on the two streams' per-message paths.
    server.addService(FastSidecarService, handlers);
    const health = new HealthImplementation({ '': 'SERVING', [SIDECAR_SERVICE]: 'SERVING' });
    health.addToServer(server);
    addReflection(server);
    const port = await new Promise<number>((resolve, reject) => {
      const address = options.host.includes(':') ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
      server.bindAsync(address, ServerCredentials.createInsecure(), (err, bound) => (err === null ? resolve(bound) : reject(err)));
    });
    let ready = true;
    const http = new HealthServer(probe.registry, () => ready);
    let metricsPort: number;
    try {
      metricsPort = await http.listen(options.host, options.metricsPort);
    } catch (err) {
      server.forceShutdown();
      await client.close();
      throw new KmqError(ErrorCode.InvalidConfig, `Cannot listen for metrics on ${options.host}:${options.metricsPort}: ${(err as Error).message}`, { setting: 'metricsPort' }, { retriable: false });
    }
    const pushes: PushSubscription[] = [];
    for (const sub of options.subscriptions.values()) {
      if (sub.pushPort === undefined) continue;
      const push = new PushSubscription(client, sub, pipelines.get(sub.name)!, deadLetters, probe, deliveryLog.child({ subscription: sub.name }));
      push.start();
      pushes.push(push);
    }
    const s = new SidecarGrpcServer(server, client, consume, pipelines, pushes, http, health, port, metricsPort, options.shutdownGraceMs, log);
    s.onStop = () => (ready = false);
    return s;
  }

  private onStop: () => void = () => {};

  /**
   * Graceful stop: reports NOT_SERVING, takes no new deliveries, waits up to the
   * grace period (shutdownGraceMs) for deliveries the app holds, then ends Consume
   * streams and push subscriptions (what is left unsettled goes back to the broker;
   * what is done is committed), lets unary calls finish, and closes the client
   * (flushing publishes). Idempotent.
   */
  stop(graceMs = this.graceMs): Promise<void> {
    this.stopping ??= (async () => {
      this.onStop();
      this.health.setStatus('', 'NOT_SERVING');
      this.health.setStatus(SIDECAR_SERVICE, 'NOT_SERVING');
      const drained = await Promise.all([...this.pipelines.values()].map((p) => p.drain(graceMs)));
      if (drained.includes(false)) this.log.warn({ graceMs }, 'Deliveries still held by the app after the grace period; they will be delivered again');
      await Promise.all([this.consume.closeAll(), ...this.pushes.map((p) => p.close())]);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.log.warn({ graceMs }, 'Calls still open after the grace period; closing them');
          this.server.forceShutdown();
          resolve();
        }, graceMs);
        this.server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await this.client.close();
      await this.http.close();
    })();
    return this.stopping;
  }
}

function publishUnary(router: PublishRouter, probe: SidecarProbe, call: ServerUnaryCall<PublishRequest, PublishResponse>, callback: sendUnaryData<PublishResponse>): void {
  let key: string;
  try {
    key = router.validate(call.request);
  } catch (err) {
    callback(toServiceError(err));
    return;
  }
  const abort = new AbortController();
  call.once('cancelled', () => abort.abort());
  const kind = destinationKind(call.request);
  router.publish(call.request, key, abort.signal).then(
    (res) => {
      probe.publishedOne(kind);
      callback(null, res);
    },
    // The key in the trailers lets the app retry with the same key.
    (err: unknown) => {
      probe.publishFailedOne(kind);
      callback(toServiceError(err, { [IDEMPOTENCY_KEY_HEADER]: key }));
    },
  );
}
