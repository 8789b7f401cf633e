import { ErrorCode, KmqError } from '../../lib/errors.js';

/** Settings of the group coordinator; every field is optional. */
export interface GroupCoordinatorOptions {
  /** Session timeout for a join that asks for 0. Default 45000 ms. */
  defaultSessionTimeoutMs?: number;
  /** Smallest session timeout a member may ask for. Default 1000 ms. */
  minSessionTimeoutMs?: number;
  /** Largest session timeout a member may ask for. Default 1800000 ms (30 min). */
  maxSessionTimeoutMs?: number;
  /** Smallest heartbeat interval handed out (the interval is a third of the session timeout). Default 100 ms. */
  minHeartbeatIntervalMs?: number;
  /** Longest group id, in UTF-8 bytes. Default 255. */
  maxGroupIdBytes?: number;
  /** Longest commit metadata, in UTF-8 bytes. Default 4096. */
  maxMetadataBytes?: number;
  /** Most members in one group. Default 1000. */
  maxMembersPerGroup?: number;
  /** Most topics one member may subscribe to. Default 1000. */
  maxTopicsPerMember?: number;
}

export type CompiledGroupCoordinatorOptions = Readonly<Required<GroupCoordinatorOptions>>;

const defaults: CompiledGroupCoordinatorOptions = {
  defaultSessionTimeoutMs: 45_000,
  minSessionTimeoutMs: 1_000,
  maxSessionTimeoutMs: 1_800_000,
  minHeartbeatIntervalMs: 100,
  maxGroupIdBytes: 255,
  maxMetadataBytes: 4096,
  maxMembersPerGroup: 1000,
  maxTopicsPerMember: 1000,
};

/** Fills in defaults and validates; throws InvalidConfig naming the bad setting. */
export function compileGroupCoordinatorOptions(options: GroupCoordinatorOptions = {}): CompiledGroupCoordinatorOptions {
  const o: Required<GroupCoordinatorOptions> = { ...defaults };
  for (const name of Object.keys(defaults) as Array<keyof GroupCoordinatorOptions>) {
    const v = options[name];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new KmqError(ErrorCode.InvalidConfig, `Group coordinator setting ${name} must be a positive integer, got ${String(v)}`, { setting: name });
    }
    o[name] = v;
  }
  if (o.minSessionTimeoutMs > o.maxSessionTimeoutMs) {
    throw new KmqError(ErrorCode.InvalidConfig, 'Group coordinator setting minSessionTimeoutMs exceeds maxSessionTimeoutMs', { setting: 'minSessionTimeoutMs' });
  }
  if (o.defaultSessionTimeoutMs < o.minSessionTimeoutMs || o.defaultSessionTimeoutMs > o.maxSessionTimeoutMs) {
    throw new KmqError(ErrorCode.InvalidConfig, 'Group coordinator setting defaultSessionTimeoutMs lies outside [minSessionTimeoutMs, maxSessionTimeoutMs]', {
      setting: 'defaultSessionTimeoutMs',
    });
  }
  return Object.freeze(o);
}
