import { ErrorCode, KmqError } from './errors.js';

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "500", "500ms", "30s", "5m", "2h", "7d" into milliseconds; -1 stays -1 (unlimited). */
export function parseDurationMs(input: string | number, setting: string): number {
  if (typeof input === 'number') return input;
  const m = /^(-?\d+)(ms|s|m|h|d)?$/.exec(input.trim());
  if (m === null) throw new KmqError(ErrorCode.InvalidConfig, `${setting}: "${input}" is not a duration (e.g. 500ms, 30s, 5m, 2h, 7d)`);
  return Number(m[1]) * units[m[2] ?? 'ms']!;
}

const sizeUnits: Record<string, number> = { b: 1, kb: 1000, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** Parses "1048576", "512KiB", "1MiB", "20GB" into bytes; -1 stays -1 (unlimited). */
export function parseBytes(input: string | number, setting: string): number {
  if (typeof input === 'number') return input;
  const m = /^(-?\d+)\s*([a-zA-Z]+)?$/.exec(input.trim());
  const unit = m?.[2]?.toLowerCase() ?? 'b';
  if (m === null || sizeUnits[unit] === undefined) {
    throw new KmqError(ErrorCode.InvalidConfig, `${setting}: "${input}" is not a size (e.g. 1048576, 512KiB, 1MiB, 20GB)`);
  }
  return Number(m[1]) * sizeUnits[unit]!;
}
