/**
 * Members of shared groups, across every share-partition of one coordinator. A member
 * is just an id; each gets a small integer index that share-partitions store per
 * acquired record instead of the string. Indexes are reused only after the member is
 * removed, when no record refers to it any more. Event-loop only.
 */

/** What a share-partition offers so a member's records can be released when it goes. */
export interface MemberRecordsHolder {
  /** Makes every record the member holds here available again; returns how many. */
  releaseMember(memberIndex: number, now: number): number;
  readonly group: string;
}

/** One member as the engine tracks it. */
export interface ShareMember {
  readonly id: string;
  readonly index: number;
  /** Records acquired and not yet acked, released, rejected or expired, over all partitions. */
  held: number;
  lastSeenAt: number;
  /** Share-partitions the member has acquired from. */
  readonly partitions: Set<MemberRecordsHolder>;
}

export class ShareMembers {
  private readonly byId = new Map<string, ShareMember>();
  private readonly byIndex: Array<ShareMember | undefined> = [];
  private readonly freeIndexes: number[] = [];

  /** The member, created on first sight; marks it seen at `now`. */
  seen(id: string, now: number): ShareMember {
    let m = this.byId.get(id);
    if (m === undefined) {
      const index = this.freeIndexes.pop() ?? this.byIndex.length;
      m = { id, index, held: 0, lastSeenAt: now, partitions: new Set() };
      this.byId.set(id, m);
      this.byIndex[index] = m;
    } else if (now > m.lastSeenAt) {
      m.lastSeenAt = now;
    }
    return m;
  }

  get(id: string): ShareMember | undefined {
    return this.byId.get(id);
  }

  at(index: number): ShareMember | undefined {
    return this.byIndex[index];
  }

  /** Forgets the member; the caller has released its records first. */
  remove(m: ShareMember): void {
    if (this.byId.get(m.id) !== m) return;
    this.byId.delete(m.id);
    this.byIndex[m.index] = undefined;
    this.freeIndexes.push(m.index);
  }

  get size(): number {
    return this.byId.size;
  }

  values(): IterableIterator<ShareMember> {
    return this.byId.values();
  }
}
