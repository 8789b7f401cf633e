import type { ServerDuplexStream } from '@grpc/grpc-js';
import { ErrorCode, KmqError } from '../../client/index.js';
import type { PublishError, PublishRequest, PublishResponse, PublishStreamRequest, PublishStreamResponse, PublishStreamResult } from '../gen/kmq/sidecar/v1/sidecar.js';
import type { SidecarProbe } from '../metrics.js';
import type { PublishRouter } from './publish.js';
import { toServiceError } from './status.js';

/** Unanswered messages one PublishStream may have before the sidecar stops reading it. */
const STREAM_HIGH_WATER = 8192;
/** Most results in one batch response; more finished at once go in several. */
const MAX_RESULTS_PER_RESPONSE = 4096;

/** The destination kind of a publish, a bounded metric label. */
export function destinationKind(req: PublishRequest): string {
  const d = req.destination;
  return d?.topic !== undefined ? 'topic' : d?.queue !== undefined ? 'queue' : 'exchange';
}

function publishError(err: unknown, key?: string): PublishError {
  const e = toServiceError(err);
  return { code: e.code ?? 2, message: key === undefined ? (e.details ?? e.message) : `${e.details ?? e.message} (idempotency key ${key})` };
}

type PublishStreamCall = ServerDuplexStream<PublishStreamRequest, PublishStreamResponse>;

/**
 * One PublishStream. Single messages (id + message) are answered one response
 * each, as soon as they are stored. Batches are answered through an outbox: the
 * results that finish in one turn of the event loop go out in one response, so a
 * producer round trip that stored hundreds of messages costs one gRPC message.
 * Within a batch, messages to one topic without a delay go out in one producer
 * call. A failed message does not end the stream: its result carries the error.
 * Reading pauses while STREAM_HIGH_WATER messages are unanswered.
 */
export class PublishStreamSession {
  private readonly abort = new AbortController();
  private pending = 0;
  private ended = false;
  private paused = false;
  private outbox: PublishStreamResult[] = [];
  private flushScheduled = false;

  constructor(
    private readonly router: PublishRouter,
    private readonly probe: SidecarProbe,
    private readonly call: PublishStreamCall,
  ) {
    call.on('data', (req: PublishStreamRequest) => this.onRequest(req));
    call.on('end', () => {
      this.ended = true;
      this.maybeEnd();
    });
    call.on('cancelled', () => this.abort.abort());
  }

  private onRequest(req: PublishStreamRequest): void {
    if (req.batch !== undefined) return this.onBatch(req);
    this.begin(1);
    const { id, message: msg } = req;
    let key: string;
    try {
      if (msg === undefined) throw invalid('message is required: each PublishStreamRequest carries one PublishRequest, or a batch');
      key = this.router.validate(msg, 'message.');
    } catch (err) {
      // Answered on a later turn, like every other message: a stream of bad messages cannot starve the loop.
      queueMicrotask(() => this.answer({ id, error: publishError(err) }));
      return;
    }
    const kind = destinationKind(msg);
    this.router.publish(msg, key, this.abort.signal).then(
      (ok) => {
        this.probe.publishedOne(kind);
        this.answer({ id, ok });
      },
      (err: unknown) => {
        this.probe.publishFailedOne(kind);
        this.answer({ id, error: publishError(err, key) });
      },
    );
  }

  private onBatch(req: PublishStreamRequest): void {
    const entries = req.batch!.entries;
    this.begin(entries.length);
    // Runs of the batch per topic, each one producer call; everything else one by one.
    const runs = new Map<string, { ids: number[]; reqs: PublishRequest[]; keys: string[] }>();
    for (let i = 0; i < entries.length; i++) {
      const { id, message: msg } = entries[i]!;
      let key: string;
      try {
        if (msg === undefined) throw invalid(`batch.entries[${i}].message is required`);
        key = this.router.validate(msg, `batch.entries[${i}].message.`);
      } catch (err) {
        this.result({ id, error: publishError(err) });
        continue;
      }
      const topic = this.router.batchableTopic(msg);
      if (topic !== undefined) {
        let run = runs.get(topic);
        if (run === undefined) runs.set(topic, (run = { ids: [], reqs: [], keys: [] }));
        run.ids.push(id);
        run.reqs.push(msg);
        run.keys.push(key);
        continue;
      }
      const kind = destinationKind(msg);
      this.router.publish(msg, key, this.abort.signal).then(
        (ok) => {
          this.probe.publishedOne(kind);
          this.result({ id, ok });
        },
        (err: unknown) => {
          this.probe.publishFailedOne(kind);
          this.result({ id, error: publishError(err, key) });
        },
      );
    }
    for (const [topic, run] of runs) {
      this.router.publishTopicRun(topic, run.reqs, run.keys).then(
        (oks) => {
          this.probe.publishedMany('topic', oks.length);
          for (let i = 0; i < oks.length; i++) this.result({ id: run.ids[i]!, ok: oks[i]! as PublishResponse });
        },
        (err: unknown) => {
          this.probe.publishFailedMany('topic', run.ids.length);
          for (let i = 0; i < run.ids.length; i++) this.result({ id: run.ids[i]!, error: publishError(err, run.keys[i]) });
        },
      );
    }
  }

  private begin(n: number): void {
    this.pending += n;
    if (this.pending >= STREAM_HIGH_WATER && !this.paused) {
      this.paused = true;
      this.call.pause();
    }
  }

  private answer(res: Omit<PublishStreamResponse, 'results'>): void {
    if (!this.call.cancelled) this.call.write({ ...res, results: [] });
    this.answered(1);
  }

  /** Queues a batch entry's result; the outbox goes out at the end of this turn (or when full). */
  private result(r: PublishStreamResult): void {
    this.outbox.push(r);
    if (this.outbox.length >= MAX_RESULTS_PER_RESPONSE) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const results = this.outbox;
    if (results.length === 0) return;
    this.outbox = [];
    if (!this.call.cancelled) this.call.write({ id: 0, results });
    this.answered(results.length);
  }

  private answered(n: number): void {
    this.pending -= n;
    if (this.paused && this.pending < STREAM_HIGH_WATER / 2) {
      this.paused = false;
      this.call.resume();
    }
    this.maybeEnd();
  }

  private maybeEnd(): void {
    if (this.ended && this.pending === 0 && this.outbox.length === 0 && !this.call.cancelled) this.call.end();
  }
}

function invalid(message: string): KmqError {
  return new KmqError(ErrorCode.InvalidRequest, message, {}, { retriable: false });
}
