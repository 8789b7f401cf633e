import { Metadata, credentials, status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import type { KmqClient } from '../../client/index.js';
import { sleep } from '../../lib/backoff.js';
import type { Logger } from '../../lib/logger.js';
import type { CompiledSubscription } from '../config.js';
import { AppCallbackClient, OnMessageResponse_Outcome } from '../gen/kmq/sidecar/v1/sidecar.js';
import type { Delivery, OnMessageResponse } from '../gen/kmq/sidecar/v1/sidecar.js';
import type { SidecarProbe } from '../metrics.js';
import { openSource } from './consume.js';
import type { DeadLetterTopics } from './dead-letter-topics.js';
import type { DeliveryPipeline } from './delivery-pipeline.js';
import type { DeliverySource, Settlement } from './delivery-source.js';

/** Wait before reopening a source that failed (e.g. its topic does not exist yet). */
const RESTART_DELAY_MS = 1_000;

/** The settlement an OnMessage answer stands for. */
export function settlementOfAnswer(res: OnMessageResponse): Settlement {
  switch (res.outcome) {
    case OnMessageResponse_Outcome.OUTCOME_SUCCESS:
      return { kind: 'ack' };
    case OnMessageResponse_Outcome.OUTCOME_RETRY:
      return { kind: 'retry', delayMs: res.retryDelayMs === 0 ? undefined : res.retryDelayMs, reason: res.reason === '' ? 'the app answered RETRY' : res.reason };
    case OnMessageResponse_Outcome.OUTCOME_DEAD_LETTER:
      return { kind: 'dead-letter', reason: res.reason === '' ? 'the app answered DEAD_LETTER' : res.reason };
    default:
      return { kind: 'failure', timeout: false, reason: `the app answered ${OnMessageResponse_Outcome[res.outcome] ?? res.outcome}` };
  }
}

/**
 * A push subscription: the sidecar consumes it from start-up and calls the app's
 * AppCallback.OnMessage on 127.0.0.1:<port> for each message, with a deadline of the
 * handler timeout. SUCCESS acks, RETRY retries per the policy (or after the app's
 * delay), DEAD_LETTER dead-letters at once; a missed deadline, an error status or
 * an unreachable app is a failed attempt (retried with the policy's backoff).
 */
export class PushSubscription {
  private readonly app: AppCallbackClient;
  private source: DeliverySource | undefined;
  private closed = false;
  private running: Promise<void> | undefined;
  private nextId = 0;

  constructor(
    private readonly client: KmqClient,
    private readonly sub: CompiledSubscription,
    private readonly pipeline: DeliveryPipeline,
    private readonly deadLetters: DeadLetterTopics,
    private readonly probe: SidecarProbe,
    private readonly log: Logger,
  ) {
    // Short reconnect backoff: an app that starts after its sidecar is reached soon.
    this.app = new AppCallbackClient(`127.0.0.1:${sub.pushPort!}`, credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1_000,
      'grpc.enable_channelz': 0,
    });
  }

  /** Starts consuming; a failed source is reopened after a short delay until close(). */
  start(): void {
    this.running ??= this.loop();
  }

  private async loop(): Promise<void> {
    const transport = (m: Omit<Delivery, 'deliveryId'>, answer: (s: Settlement | undefined) => void): void => this.call(m, answer);
    while (!this.closed) {
      const source = openSource(this.client, this.sub, this.sub.maxInFlight, this.deadLetters, this.probe, this.log);
      this.source = source;
      this.log.info({ subscription: this.sub.name, port: this.sub.pushPort, mode: this.sub.mode, guarantee: this.sub.guarantee }, 'Push subscription started');
      try {
        await source.run((d) => this.pipeline.handle(d, transport));
      } catch (err) {
        if (this.closed) return;
        this.log.warn({ subscription: this.sub.name, err: (err as Error).message }, 'Push subscription failed; starting it again');
      }
      await source.close().catch(() => {});
      if (!this.closed) await sleep(RESTART_DELAY_MS);
    }
  }

  private call(message: Omit<Delivery, 'deliveryId'>, resolve: (s: Settlement) => void): void {
    const timeoutMs = this.sub.retryPolicy.handlerTimeoutMs;
    const delivery: Delivery = { deliveryId: String(++this.nextId), ...message };
    this.app.onMessage({ subscription: this.sub.name, delivery }, new Metadata(), { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, res: OnMessageResponse) => {
        if (err === null) return resolve(settlementOfAnswer(res));
        if (err.code === status.DEADLINE_EXCEEDED) return resolve({ kind: 'failure', timeout: true, reason: `handler timeout (${timeoutMs} ms)` });
        const reason = err.code === status.UNAVAILABLE ? `the app is unreachable on port ${this.sub.pushPort}: ${err.details}` : `OnMessage failed: ${status[err.code]} ${err.details}`;
        resolve({ kind: 'failure', timeout: false, reason });
      });
  }

  /** Stops consuming (unsettled messages go back to the broker, what is done is committed) and closes the app channel. */
  async close(): Promise<void> {
    this.closed = true;
    await this.source?.close();
    await this.running?.catch(() => {});
    this.app.close();
  }
}
