import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { ServerDuplexStream, ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { ErrorCode, KmqClient, KmqError } from '../../client/index.js';
import type { Logger } from '../../lib/logger.js';
import type { CompiledSidecarOptions } from '../config.js';
import { SidecarService } from '../gen/kmq/sidecar/v1/sidecar.js';
import type { PublishRequest, PublishResponse, PublishStreamRequest, PublishStreamResponse, SidecarServer as SidecarHandlers } from '../gen/kmq/sidecar/v1/sidecar.js';
import { ConsumeService } from './consume.js';
import { DeadLetterTopics } from './dead-letter-topics.js';
import { IDEMPOTENCY_KEY_HEADER } from './headers.js';
import { PublishRouter } from './publish.js';
import { addReflection } from './reflection.js';
import { toServiceError } from './status.js';

/** Unanswered messages one PublishStream may have before the sidecar stops reading it. */
const STREAM_HIGH_WATER = 4096;
const SIDECAR_SERVICE = 'kmq.sidecar.v1.Sidecar';

/**
 * The app-facing gRPC server: the Sidecar service, standard health checking
 * (grpc.health.v1: '' and kmq.sidecar.v1.Sidecar are SERVING while it runs) and
 * server reflection. It reaches the broker only through one KmqClient.
 */
export class SidecarGrpcServer {
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    private readonly client: KmqClient,
    private readonly consume: ConsumeService,
    private readonly health: HealthImplementation,
    /** The bound port (the real one when options.port was 0). */
    readonly port: number,
    private readonly log: Logger,
  ) {}

  static async start(options: CompiledSidecarOptions, log: Logger): Promise<SidecarGrpcServer> {
    const client = new KmqClient({ brokers: options.brokers, clientId: `kmq-sidecar-${options.namespace}`, logger: log.child({ component: 'client' }) });
    const router = new PublishRouter(client, options);
    const consume = new ConsumeService(client, options, new DeadLetterTopics(client), log.child({ component: 'consume' }));
    // Room for a max-size payload plus its key and headers: the sidecar's own check names the limit.
    const server = new Server({ 'grpc.max_receive_message_length': options.maxPayloadBytes + 1024 * 1024 });
    const handlers: SidecarHandlers = {
      publish: (call, callback) => publishUnary(router, call, callback),
      publishStream: (call) => publishStream(router, call),
      consume: (call) => consume.handle(call),
    };
    server.addService(SidecarService, handlers);
    const health = new HealthImplementation({ '': 'SERVING', [SIDECAR_SERVICE]: 'SERVING' });
    health.addToServer(server);
    addReflection(server);
    const port = await new Promise<number>((resolve, reject) => {
      const address = options.host.includes(':') ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
      server.bindAsync(address, ServerCredentials.createInsecure(), (err, bound) => (err === null ? resolve(bound) : reject(err)));
    });
    return new SidecarGrpcServer(server, client, consume, health, port, log);
  }

  /**
   * Reports NOT_SERVING, ends Consume streams (unsettled deliveries go back to the
   * broker), lets unary calls finish within `graceMs`, then closes the client
   * (flushing publishes). Idempotent.
   */
  stop(graceMs = 5_000): Promise<void> {
    this.stopping ??= (async () => {
      this.health.setStatus('', 'NOT_SERVING');
      this.health.setStatus(SIDECAR_SERVICE, 'NOT_SERVING');
      await this.consume.closeAll();
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
    })();
    return this.stopping;
  }
}

function publishUnary(router: PublishRouter, call: ServerUnaryCall<PublishRequest, PublishResponse>, callback: sendUnaryData<PublishResponse>): void {
  let key: string;
  try {
    key = router.validate(call.request);
  } catch (err) {
    callback(toServiceError(err));
    return;
  }
  const abort = new AbortController();
  call.once('cancelled', () => abort.abort());
  router.publish(call.request, key, abort.signal).then(
    (res) => callback(null, res),
    // The key in the trailers lets the app retry with the same key.
    (err: unknown) => callback(toServiceError(err, { [IDEMPOTENCY_KEY_HEADER]: key })),
  );
}

/** Answers each message with its id; a failed message gets an error answer and the stream goes on. */
function publishStream(router: PublishRouter, call: ServerDuplexStream<PublishStreamRequest, PublishStreamResponse>): void {
  const abort = new AbortController();
  let pending = 0;
  let ended = false;
  let paused = false;
  const answer = (res: PublishStreamResponse): void => {
    if (!call.cancelled) call.write(res);
    pending--;
    if (paused && pending < STREAM_HIGH_WATER / 2) {
      paused = false;
      call.resume();
    }
    if (ended && pending === 0 && !call.cancelled) call.end();
  };
  const failed = (id: number, err: unknown, key?: string): PublishStreamResponse => {
    const e = toServiceError(err);
    return { id, error: { code: e.code ?? 2, message: key === undefined ? e.details ?? e.message : `${e.details ?? e.message} (idempotency key ${key})` } };
  };
  call.on('data', (req: PublishStreamRequest) => {
    pending++;
    if (pending >= STREAM_HIGH_WATER && !paused) {
      paused = true;
      call.pause();
    }
    const id = req.id;
    const msg = req.message;
    let key: string;
    try {
      if (msg === undefined) throw new KmqError(ErrorCode.InvalidRequest, 'message is required: each PublishStreamRequest carries one PublishRequest', {}, { retriable: false });
      key = router.validate(msg, 'message.');
    } catch (err) {
      // Answered on a later turn, like every other message: a stream of bad messages cannot starve the loop.
      queueMicrotask(() => answer(failed(id, err)));
      return;
    }
    router.publish(msg, key, abort.signal).then(
      (ok) => answer({ id, ok }),
      (err: unknown) => answer(failed(id, err, key)),
    );
  });
  call.on('end', () => {
    ended = true;
    if (pending === 0 && !call.cancelled) call.end();
  });
  call.on('cancelled', () => abort.abort());
}
