import type { V1Lease } from '@kubernetes/client-node';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { CoordinationLease } from './coordination-store.js';

/** What a lease needs from its store. */
export interface LeaseOps {
  renew(object: V1Lease, at: number, timeoutMs: number): Promise<V1Lease | 'gone'>;
  revoke(id: string): Promise<void>;
  ended(id: string): void;
  callTimeoutMs: number;
  log: Logger;
}

/** A Lease object kept alive by replacing its renewTime; lost once renewals have not succeeded for a TTL. */
export class KubernetesLease implements CoordinationLease {
  readonly id: string;
  readonly lost: Promise<KmqError>;
  ended = false;
  private resolveLost!: (err: KmqError) => void;
  private expiry: NodeJS.Timeout | undefined;
  private renewal: NodeJS.Timeout | undefined;
  private lastRenewalSentAt: number;

  constructor(
    private readonly ops: LeaseOps,
    private object: V1Lease,
    readonly ttlMs: number,
    keepAlive: boolean,
    grantSentAt: number,
  ) {
    this.id = object.metadata!.name!;
    this.lost = new Promise((resolve) => (this.resolveLost = resolve));
    this.lastRenewalSentAt = grantSentAt;
    this.armExpiry();
    if (keepAlive) this.scheduleRenewal(ttlMs / 3);
  }

  async revoke(): Promise<void> {
    if (this.ended) return;
    this.end();
    await this.ops.revoke(this.id);
  }

  /** Stops renewing without revoking (the store is closing): the Lease expires by itself. */
  release(): void {
    if (!this.ended) this.end();
  }

  private scheduleRenewal(delayMs: number): void {
    this.renewal = setTimeout(() => void this.renew(), delayMs);
    this.renewal.unref();
  }

  private async renew(): Promise<void> {
    if (this.ended) return;
    const sentAt = Date.now();
    const remaining = this.lastRenewalSentAt + this.ttlMs - sentAt;
    if (remaining <= 0) return;
    let retryIn = Math.min(this.ttlMs / 3, 1000);
    try {
      const renewed = await this.ops.renew(this.object, sentAt, Math.min(this.ops.callTimeoutMs, remaining));
      if (this.ended) return;
      if (renewed === 'gone') return this.loseWith(new KmqError(ErrorCode.BrokerNotAvailable, `Lease ${this.id} is lost: its Lease object was deleted`, { lease: this.id }));
      this.object = renewed;
      this.lastRenewalSentAt = sentAt;
      this.armExpiry();
      retryIn = this.ttlMs / 3;
    } catch (err) {
      this.ops.log.warn({ err, lease: this.id }, 'Lease renewal failed');
    }
    if (!this.ended) this.scheduleRenewal(retryIn);
  }

  private armExpiry(): void {
    clearTimeout(this.expiry);
    const at = this.lastRenewalSentAt + this.ttlMs;
    this.expiry = setTimeout(
      () => this.loseWith(new KmqError(ErrorCode.BrokerNotAvailable, `Lease ${this.id} is lost: not renewed for its TTL of ${this.ttlMs} ms`, { lease: this.id })),
      Math.max(0, at - Date.now()),
    );
    this.expiry.unref();
  }

  private loseWith(err: KmqError): void {
    if (this.ended) return;
    this.end();
    this.resolveLost(err);
  }

  private end(): void {
    this.ended = true;
    clearTimeout(this.expiry);
    clearTimeout(this.renewal);
    this.ops.ended(this.id);
  }
}
