import type { KmqError } from '../lib/errors.js';
import { Off, computeBatchCrc } from '../protocol/batch-header.js';

/** Where a record of a send() call ends up: its slot in that call's result array. */
export interface RecordMetadata {
  topic: string;
  partition: number;
  /** The record's offset; -1 with acks 'none'. */
  offset: number;
}

/** One send() call: its results fill in as the batches holding its records complete. */
export class SendCall {
  readonly results: RecordMetadata[];
  private remaining: number;
  private settled = false;
  private readonly resolveFn: (r: RecordMetadata[]) => void;
  private readonly rejectFn: (e: KmqError) => void;

  constructor(count: number, resolve: (r: RecordMetadata[]) => void, reject: (e: KmqError) => void) {
    this.results = new Array<RecordMetadata>(count);
    this.remaining = count;
    this.resolveFn = resolve;
    this.rejectFn = reject;
  }

  complete(topic: string, partition: number, resultStart: number, count: number, firstOffset: number): void {
    if (this.settled) return;
    const results = this.results;
    for (let i = 0; i < count; i++) {
      results[resultStart + i] = { topic, partition, offset: firstOffset < 0 ? -1 : firstOffset + i };
    }
    this.remaining -= count;
    if (this.remaining === 0) {
      this.settled = true;
      this.resolveFn(results);
    }
  }

  fail(err: KmqError): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectFn(err);
  }
}

/** Consecutive records of one batch that belong to consecutive slots of one send() call. */
export interface Run {
  call: SendCall;
  resultStart: number;
  count: number;
}

/** A sealed batch awaiting acknowledgement. Its bytes are sent as they are on every attempt. */
export interface SealedBatch {
  bytes: Buffer;
  baseSequence: number;
  count: number;
  runs: Run[];
  attempts: number;
}

const SEQUENCE_LIMIT = 0x80000000;

/** Sequence numbers are int32 and wrap to 0, as in Kafka. */
export function addSequence(seq: number, n: number): number {
  return (seq + n) % SEQUENCE_LIMIT;
}

/** Rewrites a built batch's base sequence and its CRC, which covers it. */
export function restampSequence(batch: Buffer, baseSequence: number): void {
  batch.writeInt32BE(baseSequence, Off.baseSequence);
  batch.writeUInt32BE(computeBatchCrc(batch), Off.crc);
}
