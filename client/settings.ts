import { ErrorCode, KmqError } from '../lib/errors.js';

/**
 * Checks of single option values. Each failure is a KmqError(InvalidConfig) whose
 * message names the setting, so a bad option stops start-up with a clear reason.
 */
export function invalidSetting(setting: string, problem: string, value: unknown): KmqError {
  return new KmqError(ErrorCode.InvalidConfig, `Invalid option ${setting}: ${problem} (got ${JSON.stringify(value)})`, { setting }, { retriable: false });
}

/** An integer in [min, max], or the default when undefined. */
export function intSetting(setting: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidSetting(setting, `must be an integer in [${min}, ${max}]`, value);
  }
  return value;
}

/** A finite number in [min, max], or the default when undefined. */
export function numberSetting(setting: string, value: unknown, fallback: number, min: number, max = Number.MAX_VALUE): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalidSetting(setting, `must be a number in [${min}, ${max}]`, value);
  }
  return value;
}

export function boolSetting(setting: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidSetting(setting, 'must be true or false', value);
  return value;
}

export function stringSetting(setting: string, value: unknown, fallback: string, allowEmpty = false): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || (!allowEmpty && value === '')) throw invalidSetting(setting, 'must be a non-empty string', value);
  return value;
}

export function oneOfSetting<T extends string>(setting: string, value: unknown, fallback: T, allowed: readonly T[]): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) throw invalidSetting(setting, `must be one of ${allowed.join(', ')}`, value);
  return value as T;
}
