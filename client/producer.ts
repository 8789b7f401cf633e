import { ErrorCode, KmqError, toKmqError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { Apis } from '../protocol/apis.js';
import { throwIfWireError } from '../protocol/error-codes.js';
import type { RecordHeader } from '../protocol/record-batch.js';
import type { Cluster } from './cluster.js';
import type { CompiledRetrySettings } from './options.js';
import { PartitionQueue } from './partition-queue.js';
import type { ProducerContext } from './partition-queue.js';
import { Partitioner } from './partitioner.js';
import { SendCall } from './produce-batch.js';
import type { RecordMetadata } from './produce-batch.js';
import type { CompiledProducerOptions } from './producer-options.js';

export type { RecordMetadata } from './produce-batch.js';

/** A record to send. Strings are encoded as UTF-8. */
export interface ProducerRecord {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: RecordHeader[] | null;
  /** ms since the epoch; default now. */
  timestamp?: number;
  /** Explicit partition; default: by key hash, or sticky when there is no key. */
  partition?: number;
}

// Varint lengths, attributes and deltas of one record, at most.
const RECORD_OVERHEAD = 32;

function toBuffer(v: Buffer | string | null | undefined): Buffer | null {
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

function byteLength(v: Buffer | string | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : v.length;
}

/**
 * Batches records per partition and sends them to partition leaders. Records of
 * a partition are appended in send() order and keep that order on the broker
 * (sequence numbers guard it across retries). send() resolves once every record
 * of the call is acknowledged, with one RecordMetadata per record, in order.
 */
export class Producer {
  private readonly queues = new Map<string, PartitionQueue[]>();
  private readonly partitioner = new Partitioner();
  private readonly ctx: ProducerContext;
  private identity: Promise<void> | undefined;
  private bufferedBytes = 0;
  private spaceWaiters: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly options: CompiledProducerOptions,
    backoff: CompiledRetrySettings,
    log: Logger,
  ) {
    this.ctx = {
      cluster,
      options,
      backoff,
      log,
      producerId: -1,
      producerEpoch: -1,
      buffered: (n) => {
        this.bufferedBytes += n;
      },
      released: (n) => this.release(n),
      sealed: (topic, partition) => {
        const qs = this.queues.get(topic);
        if (qs !== undefined) this.partitioner.batchSealed(topic, partition, qs.length);
      },
    };
  }

  /** Sends records to `topic`; resolves with their offsets, in the order given. */
  async send(topic: string, records: readonly ProducerRecord[]): Promise<RecordMetadata[]> {
    if (this.closed) throw new KmqError(ErrorCode.ShuttingDown, 'Producer is closed', { topic }, { retriable: false });
    if (records.length === 0) return [];
    if (this.options.idempotent) await this.initProducerId();
    const route = this.cluster.cachedRoute(topic) ?? (await this.cluster.route(topic));
    const partitions = route.leaders.length;

    // Validate the whole call before appending any of it: it fails or goes out whole.
    const sizes = new Int32Array(records.length);
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      let size = RECORD_OVERHEAD + byteLength(r.key) + byteLength(r.value);
      if (r.headers != null) for (const h of r.headers) size += RECORD_OVERHEAD + Buffer.byteLength(h.key) + (h.value === null ? 0 : h.value.length);
      if (size + 61 > this.options.maxRequestBytes) {
        throw new KmqError(ErrorCode.MessageTooLarge, `Record ${i} for ${topic} is about ${size} bytes, over producer.maxRequestBytes (${this.options.maxRequestBytes})`, { topic });
      }
      sizes[i] = size;
      const p = r.partition;
      if (p !== undefined && (!Number.isInteger(p) || p < 0 || p >= partitions)) {
        throw new KmqError(ErrorCode.UnknownPartition, `Topic ${topic} has no partition ${p} (it has ${partitions})`, { topic, partition: p });
      }
    }

    while (this.bufferedBytes >= this.options.maxBufferedBytes) await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));

    const queues = this.queuesFor(topic, partitions);
    return new Promise<RecordMetadata[]>((resolve, reject) => {
      const call = new SendCall(records.length, resolve, reject);
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!;
        const key = toBuffer(r.key);
        // Chosen at append time: an unkeyed record that sealed the sticky batch moves the next one on.
        const partition = r.partition ?? this.partitioner.partition(topic, key, partitions);
        queues[partition]!.append(call, i, key, toBuffer(r.value), r.headers ?? null, r.timestamp, sizes[i]!);
      }
    });
  }

  /** Sends one record; resolves with its offset. */
  async sendOne(topic: string, record: ProducerRecord): Promise<RecordMetadata> {
    const [md] = await this.send(topic, [record]);
    return md!;
  }

  /** Sends every open batch now and waits until everything sent so far is acknowledged or failed. */
  async flush(): Promise<void> {
    const waits: Array<Promise<void>> = [];
    for (const qs of this.queues.values()) {
      for (const q of qs) {
        q.seal();
        waits.push(q.whenIdle());
      }
    }
    await Promise.all(waits);
  }

  /** Flushes, then refuses further sends. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
  }

  private initProducerId(): Promise<void> {
    this.identity ??= this.cluster
      .callAny(Apis.InitProducerId, {})
      .then((res) => {
        throwIfWireError(res.header.errorCode, 'InitProducerId failed');
        this.ctx.producerId = res.header.producerId;
        this.ctx.producerEpoch = res.header.producerEpoch;
        this.ctx.log.debug({ producerId: res.header.producerId, producerEpoch: res.header.producerEpoch }, 'Producer id assigned');
      })
      .catch((err: unknown) => {
        this.identity = undefined;
        throw toKmqError(err);
      });
    return this.identity;
  }

  private queuesFor(topic: string, partitions: number): PartitionQueue[] {
    let qs = this.queues.get(topic);
    if (qs === undefined) {
      qs = [];
      this.queues.set(topic, qs);
    }
    for (let p = qs.length; p < partitions; p++) qs.push(new PartitionQueue(topic, p, this.ctx));
    return qs;
  }

  private release(n: number): void {
    this.bufferedBytes -= n;
    if (this.bufferedBytes < this.options.maxBufferedBytes && this.spaceWaiters.length > 0) {
      const waiters = this.spaceWaiters;
      this.spaceWaiters = [];
      for (const w of waiters) w();
    }
  }
}
