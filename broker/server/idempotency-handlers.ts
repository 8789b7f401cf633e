import { ApiKey, Apis } from '../../protocol/apis.js';
import { ClaimResult } from '../../protocol/gen/kmq/broker/v1/idempotency.js';
import type { ClaimOutcome, ProcessedKeys } from '../idempotency/processed-keys.js';
import type { HandlerResult } from './client-connection.js';

const claimResults: Record<ClaimOutcome, ClaimResult> = {
  claimed: ClaimResult.CLAIM_CLAIMED,
  processed: ClaimResult.CLAIM_PROCESSED,
  busy: ClaimResult.CLAIM_BUSY,
};

/** Protocol handlers of the processed-key store: ClaimKey, CompleteKey, ReleaseKey. */
export class IdempotencyHandlers {
  /** `keys` throws NotLeader when another broker hosts the store. */
  constructor(private readonly keys: () => ProcessedKeys) {}

  /** Handles the api, or returns undefined when it is not one of these. */
  dispatch(apiKey: number, header: Buffer): Promise<HandlerResult> | HandlerResult | undefined {
    switch (apiKey) {
      case ApiKey.ClaimKey: {
        const r = Apis.ClaimKey.request.decode(header);
        const result = claimResults[this.keys().claim(r.scope, r.key, r.owner, r.claimTtlMs)];
        return { header: Apis.ClaimKey.response.encode({ result }).finish() };
      }
      case ApiKey.CompleteKey: {
        const r = Apis.CompleteKey.request.decode(header);
        return this.keys().complete(r.scope, r.key, r.owner, r.ttlMs).then(() => ({ header: Apis.CompleteKey.response.encode({}).finish() }));
      }
      case ApiKey.ReleaseKey: {
        const r = Apis.ReleaseKey.request.decode(header);
        this.keys().release(r.scope, r.key, r.owner);
        return { header: Apis.ReleaseKey.response.encode({}).finish() };
      }
      default:
        return undefined;
    }
  }
}
