/**
 * The broker-side target assignment of an ordered group: every partition of a
 * subscribed topic goes to exactly one member subscribed to that topic.
 *
 * - Balanced per topic: the members of a topic hold floor(P/N) or ceil(P/N) of its partitions.
 * - Sticky: a partition stays with its current owner whenever that keeps the balance;
 *   members already holding more keep the larger quotas, so the fewest partitions move.
 * - Spread across topics: equal quotas go first to the members that hold the least so
 *   far, so many one-partition topics do not all land on one member.
 * - Deterministic: the result depends only on the inputs (no iteration-order or random input).
 */

/** A member as the assignor sees it. */
export interface AssignorMember {
  readonly id: string;
  readonly topics: readonly string[];
}

export interface AssignorInput {
  readonly members: readonly AssignorMember[];
  /** Partition count per topic; a topic missing here has no partitions. */
  readonly partitionCounts: ReadonlyMap<string, number>;
  /** Current owner member id per topic, indexed by partition; undefined = nobody. */
  readonly currentOwners: ReadonlyMap<string, ReadonlyArray<string | undefined>>;
}

/** member id → topic → partitions (ascending). Every input member has an entry. */
export type TargetAssignment = Map<string, Map<string, number[]>>;

export function assignPartitions(input: AssignorInput): TargetAssignment {
  const result: TargetAssignment = new Map();
  const load = new Map<string, number>();
  const subscribers = new Map<string, string[]>();
  for (const m of input.members) {
    result.set(m.id, new Map());
    load.set(m.id, 0);
    for (const t of m.topics) {
      let list = subscribers.get(t);
      if (list === undefined) subscribers.set(t, (list = []));
      list.push(m.id);
    }
  }

  for (const topic of [...subscribers.keys()].sort()) {
    const count = input.partitionCounts.get(topic) ?? 0;
    const subs = [...new Set(subscribers.get(topic))].sort();
    if (count <= 0 || subs.length === 0) continue;
    const owners = input.currentOwners.get(topic);

    const current = new Map<string, number>(subs.map((id) => [id, 0]));
    if (owners !== undefined) {
      for (let p = 0; p < count; p++) {
        const o = owners[p];
        if (o !== undefined && current.has(o)) current.set(o, (current.get(o) ?? 0) + 1);
      }
    }

    const base = Math.floor(count / subs.length);
    const extra = count % subs.length;
    const byPriority = [...subs].sort(
      (a, b) => (current.get(b) ?? 0) - (current.get(a) ?? 0) || (load.get(a) ?? 0) - (load.get(b) ?? 0) || (a < b ? -1 : a > b ? 1 : 0),
    );
    const quota = new Map<string, number>();
    byPriority.forEach((id, i) => quota.set(id, base + (i < extra ? 1 : 0)));

    const kept = new Map<string, number[]>(subs.map((id) => [id, []]));
    const pool: number[] = [];
    for (let p = 0; p < count; p++) {
      const o = owners?.[p];
      const mine = o === undefined ? undefined : kept.get(o);
      if (mine !== undefined && o !== undefined && mine.length < (quota.get(o) ?? 0)) mine.push(p);
      else pool.push(p);
    }
    let next = 0;
    for (const id of subs) {
      const mine = kept.get(id) ?? [];
      const q = quota.get(id) ?? 0;
      while (mine.length < q && next < pool.length) mine.push(pool[next++] as number);
      mine.sort((a, b) => a - b);
      if (mine.length > 0) result.get(id)?.set(topic, mine);
      load.set(id, (load.get(id) ?? 0) + mine.length);
    }
  }
  return result;
}
