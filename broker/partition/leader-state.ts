/** What the leader knows of one follower. */
interface FollowerProgress {
  /** The follower has every record below this offset; -1 until it fetched under this leadership. */
  logEndOffset: number;
  /** When the follower was last known to have caught up with the leader's log end. */
  lastCaughtUpMs: number;
  /** The leader's log end when it answered the follower's previous fetch, and when that was. */
  leaderEndAtLastFetch: number;
  lastFetchMs: number;
}

/**
 * The leader's side of replication for one partition and one leader epoch
 * (Kafka's design): followers' fetch offsets say how far each has copied; the
 * high watermark is the lowest log end among the in-sync replicas; a follower
 * leaves the in-sync set when it has not caught up for the lag time, and joins
 * it again once it has everything below the high watermark written in this
 * epoch. Decisions only: the partition applies the high watermark and the
 * replica manager writes in-sync set changes to the coordination store.
 *
 * A follower that qualifies to join counts for the high watermark at once
 * ("joining"), before the store holds it in the in-sync set: once the store
 * does, the controller may make it leader (a reassignment does so on purpose),
 * so it must have every record acknowledged from the moment it was proposed.
 */
export class LeaderState {
  private readonly followers = new Map<number, FollowerProgress>();
  /** The in-sync set as stored; changes only when the store accepted a write. */
  private inSync: ReadonlySet<number>;
  /** Followers proposed for the in-sync set whose store write has not been answered. */
  private readonly joining = new Set<number>();
  private replicaIds: readonly number[];

  constructor(
    readonly brokerId: number,
    readonly epoch: number,
    replicas: readonly number[],
    isr: readonly number[],
    /** The first offset this epoch writes: a follower below it is missing this leader's history. */
    readonly epochStartOffset: number,
    now: number,
  ) {
    this.inSync = new Set(isr);
    this.replicaIds = [...replicas];
    // Followers start as caught up: the lag clock runs from the election, not from the epoch's start.
    for (const r of replicas) {
      if (r !== brokerId) this.followers.set(r, { logEndOffset: -1, lastCaughtUpMs: now, leaderEndAtLastFetch: -1, lastFetchMs: now });
    }
  }

  get replicas(): readonly number[] {
    return this.replicaIds;
  }

  get isr(): ReadonlySet<number> {
    return this.inSync;
  }

  isReplica(id: number): boolean {
    return this.followers.has(id);
  }

  /** The partition's replica set changed (reassignment): new followers start unknown, removed ones are forgotten. */
  setReplicas(replicas: readonly number[], now: number): void {
    for (const id of [...this.followers.keys()]) {
      if (!replicas.includes(id)) {
        this.followers.delete(id);
        this.joining.delete(id);
      }
    }
    for (const r of replicas) {
      if (r !== this.brokerId && !this.followers.has(r)) this.followers.set(r, { logEndOffset: -1, lastCaughtUpMs: now, leaderEndAtLastFetch: -1, lastFetchMs: now });
    }
    this.replicaIds = [...replicas];
  }

  /** The store accepted (or reported) a new in-sync set. */
  setIsr(isr: readonly number[]): void {
    this.inSync = new Set(isr);
    for (const id of isr) this.joining.delete(id);
  }

  /** The store refused (or failed) a follower's joining: it stops counting for the high watermark. */
  abandonJoin(replica: number): void {
    this.joining.delete(replica);
  }

  /**
   * Records a follower's fetch from `fetchOffset` while the leader's log ends at
   * `leaderEnd`. Returns true when the follower is outside the in-sync set and has
   * now caught up enough to join it.
   */
  onFetch(replica: number, fetchOffset: number, leaderEnd: number, highWatermark: number, now: number): boolean {
    const f = this.followers.get(replica);
    if (f === undefined) return false;
    f.logEndOffset = fetchOffset;
    if (fetchOffset >= leaderEnd) f.lastCaughtUpMs = now;
    else if (f.leaderEndAtLastFetch >= 0 && fetchOffset >= f.leaderEndAtLastFetch) f.lastCaughtUpMs = Math.max(f.lastCaughtUpMs, f.lastFetchMs);
    f.leaderEndAtLastFetch = leaderEnd;
    f.lastFetchMs = now;
    const join = !this.inSync.has(replica) && fetchOffset >= highWatermark && fetchOffset >= this.epochStartOffset;
    if (join) this.joining.add(replica);
    return join;
  }

  /** The lowest log end among in-sync (and joining) replicas; undefined while an in-sync follower has not fetched yet. */
  highWatermark(leaderEnd: number): number | undefined {
    let hw = leaderEnd;
    for (const id of [...this.inSync, ...this.joining]) {
      if (id === this.brokerId) continue;
      const f = this.followers.get(id);
      if (f === undefined || f.logEndOffset < 0) return undefined;
      if (f.logEndOffset < hw) hw = f.logEndOffset;
    }
    return hw;
  }

  /**
   * In-sync followers that have not caught up within `lagMs`. A joining follower
   * that lags that long stops joining (it was never written to the store).
   */
  lagging(now: number, lagMs: number): number[] {
    for (const id of this.joining) {
      const f = this.followers.get(id);
      if (f === undefined || now - f.lastCaughtUpMs > lagMs) this.joining.delete(id);
    }
    const out: number[] = [];
    for (const id of this.inSync) {
      if (id === this.brokerId) continue;
      const f = this.followers.get(id);
      if (f === undefined || now - f.lastCaughtUpMs > lagMs) out.push(id);
    }
    return out;
  }

  /** Each follower's copied log end, for describe and metrics (-1: not fetched yet). */
  progress(): Map<number, number> {
    return new Map([...this.followers].map(([id, f]) => [id, f.logEndOffset]));
  }
}
