import { invalidSetting, boolSetting, intSetting, oneOfSetting } from './settings.js';

/** Which acknowledgement a produce request waits for. */
export type AcksMode = 'none' | 'leader' | 'all';

/** Options of a Producer. */
export interface ProducerOptions {
  /** 'none' (no response: fastest, may lose records), 'leader' (default), 'all' (every in-sync replica). */
  acks?: AcksMode;
  /**
   * Broker-side deduplication of retried batches (producer id + sequence numbers).
   * Default true, except with acks 'none' where no retry can happen.
   */
  idempotent?: boolean;
  /** How long a partition's batch waits for more records, ms. Default 5. 0: sent at the end of the current event-loop turn (records sent in one turn share a batch). */
  lingerMs?: number;
  /** A batch is sent once it reaches this size, bytes. Default 256 KiB. */
  batchSizeBytes?: number;
  /** Largest produce request, bytes; bigger records fail with MessageTooLarge. Default 1 MiB. */
  maxRequestBytes?: number;
  /** Produce requests in flight per partition. Default 5. */
  maxInFlightPerPartition?: number;
  /** Sealed batches awaiting acknowledgement, bytes; send() waits above it. Default 32 MiB. */
  maxBufferedBytes?: number;
  /** Retries of a batch after a retriable error. Default: the client's retry.retries. */
  retries?: number;
}

export interface CompiledProducerOptions {
  acks: AcksMode;
  idempotent: boolean;
  lingerMs: number;
  batchSizeBytes: number;
  maxRequestBytes: number;
  maxInFlightPerPartition: number;
  maxBufferedBytes: number;
  retries: number;
}

/** Validates once and fills every default; throws KmqError(InvalidConfig) naming the bad setting. */
export function compileProducerOptions(o: ProducerOptions = {}, defaultRetries = 5): CompiledProducerOptions {
  const acks = oneOfSetting<AcksMode>('producer.acks', o.acks, 'leader', ['none', 'leader', 'all']);
  const idempotent = boolSetting('producer.idempotent', o.idempotent, acks !== 'none');
  if (idempotent && acks === 'none') throw invalidSetting('producer.idempotent', "needs acks 'leader' or 'all'", true);
  const maxRequestBytes = intSetting('producer.maxRequestBytes', o.maxRequestBytes, 1024 * 1024, 1024, 64 * 1024 * 1024);
  const batchSizeBytes = intSetting('producer.batchSizeBytes', o.batchSizeBytes, 256 * 1024, 1, 64 * 1024 * 1024);
  if (batchSizeBytes > maxRequestBytes) throw invalidSetting('producer.batchSizeBytes', `must be <= producer.maxRequestBytes (${maxRequestBytes})`, batchSizeBytes);
  const maxBufferedBytes = intSetting('producer.maxBufferedBytes', o.maxBufferedBytes, 32 * 1024 * 1024, 1024);
  return {
    acks,
    idempotent,
    lingerMs: intSetting('producer.lingerMs', o.lingerMs, 5, 0, 60_000),
    batchSizeBytes,
    maxRequestBytes,
    maxInFlightPerPartition: intSetting('producer.maxInFlightPerPartition', o.maxInFlightPerPartition, 5, 1, 100),
    maxBufferedBytes,
    retries: intSetting('producer.retries', o.retries, defaultRetries, 0, 1_000_000),
  };
}
