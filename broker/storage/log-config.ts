import { ErrorCode, KmqError } from '../../lib/errors.js';

/** Flush policy: when appended bytes are forced to disk. */
export interface FlushConfig {
  /**
   * 'every-batch': an append resolves after fdatasync (concurrent appends share one);
   * 'interval': a timer fdatasyncs every `intervalMs`; 'none': the OS decides (rely on replication).
   */
  mode: 'every-batch' | 'interval' | 'none';
  /** Period of the 'interval' mode. Default 1000. */
  intervalMs: number;
}

/** Settings of one partition log. */
export interface LogConfig {
  /** Roll to a new segment before an append would make the active one larger than this. Default 128 MiB. */
  segmentBytes: number;
  /** Roll when the active segment's first append is older than this. Default 7 days. */
  segmentMs: number;
  /**
   * 'delete': drop whole segments whose newest record is older than this.
   * 'compact': how long tombstones survive compaction. -1 = forever. Default 7 days.
   */
  retentionMs: number;
  /** Drop the oldest segments while the log is larger than this ('delete' only). -1 = unlimited. Default -1. */
  retentionBytes: number;
  /** Bytes of log between two entries of the sparse offset index. Default 4096. */
  indexIntervalBytes: number;
  flush: FlushConfig;
  /** 'delete' applies retention; 'compact' keeps the latest record per key (see compact()). */
  cleanupPolicy: 'delete' | 'compact';
}

const DAY_MS = 24 * 60 * 60 * 1000;

export const defaultLogConfig: LogConfig = Object.freeze({
  segmentBytes: 128 * 1024 * 1024,
  segmentMs: 7 * DAY_MS,
  retentionMs: 7 * DAY_MS,
  retentionBytes: -1,
  indexIntervalBytes: 4096,
  flush: Object.freeze({ mode: 'interval', intervalMs: 1000 }) as FlushConfig,
  cleanupPolicy: 'delete',
}) as LogConfig;

/** Smallest segment size accepted: a segment must hold at least a few batch headers. */
export const MIN_SEGMENT_BYTES = 1024;

/** Checks every setting and returns a frozen copy; throws InvalidConfig naming the bad setting. */
export function compileLogConfig(config: LogConfig): Readonly<LogConfig> {
  const bad = (setting: string, why: string): never => {
    throw new KmqError(ErrorCode.InvalidConfig, `Invalid log setting ${setting}: ${why}`, { setting });
  };
  const int = (setting: string, v: number, min: number): void => {
    if (!Number.isSafeInteger(v) || v < min) bad(setting, `expected an integer >= ${min}, got ${v}`);
  };
  int('segmentBytes', config.segmentBytes, MIN_SEGMENT_BYTES);
  if (config.segmentBytes > 0x7fffffff) bad('segmentBytes', 'must fit a 32-bit file position');
  int('segmentMs', config.segmentMs, 1);
  if (config.retentionMs !== -1) int('retentionMs', config.retentionMs, 0);
  if (config.retentionBytes !== -1) int('retentionBytes', config.retentionBytes, 0);
  int('indexIntervalBytes', config.indexIntervalBytes, 0);
  if (!['every-batch', 'interval', 'none'].includes(config.flush.mode)) bad('flush.mode', `unknown mode ${String(config.flush.mode)}`);
  int('flush.intervalMs', config.flush.intervalMs, 1);
  if (config.cleanupPolicy !== 'delete' && config.cleanupPolicy !== 'compact') bad('cleanupPolicy', `unknown policy ${String(config.cleanupPolicy)}`);
  return Object.freeze({ ...config, flush: Object.freeze({ ...config.flush }) });
}
