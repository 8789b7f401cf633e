import { ErrorCode, KmqError } from '../../lib/errors.js';

/**
 * Idempotent-producer bookkeeping for one partition: for each producer id, its
 * epoch and the last few batches it wrote (sequence range → offsets). A retried
 * batch whose sequence range matches one of them is answered with the original
 * offsets and not written again; a gap in sequences is refused.
 *
 * Rebuilt on start from the batch headers in the log (see Partition.open), so it
 * survives restarts as the log does. Called from the event loop only.
 */
const KEEP_BATCHES = 8;

interface BatchEntry {
  firstSeq: number;
  lastSeq: number;
  baseOffset: number;
  lastOffset: number;
}

interface ProducerEntry {
  epoch: number;
  batches: BatchEntry[]; // oldest first, at most KEEP_BATCHES
}

export type SequenceCheck = { kind: 'new' } | { kind: 'duplicate'; baseOffset: number; lastOffset: number };

export class ProducerStateTable {
  private readonly producers = new Map<number, ProducerEntry>();

  get size(): number {
    return this.producers.size;
  }

  /** Decides whether a batch is new or a retry; throws on a fenced epoch or a sequence gap. */
  check(producerId: number, epoch: number, firstSeq: number, recordCount: number, context: { topic: string; partition: number }): SequenceCheck {
    const entry = this.producers.get(producerId);
    if (entry === undefined) return { kind: 'new' };
    if (epoch < entry.epoch) {
      throw new KmqError(ErrorCode.InvalidProducerEpoch, `Producer ${producerId} epoch ${epoch} is older than ${entry.epoch}`, context);
    }
    if (epoch > entry.epoch) return { kind: 'new' };
    const lastSeq = firstSeq + recordCount - 1;
    for (const b of entry.batches) {
      if (b.firstSeq === firstSeq && b.lastSeq === lastSeq) return { kind: 'duplicate', baseOffset: b.baseOffset, lastOffset: b.lastOffset };
    }
    const last = entry.batches[entry.batches.length - 1];
    if (last !== undefined && firstSeq !== last.lastSeq + 1) {
      if (firstSeq <= last.lastSeq && firstSeq >= (entry.batches[0]?.firstSeq ?? 0)) {
        throw new KmqError(ErrorCode.OutOfOrderSequence, `Producer ${producerId} sent sequence ${firstSeq} that overlaps written batches (last ${last.lastSeq})`, context);
      }
      throw new KmqError(ErrorCode.OutOfOrderSequence, `Producer ${producerId} sent sequence ${firstSeq}, expected ${last.lastSeq + 1}`, context);
    }
    return { kind: 'new' };
  }

  /** Records a batch written at [baseOffset, lastOffset]. */
  record(producerId: number, epoch: number, firstSeq: number, recordCount: number, baseOffset: number, lastOffset: number): void {
    let entry = this.producers.get(producerId);
    if (entry === undefined || epoch > entry.epoch) {
      entry = { epoch, batches: [] };
      this.producers.set(producerId, entry);
    }
    entry.batches.push({ firstSeq, lastSeq: firstSeq + recordCount - 1, baseOffset, lastOffset });
    if (entry.batches.length > KEEP_BATCHES) entry.batches.shift();
  }
}
