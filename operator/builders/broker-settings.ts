import { parseDurationMs } from '../../lib/duration.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { BrokerConfig } from '../api/v1alpha1/index.js';

const binarySuffixes: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50 };
const decimalSuffixes: Record<string, number> = { k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };

/** Bytes of an integer or a quantity without fraction ("64Mi", "1G"), as the CRD's byte sizes allow. */
export function quantityBytes(value: number | string, setting: string): number {
  if (typeof value === 'number') return value;
  const m = /^([0-9]{1,15})(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$/.exec(value);
  if (m === null) throw new KmqError(ErrorCode.InvalidConfig, `${setting}: "${value}" is not a byte quantity (e.g. 512Ki, 64Mi, 20Gi)`, { setting }, { retriable: false });
  const unit = m[2] === undefined ? 1 : (binarySuffixes[m[2]] ?? decimalSuffixes[m[2]]!);
  return Number(m[1]) * unit;
}

/**
 * The `kmq broker` flags (cli/commands/broker.ts) of a BrokerCluster's `spec.config`, in a
 * fixed order. A setting the spec leaves out gets no flag: the broker's default applies.
 */
export function brokerSettingFlags(config: BrokerConfig = {}): string[] {
  const flags: string[] = [];
  const add = (flag: string, value: number | string): void => {
    flags.push(`--${flag}=${value}`);
  };
  if (config.flush !== undefined) add('flush', config.flush);
  if (config.flushInterval !== undefined) add('flush-interval-ms', parseDurationMs(config.flushInterval, 'config.flushInterval'));
  const retention = config.retention;
  if (retention?.time !== undefined) add('retention-ms', retention.time === 'unlimited' ? -1 : parseDurationMs(retention.time, 'config.retention.time'));
  if (retention?.bytes !== undefined) add('retention-bytes', retention.bytes === 'unlimited' ? -1 : quantityBytes(retention.bytes, 'config.retention.bytes'));
  if (config.maxMessageBytes !== undefined) add('max-message-bytes', quantityBytes(config.maxMessageBytes, 'config.maxMessageBytes'));
  if (config.dedupeWindow !== undefined) add('dedupe-window-ms', parseDurationMs(config.dedupeWindow, 'config.dedupeWindow'));
  if (config.defaultReplicationFactor !== undefined) add('default-replication-factor', config.defaultReplicationFactor);
  if (config.minInSyncReplicas !== undefined) add('min-insync-replicas', config.minInSyncReplicas);
  return flags;
}
