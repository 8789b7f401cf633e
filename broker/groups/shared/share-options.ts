import { ErrorCode, KmqError } from '../../../lib/errors.js';

/** Settings of shared groups; every field is optional. */
export interface SharedGroupOptions {
  /** Most records tracked beyond a share-partition's start offset (the in-flight window). Default 10000. */
  maxInFlightRecords?: number;
  /** Deliveries after which a record is dead-lettered instead of acquired again; 0 = unlimited. Default 0. */
  maxDeliveries?: number;
  /** A member not seen for this long is gone and its records are released. Default 45000 ms. */
  sessionTimeoutMs?: number;
}

export type CompiledSharedGroupOptions = Readonly<Required<SharedGroupOptions>>;

const defaults: CompiledSharedGroupOptions = {
  maxInFlightRecords: 10_000,
  maxDeliveries: 0,
  sessionTimeoutMs: 45_000,
};

/** Fills in defaults and validates; throws InvalidConfig naming the bad setting. */
export function compileSharedGroupOptions(options: SharedGroupOptions = {}): CompiledSharedGroupOptions {
  const o: Required<SharedGroupOptions> = { ...defaults };
  for (const name of Object.keys(defaults) as Array<keyof SharedGroupOptions>) {
    const v = options[name];
    if (v === undefined) continue;
    const min = name === 'maxDeliveries' ? 0 : 1;
    if (!Number.isSafeInteger(v) || v < min) {
      throw new KmqError(ErrorCode.InvalidConfig, `Shared group setting ${name} must be an integer >= ${min}, got ${String(v)}`, { setting: name });
    }
    o[name] = v;
  }
  if (o.maxDeliveries > 0xffffffff) {
    throw new KmqError(ErrorCode.InvalidConfig, 'Shared group setting maxDeliveries must fit in a u32', { setting: 'maxDeliveries' });
  }
  return Object.freeze(o);
}
