import { ErrorCode, KmqError } from '../lib/errors.js';
import { Apis } from '../protocol/apis.js';
import { ClaimResult } from '../protocol/gen/kmq/broker/v1/idempotency.js';
import type { Cluster } from './cluster.js';
import { invalidSetting } from './settings.js';

/** The answer of a claim: run the handler, skip it (already done), or come back later (another owner holds the key). */
export type KeyClaim = 'claimed' | 'processed' | 'busy';

const claims: Record<number, KeyClaim> = {
  [ClaimResult.CLAIM_CLAIMED]: 'claimed',
  [ClaimResult.CLAIM_PROCESSED]: 'processed',
  [ClaimResult.CLAIM_BUSY]: 'busy',
};

/**
 * The broker's processed-key store, seen from one scope (a subscription name): the
 * store every consumer of that subscription shares for effectively-once handling.
 * Same shape as the sidecar's ProcessedKeyStore; semantics per key:
 *
 *   claim     processed -> 'processed'; claimed by another owner -> 'busy';
 *             otherwise -> 'claimed' by owner until now + claimTtlMs (renewed if held)
 *   complete  processed until now + ttlMs, whoever holds the claim; durable on resolve
 *   release   absent if claimed by owner; otherwise no change
 *
 * Every call is safe to repeat, so retriable failures are retried.
 */
export class BrokerProcessedKeyStore {
  constructor(
    private readonly cluster: Cluster,
    readonly scope: string,
  ) {
    if (typeof scope !== 'string' || scope === '') throw invalidSetting('scope', 'must be a non-empty string (the subscription name)', scope);
  }

  async claim(key: string, owner: string, claimTtlMs: number): Promise<KeyClaim> {
    const res = await this.cluster.call(() => this.cluster.keysConnection(), Apis.ClaimKey, { scope: this.scope, key, owner, claimTtlMs });
    const claim = claims[res.header.result];
    if (claim === undefined) throw new KmqError(ErrorCode.Unknown, `Unknown claim result ${res.header.result}`, {}, { retriable: false });
    return claim;
  }

  async complete(key: string, owner: string, ttlMs: number): Promise<void> {
    await this.cluster.call(() => this.cluster.keysConnection(), Apis.CompleteKey, { scope: this.scope, key, owner, ttlMs });
  }

  async release(key: string, owner: string): Promise<void> {
    await this.cluster.call(() => this.cluster.keysConnection(), Apis.ReleaseKey, { scope: this.scope, key, owner });
  }
}
