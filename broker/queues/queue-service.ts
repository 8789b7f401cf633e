import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { batchBaseOffset, batchLastOffsetDelta, batchTotalBytes } from '../../protocol/batch-header.js';
import { decodeBatch, encodeBatch, splitBatches, validateBatch } from '../../protocol/record-batch.js';
import type { DecodedRecord } from '../../protocol/record-batch.js';
import type { QueueSettings } from '../cluster/metadata-store.js';
import type { TopicManager, Topic } from '../topics/topic-manager.js';
import type { Partition } from '../partition/partition.js';
import type { SharedGroupCoordinator } from '../groups/shared/shared-group-coordinator.js';
import type { AcquiredRange, DeadLetter, OffsetResults } from '../groups/shared/share-partition.js';
import { RecordState } from '../groups/shared/share-state-record.js';
import type { ExchangeRegistry } from '../routing/exchange-registry.js';
import type { Destination } from '../routing/exchange-types.js';
import { deadLetterHeaders, headerValue, replayHeaders } from './dead-letters.js';
import { idempotencyKeyOf, mayCarryIdempotencyKey } from '../idempotency/publish-dedupe.js';
import type { PublishDedupe } from '../idempotency/publish-dedupe.js';

export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;
export const DEFAULT_PREFETCH = 100;
const MAX_PREFETCH = 10_000;
const READ_CHUNK_BYTES = 1024 * 1024;
const REPLAY_MEMBER = '__dlq-replay';
/** How long a queue append waits for the in-sync replicas (cluster) before the publish fails, ms. */
const COMMIT_TIMEOUT_MS = 30_000;

/**
 * Where queues are created and deleted: the broker's own topics on a single node; in a
 * cluster, the cluster's topic store (every broker learns of the queue the same way).
 */
export interface QueueCatalog {
  create(name: string, partitions: number, settings: QueueSettings, overrides: { retentionMs?: number; retentionBytes?: number; maxMessageBytes?: number }): Promise<void>;
  delete(name: string): Promise<void>;
  /** Whether this broker holds a replica of a topic's partition (cluster); every partition on a single node. */
  holdsReplica?(topic: string, partition: number): boolean;
}

export interface QueueDepthView {
  ready: number;
  inFlight: number;
  delayed: number;
}

export interface QueueView {
  name: string;
  partitions: number;
  settings: QueueSettings;
  depth: QueueDepthView;
  consumers: number;
  redeliveries: number;
  deadLettered: number;
  logStartOffset: number;
  logEndOffset: number;
  retentionMs: number;
  retentionBytes: number;
  maxMessageBytes: number;
}

export interface Acquired {
  ranges: Array<AcquiredRange & { partition: number; lockExpiresAt: number }>;
  data: Array<{ partition: number; bytes: Buffer }>;
}

export interface AckInput {
  partition: number;
  firstOffset: number;
  lastOffset: number;
  type: 'accept' | 'release' | 'reject' | 'renew';
  delayMs: number;
  reason: string;
}

export interface AckFailure {
  partition: number;
  offset: number;
  code: ErrorCode;
}

/** Where one publish went: per destination, its partition and first offset (for a dropped duplicate, the original's). */
export interface PublishResult {
  routed: Array<{ destination: Destination; partition: number; baseOffset: number; duplicates: number }>;
  dropped: boolean;
  /** Records dropped as repeats of an idempotency key, over every destination. */
  duplicates: number;
}

export interface DeadLetterFilterInput {
  headers: Record<string, string>;
  fromTime: number;
  toTime: number;
  maxCount: number;
}

/**
 * Queues and shared consumption on top of topics: a queue is a topic with one
 * built-in shared group (named after the topic's id, so a re-created queue starts
 * clean). Acquisition, acks and delivery counts live in the SharedGroupCoordinator;
 * this service reads the records, dead-letters what the coordinator gives up on,
 * routes publishes through exchanges, and wakes waiting consumers. Event-loop only.
 */
export class QueueService {
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly rotation = new Map<string, number>();
  private readonly counters = { unroutable: new Map<string, number>(), routed: new Map<string, number>(), droppedDeadLetters: 0 };
  /** Per destination, publishes dropped as repeats of an idempotency key seen within the dedupe window. */
  private readonly duplicatesDropped = new Map<string, number>();
  private readonly keyCache = new Map<string, string | undefined>();
  /** Dead letters per queue (by topic id) since start. */
  private readonly deadLettered = new Map<string, number>();
  /** Mean stored bytes per record of each partition's last read: sizes the next read to the records acquired. */
  private readonly bytesPerRecord = new WeakMap<Partition, number>();

  constructor(
    private readonly topics: TopicManager,
    private readonly shared: SharedGroupCoordinator,
    private readonly exchanges: ExchangeRegistry,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
    private readonly dedupe?: PublishDedupe,
    private readonly catalog: QueueCatalog = {
      create: async (name, partitions, settings, overrides) => void (await topics.create(name, partitions, 1, overrides, { queue: settings })),
      delete: (name) => topics.delete(name),
    },
  ) {
    topics.onDelete((t) => {
      this.dedupe?.forgetDestination(t.record.name);
      void this.exchanges.removeDestination({ kind: t.record.queue === undefined ? 'topic' : 'queue', name: t.record.name });
      this.wake(t.record.name);
    });
  }

  /** Every queue's built-in group must know its max deliveries before the first acquire. */
  start(): void {
    // maxDeliveries is enforced here, not in the engine: a dead letter is appended to the
    // dead-letter queue before its source record is acknowledged, so a crash in between
    // dead-letters it twice rather than losing it.
  }

  // ---- Queues -------------------------------------------------------------

  async createQueue(name: string, partitions: number, settings: QueueSettings, overrides: { retentionMs?: number; retentionBytes?: number; maxMessageBytes?: number }, ifNotExists: boolean): Promise<void> {
    if (ifNotExists && this.topics.has(name)) {
      this.topics.queue(name);
      return;
    }
    if (settings.deadLetterQueue !== '') {
      if (settings.deadLetterQueue === name) throw new KmqError(ErrorCode.InvalidConfig, `Queue "${name}" cannot be its own dead-letter queue`, { queue: name });
      this.topics.queue(settings.deadLetterQueue);
    }
    if (!Number.isInteger(settings.lockTimeoutMs) || settings.lockTimeoutMs < 100 || settings.lockTimeoutMs > 12 * 3_600_000) {
      throw new KmqError(ErrorCode.InvalidConfig, `lock timeout must be between 100 ms and 12 h, got ${settings.lockTimeoutMs}`, { queue: name });
    }
    await this.catalog.create(name, partitions, settings, overrides);
  }

  async deleteQueue(name: string, ifExists: boolean, ifEmpty: boolean): Promise<void> {
    if (ifExists && !this.topics.has(name)) return;
    const q = this.topics.queue(name);
    const users = this.topics.list(false, 'queue').filter((o) => o.record.queue!.deadLetterQueue === name).map((o) => o.record.name);
    if (users.length > 0) throw new KmqError(ErrorCode.InvalidConfig, `Queue "${name}" is the dead-letter queue of ${users.join(', ')}; change those first`, { queue: name });
    if (ifEmpty) {
      const d = this.depth(q);
      if (d.ready + d.inFlight + d.delayed > 0) {
        throw new KmqError(ErrorCode.GroupNotEmpty, `Queue "${name}" is not empty (${d.ready} ready, ${d.inFlight} in flight, ${d.delayed} delayed)`, { queue: name });
      }
    }
    await this.catalog.delete(name);
  }

  describe(name: string): QueueView {
    return this.view(this.topics.queue(name));
  }

  list(): QueueView[] {
    return this.topics.list(false, 'queue').map((q) => this.view(q));
  }

  async purge(name: string): Promise<number> {
    const q = this.topics.queue(name);
    const before = this.depth(q).ready;
    for (const p of q.partitions) await this.sharePartition(q, groupOf(q), p).purge(p.highWatermark);
    this.wake(name);
    return before;
  }

  private view(q: Topic): QueueView {
    const d = this.shared.describe(groupOf(q), (_t, p) => q.partitions[p]?.highWatermark ?? 0);
    const cfg = this.topics.effectiveConfig(q.record);
    return {
      name: q.record.name,
      partitions: q.partitions.length,
      settings: q.record.queue!,
      depth: this.depth(q),
      consumers: d.members,
      redeliveries: d.stats.redelivered,
      deadLettered: this.deadLettered.get(q.record.id) ?? 0,
      logStartOffset: q.partitions.reduce((s, p) => s + p.logStartOffset, 0),
      logEndOffset: q.partitions.reduce((s, p) => s + p.highWatermark, 0),
      retentionMs: cfg.retentionMs,
      retentionBytes: cfg.retentionBytes,
      maxMessageBytes: cfg.maxMessageBytes,
    };
  }

  /** Ready / in-flight / delayed over every partition of a queue. */
  depth(q: Topic): QueueDepthView {
    const now = this.clock();
    const out = { ready: 0, inFlight: 0, delayed: 0 };
    for (const p of q.partitions) {
      const sp = this.sharePartition(q, groupOf(q), p);
      const d = sp.depth(p.highWatermark, now);
      out.ready += d.ready;
      out.inFlight += d.inFlight;
      out.delayed += d.delayed;
    }
    return out;
  }

  /** Deletes queue segments whose every record is acknowledged (or archived); returns how many. */
  reclaim(): number {
    let removed = 0;
    for (const q of this.topics.list(false, 'queue')) {
      for (const p of q.partitions) {
        const sp = this.sharePartition(q, groupOf(q), p);
        try {
          removed += p.log.deleteSegmentsBelow(sp.startOffset);
        } catch (err) {
          this.logger.error({ err, queue: q.record.name, partition: p.index }, 'Reclaiming acknowledged segments failed');
        }
      }
    }
    return removed;
  }

  /** Depth and counters of every queue, for metrics. */
  metrics(): Array<{ queue: string; depth: QueueDepthView; redeliveries: number; deadLettered: number }> {
    return this.list().map((v) => ({ queue: v.name, depth: v.depth, redeliveries: v.redeliveries, deadLettered: v.deadLettered }));
  }

  exchangeCounters(): { routed: ReadonlyMap<string, number>; unroutable: ReadonlyMap<string, number> } {
    return this.counters;
  }

  /** Per destination (queue or topic), publishes dropped as duplicates since the broker started. */
  duplicateCounters(): ReadonlyMap<string, number> {
    return this.duplicatesDropped;
  }

  // ---- Shared consumption --------------------------------------------------

  /** The topic and group a ShareFetch names: a queue's built-in group, or a shared group on a topic. */
  resolve(name: string, group: string): { topic: Topic; group: string; settings: QueueSettings } {
    if (group === '') {
      const q = this.topics.queue(name);
      return { topic: q, group: groupOf(q), settings: q.record.queue };
    }
    const t = this.topics.get(name);
    if (t.record.internal) throw new KmqError(ErrorCode.InvalidTopic, `Internal topic "${name}" cannot be consumed`, { topic: name });
    if (!/^[a-zA-Z0-9._-]{1,200}$/.test(group)) throw new KmqError(ErrorCode.InvalidRequest, `Invalid group name "${group}"`, { group });
    // In a cluster the queue host reads a topic's partitions from its own replicas: it must hold one of each.
    const missing = this.catalog.holdsReplica === undefined ? [] : t.partitions.filter((p) => !this.catalog.holdsReplica!(name, p.index)).map((p) => p.index);
    if (missing.length > 0) {
      throw new KmqError(
        ErrorCode.InvalidRequest,
        `Shared group "${group}" cannot read topic "${name}": the queue host holds no replica of partition(s) ${missing.join(', ')} (give the topic a replication factor equal to the brokers, or use a queue)`,
        { topic: name, group },
        { retriable: false },
      );
    }
    const settings = t.record.queue ?? { maxDeliveries: 0, deadLetterQueue: '', lockTimeoutMs: DEFAULT_LOCK_TIMEOUT_MS, perKeyOrdering: false };
    return { topic: t, group: `${group}@${t.record.id}`, settings };
  }

  /** Acquires up to `max` records for the member, within its prefetch, and reads them. */
  async acquire(name: string, group: string, memberId: string, max: number, prefetch: number): Promise<Acquired> {
    if (memberId === '' || memberId.length > 200) throw new KmqError(ErrorCode.InvalidRequest, 'member_id must be 1-200 characters');
    const r = this.resolve(name, group);
    const limit = Math.min(prefetch > 0 ? prefetch : DEFAULT_PREFETCH, MAX_PREFETCH);
    let budget = Math.min(max > 0 ? max : limit, limit - this.shared.heldBy(memberId));
    this.shared.heartbeat(memberId);
    const out: Acquired = { ranges: [], data: [] };
    if (budget <= 0) return out;
    const parts = r.topic.partitions;
    const start = (this.rotation.get(r.group) ?? 0) % parts.length;
    this.rotation.set(r.group, start + 1);
    const now = this.clock();
    for (let i = 0; i < parts.length && budget > 0; i++) {
      const p = parts[(start + i) % parts.length]!;
      if (p.highWatermark === p.logStartOffset && this.shared.partitionsOf(r.group).length === 0) continue;
      const sp = this.sharePartition(r.topic, r.group, p);
      const res = await sp.acquire(memberId, budget, now, {
        lockTimeoutMs: r.settings.lockTimeoutMs,
        logEndOffset: p.highWatermark,
        ...(r.settings.perKeyOrdering ? { keyOf: (o: number) => this.keyAt(p, o) } : {}),
      });
      const max = r.settings.maxDeliveries;
      const deliver = max > 0 ? res.acquired.filter((a) => a.deliveryCount <= max) : res.acquired;
      if (deliver.length < res.acquired.length) {
        // Past max deliveries: the acquisition that would be one too many becomes a dead letter.
        const letters: DeadLetter[] = [];
        for (const a of res.acquired) {
          if (a.deliveryCount <= max) continue;
          for (let o = a.firstOffset; o <= a.lastOffset; o++) {
            const st = sp.recordAt(o);
            letters.push({ offset: o, deliveryCount: a.deliveryCount - 1, reason: 'max-deliveries', firstFailureAt: st.firstFailureAt, lastFailureAt: st.lastFailureAt });
          }
        }
        await this.deadLetterThenAck(r.topic, p, sp, memberId, letters);
      }
      if (deliver.length === 0) continue;
      for (const a of deliver) {
        out.ranges.push({ ...a, partition: p.index, lockExpiresAt: now + r.settings.lockTimeoutMs });
        budget -= a.lastOffset - a.firstOffset + 1;
      }
      out.data.push({ partition: p.index, bytes: this.readRanges(p, deliver) });
    }
    return out;
  }

  async ack(name: string, group: string, memberId: string, acks: readonly AckInput[]): Promise<AckFailure[]> {
    const r = this.resolve(name, group);
    const failures: AckFailure[] = [];
    const now = this.clock();
    await Promise.all(
      acks.map(async (a) => {
        const p = r.topic.partitions[a.partition];
        const count = a.lastOffset - a.firstOffset + 1;
        if (p === undefined || count < 1 || count > MAX_PREFETCH) {
          for (let o = a.firstOffset; o <= a.lastOffset && o < a.firstOffset + MAX_PREFETCH; o++) failures.push({ partition: a.partition, offset: o, code: ErrorCode.InvalidDelivery });
          return;
        }
        const offsets = Array.from({ length: count }, (_, i) => a.firstOffset + i);
        const sp = this.sharePartition(r.topic, r.group, p);
        let results: OffsetResults;
        switch (a.type) {
          case 'accept':
            results = await sp.ack(memberId, offsets, now);
            break;
          case 'release':
            results = await sp.release(memberId, offsets, a.delayMs, now);
            break;
          case 'renew':
            results = sp.renew(memberId, offsets, now, r.settings.lockTimeoutMs);
            break;
          case 'reject': {
            const reason = a.reason === '' ? 'rejected' : a.reason;
            if ((r.settings.deadLetterQueue ?? '') === '') {
              results = (await sp.reject(memberId, offsets, reason, now)).results;
              break;
            }
            // Only records this member holds: check with a renew (no state change otherwise).
            results = sp.renew(memberId, offsets, now, r.settings.lockTimeoutMs);
            const held = offsets.filter((_, i) => results[i] === null);
            const letters = held.map((o): DeadLetter => {
              const st = sp.recordAt(o);
              return { offset: o, deliveryCount: st.deliveryCount, reason, firstFailureAt: st.firstFailureAt > 0 ? st.firstFailureAt : now, lastFailureAt: now };
            });
            const acked = await this.deadLetterThenAck(r.topic, p, sp, memberId, letters);
            results = results.map((code, i) => (code === null ? acked.get(offsets[i]!) ?? null : code));
            break;
          }
        }
        results.forEach((code, i) => {
          if (code !== null) failures.push({ partition: a.partition, offset: offsets[i]!, code });
        });
      }),
    );
    this.shared.heartbeat(memberId);
    this.wake(r.topic.record.name);
    return failures;
  }

  /** The member is gone (left, or its connection closed): its records go back at once. */
  leave(memberId: string): void {
    if (this.shared.memberGone(memberId) > 0) for (const name of this.waiters.keys()) this.wake(name);
  }

  /** Expires locks and silent members; wakes consumers when records came back. */
  tick(): void {
    const r = this.shared.tick(this.clock());
    if (r.expiredLocks > 0 || r.goneMembers > 0) for (const name of [...this.waiters.keys()]) this.wake(name);
  }

  /** Resolves on the next change that may let a consumer of `name` acquire, or after ms. */
  waitForWork(name: string, ms: number, onClose?: (fn: () => void) => () => void): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(name);
      if (set === undefined) {
        set = new Set();
        this.waiters.set(name, set);
      }
      const s = set;
      const cancels: Array<() => void> = [];
      const done = (): void => {
        clearTimeout(timer);
        s.delete(done);
        for (const c of cancels) c();
        resolve();
      };
      const timer = setTimeout(done, ms);
      s.add(done);
      if (onClose !== undefined) cancels.push(onClose(done));
      try {
        const t = this.topics.get(name);
        for (const p of t.partitions) cancels.push(p.onNextAppend(done));
      } catch {
        // Deleted: the caller finds out on its next call.
      }
    });
  }

  wake(name: string): void {
    const set = this.waiters.get(name);
    if (set === undefined || set.size === 0) return;
    for (const fn of [...set]) fn();
  }

  // ---- Publishing -----------------------------------------------------------

  /**
   * Routes one record batch through an exchange (or straight to a queue) and appends it to
   * every destination. Records carrying an idempotency key already appended to a
   * destination within the dedupe window are dropped there (see PublishDedupe).
   */
  async publish(target: { exchange: string; routingKey: string; headers: Record<string, string>; mandatory: boolean; queue: string }, payload: Buffer): Promise<PublishResult> {
    const batches = splitBatches(payload, false);
    if (batches.length !== 1) throw new KmqError(ErrorCode.InvalidRequest, `A publish carries exactly one record batch, got ${batches.length}`);
    const header = validateBatch(batches[0]!);
    if (header.producerId >= 0) throw new KmqError(ErrorCode.InvalidRequest, 'Publish batches must not be idempotent-producer batches (producer id -1)');
    let destinations: readonly Destination[];
    if (target.exchange === '') {
      if (target.queue === '') throw new KmqError(ErrorCode.InvalidRequest, 'Publish needs an exchange or a queue');
      this.topics.queue(target.queue);
      destinations = [{ kind: 'queue', name: target.queue }];
    } else {
      const route = this.exchanges.route(target.exchange, target.routingKey, target.headers);
      if (route.unroutable) {
        this.counters.unroutable.set(target.exchange, (this.counters.unroutable.get(target.exchange) ?? 0) + 1);
        if (target.mandatory) {
          throw new KmqError(ErrorCode.Unroutable, `No binding of exchange "${target.exchange}" matches routing key "${target.routingKey}"`, { exchange: target.exchange });
        }
        return { routed: [], dropped: true, duplicates: 0 };
      }
      this.counters.routed.set(target.exchange, (this.counters.routed.get(target.exchange) ?? 0) + 1);
      destinations = route.destinations;
    }
    // Only batches whose bytes hold the header name are decoded.
    const keyed = this.dedupe?.enabled === true && mayCarryIdempotencyKey(payload) ? keyedRecords(payload) : undefined;
    const routed = await Promise.all(
      destinations.map(async (d, i) => {
        const t = d.kind === 'queue' ? this.topics.queue(d.name) : this.topics.get(d.name);
        const maxBytes = this.topics.effectiveConfig(t.record).maxMessageBytes;
        if (keyed !== undefined) return this.appendDeduped(d, t, keyed, maxBytes, i === destinations.length - 1 ? payload : Buffer.from(payload));
        const p = this.publishPartition(t, d.name);
        // Appends stamp offsets into the batch: each destination gets its own copy.
        const bytes = i === destinations.length - 1 ? payload : Buffer.from(payload);
        const r = await appendCommitted(p, bytes, maxBytes);
        this.wake(d.name);
        return { destination: d, partition: p.index, baseOffset: r.baseOffset, duplicates: 0 };
      }),
    );
    return { routed, dropped: false, duplicates: routed.reduce((s, r) => s + r.duplicates, 0) };
  }

  /**
   * Round robin over the partitions this broker may append to: all of them on a single
   * node and for a queue (the controller keeps a queue's partitions led by the queue
   * host); for a topic an exchange routes to, in a cluster, those the host leads.
   */
  private publishPartition(t: Topic, name: string): Partition {
    const n = (this.rotation.get(`publish/${name}`) ?? 0) + 1;
    this.rotation.set(`publish/${name}`, n);
    const first = t.partitions[n % t.partitions.length]!;
    if (t.record.queue !== undefined || canAppend(first)) return first;
    const led = t.partitions.filter(canAppend);
    if (led.length === 0) {
      throw new KmqError(
        ErrorCode.InvalidRequest,
        `Exchanges cannot route to topic "${name}" right now: the queue host leads none of its partitions (in a cluster an exchange appends to a topic's partitions led by the queue host; give the topic more partitions, or bind a queue)`,
        { topic: name },
        { retriable: false },
      );
    }
    return led[n % led.length]!;
  }

  /** Appends the records of a keyed publish whose key `d` has not seen within the window; `whole` is the batch to append when none is dropped. */
  private async appendDeduped(d: Destination, t: Topic, keyed: KeyedRecords, maxBytes: number, whole: Buffer): Promise<PublishResult['routed'][number]> {
    const dedupe = this.dedupe!;
    const kept: DecodedRecord[] = [];
    const keptKeys: Array<string | undefined> = [];
    const inBatch = new Set<string>();
    let original: { partition: number; offset: number } | undefined;
    let duplicates = 0;
    // Everything up to the append runs synchronously: no other publish sees this key half-done.
    for (let j = 0; j < keyed.records.length; j++) {
      const key = keyed.keys[j];
      if (key !== undefined) {
        const seen = dedupe.lookup(d.name, key);
        if (seen !== undefined || inBatch.has(key)) {
          duplicates++;
          original ??= seen;
          continue;
        }
        inBatch.add(key);
      }
      kept.push(keyed.records[j]!);
      keptKeys.push(key);
    }
    if (duplicates > 0) this.duplicatesDropped.set(d.name, (this.duplicatesDropped.get(d.name) ?? 0) + duplicates);
    if (kept.length === 0) return { destination: d, partition: original!.partition, baseOffset: original!.offset, duplicates };
    const bytes = duplicates === 0 ? whole : encodeBatch(kept.map((r) => ({ key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp })));
    const p = this.publishPartition(t, d.name);
    const base = p.logEndOffset;
    keptKeys.forEach((k, j) => {
      if (k !== undefined) dedupe.remember(d.name, k, p.index, base + j);
    });
    try {
      const r = await appendCommitted(p, bytes, maxBytes);
      this.wake(d.name);
      return { destination: d, partition: p.index, baseOffset: r.baseOffset, duplicates };
    } catch (err) {
      keptKeys.forEach((k, j) => {
        if (k !== undefined) dedupe.forget(d.name, k, p.index, base + j);
      });
      throw err;
    }
  }

  // ---- Dead letters ---------------------------------------------------------

  /** Appends dead letters to the dead-letter queue, then acknowledges them in the source. */
  private async deadLetterThenAck(source: Topic, p: Partition, sp: SharePartitionState, memberId: string, letters: readonly DeadLetter[]): Promise<Map<number, ErrorCode | null>> {
    const out = new Map<number, ErrorCode | null>();
    if (letters.length === 0) return out;
    await this.deadLetter(source, p, letters);
    const offsets = letters.map((l) => l.offset);
    const results = await sp.ack(memberId, offsets);
    offsets.forEach((o, i) => out.set(o, results[i] ?? null));
    this.deadLettered.set(source.record.id, (this.deadLettered.get(source.record.id) ?? 0) + letters.length);
    return out;
  }

  private async deadLetter(source: Topic, p: Partition, letters: readonly DeadLetter[]): Promise<void> {
    const dlqName = source.record.queue?.deadLetterQueue ?? '';
    if (dlqName === '' || !this.topics.has(dlqName)) {
      this.counters.droppedDeadLetters += letters.length;
      this.logger.warn({ queue: source.record.name, partition: p.index, count: letters.length }, 'Dropped dead letters: the queue has no dead-letter queue');
      return;
    }
    const dlq = this.topics.queue(dlqName);
    const records = [];
    for (const l of letters) {
      const rec = this.recordAt(p, l.offset);
      if (rec === undefined) continue; // removed by retention meanwhile
      records.push({
        key: rec.key,
        value: rec.value,
        headers: deadLetterHeaders(rec.headers, { source: source.record.name, partition: p.index, offset: l.offset, deliveryCount: l.deliveryCount, reason: l.reason, firstFailureAt: l.firstFailureAt, lastFailureAt: l.lastFailureAt }),
        timestamp: this.clock(),
      });
    }
    if (records.length === 0) return;
    const target = dlq.partitions[(p.index + l0(letters)) % dlq.partitions.length]!;
    try {
      await appendCommitted(target, encodeBatch(records), Number.MAX_SAFE_INTEGER);
      this.wake(dlqName);
    } catch (err) {
      this.logger.error({ err, queue: source.record.name, dlq: dlqName }, 'Dead-lettering failed');
      throw err;
    }
  }

  /** Dead letters of `source` still in its dead-letter queue (not consumed), oldest first. */
  peek(sourceName: string, filter: DeadLetterFilterInput): { positions: Array<{ dlq: string; partition: number; offset: number }>; data: Buffer[] } {
    const dlq = this.dlqOf(sourceName);
    const positions: Array<{ dlq: string; partition: number; offset: number }> = [];
    const data: Buffer[] = [];
    const max = filter.maxCount > 0 ? filter.maxCount : 1000;
    for (const p of dlq.partitions) {
      const sp = this.sharePartition(dlq, groupOf(dlq), p);
      for (const { batch, records } of this.scan(p, sp.startOffset)) {
        let used = false;
        for (const r of records) {
          if (positions.length >= max) break;
          if (!this.isReady(sp, r.offset) || !matches(r, sourceName, filter)) continue;
          positions.push({ dlq: dlq.record.name, partition: p.index, offset: r.offset });
          used = true;
        }
        if (used) data.push(batch);
        if (positions.length >= max) break;
      }
    }
    return { positions, data };
  }

  /**
   * Puts matching dead letters back on their source, each at most once: a replayed
   * letter is acknowledged in the dead-letter queue, so a second replay skips it.
   */
  async replay(sourceName: string, filter: DeadLetterFilterInput, ratePerSecond: number, dryRun: boolean): Promise<{ replayed: number; skipped: number }> {
    const source = this.topics.queue(sourceName);
    const dlq = this.dlqOf(sourceName);
    const { positions } = this.peek(sourceName, filter);
    if (dryRun) return { replayed: positions.length, skipped: 0 };
    let replayed = 0;
    let skipped = 0;
    const started = this.clock();
    for (const pos of positions) {
      const p = dlq.partitions[pos.partition]!;
      const sp = this.sharePartition(dlq, groupOf(dlq), p);
      // Take exactly this letter: acquire under a private member until we reach it.
      const got = await this.acquireOffset(dlq, p, pos.offset);
      if (!got) {
        skipped++;
        continue;
      }
      const rec = this.recordAt(p, pos.offset);
      if (rec === undefined) {
        await sp.ack(REPLAY_MEMBER, [pos.offset]);
        skipped++;
        continue;
      }
      const dest = source.partitions[Number(headerValue(rec.headers, 'x-kmq-source-partition') ?? 0) % source.partitions.length]!;
      const batch = encodeBatch([{ key: rec.key, value: rec.value, headers: replayHeaders(rec.headers, `${dlq.record.name}/${pos.partition}/${pos.offset}`) }]);
      await appendCommitted(dest, batch, Number.MAX_SAFE_INTEGER);
      await sp.ack(REPLAY_MEMBER, [pos.offset]);
      replayed++;
      this.wake(sourceName);
      if (ratePerSecond > 0) {
        const due = started + (replayed * 1000) / ratePerSecond;
        const wait = due - this.clock();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    }
    this.shared.memberGone(REPLAY_MEMBER);
    this.wake(dlq.record.name);
    return { replayed, skipped };
  }

  async purgeDeadLetters(sourceName: string): Promise<number> {
    return this.purge(this.dlqOf(sourceName).record.name);
  }

  private dlqOf(sourceName: string): Topic {
    const source = this.topics.queue(sourceName);
    const name = source.record.queue.deadLetterQueue;
    if (name === '') throw new KmqError(ErrorCode.InvalidConfig, `Queue "${sourceName}" has no dead-letter queue`, { queue: sourceName });
    return this.topics.queue(name);
  }

  /** Acquires records of `p` under the replay member until `offset` is among them; releases the others. */
  private async acquireOffset(dlq: Topic, p: Partition, offset: number): Promise<boolean> {
    const sp = this.sharePartition(dlq, groupOf(dlq), p);
    if (!this.isReady(sp, offset)) return false;
    const res = await sp.acquire(REPLAY_MEMBER, MAX_PREFETCH, this.clock(), { lockTimeoutMs: 60_000, logEndOffset: p.highWatermark });
    const others: number[] = [];
    let found = false;
    for (const a of res.acquired) {
      for (let o = a.firstOffset; o <= a.lastOffset; o++) {
        if (o === offset) found = true;
        else others.push(o);
      }
    }
    if (others.length > 0) await sp.release(REPLAY_MEMBER, others, 0);
    return found;
  }

  private isReady(sp: ReturnType<SharedGroupCoordinator['partition']>, offset: number): boolean {
    if (offset < sp.startOffset) return false;
    if (offset >= sp.endOffset) return true;
    const s = sp.recordAt(offset);
    return s.state === RecordState.Available && s.deadline <= this.clock();
  }

  // ---- Reading --------------------------------------------------------------

  private sharePartition(t: Topic, group: string, p: Partition): ReturnType<SharedGroupCoordinator['partition']> {
    const sp = this.shared.partition(group, t.record.name, p.index, p.logStartOffset);
    if (sp.startOffset < p.logStartOffset) sp.onLogStart(p.logStartOffset);
    return sp;
  }

  /** Whole batches covering every acquired range (each batch once). */
  private readRanges(p: Partition, ranges: readonly AcquiredRange[]): Buffer {
    const chunks: Buffer[] = [];
    let covered = -1; // last offset already included
    const sorted = [...ranges].sort((a, b) => a.firstOffset - b.firstOffset);
    for (const r of sorted) {
      let next = Math.max(r.firstOffset, covered + 1);
      while (next <= r.lastOffset) {
        // A read returns at least one whole batch; a fixed 1 MiB read for a few acquired records
        // would read and allocate far more than is sent.
        const perRecord = this.bytesPerRecord.get(p);
        const want = perRecord === undefined ? READ_CHUNK_BYTES : Math.min(READ_CHUNK_BYTES, Math.ceil((r.lastOffset - next + 1) * perRecord));
        const chunk = p.read(next, want);
        if (chunk.length === 0) break;
        // Keep whole batches that reach the range and were not sent yet.
        let at = 0;
        let keepFrom = -1;
        let keepTo = 0;
        let last = next - 1;
        while (at < chunk.length) {
          const size = batchTotalBytes(chunk, at);
          const base = batchBaseOffset(chunk, at);
          const end = base + batchLastOffsetDelta(chunk, at);
          if (base > r.lastOffset) break;
          if (end > covered) {
            if (keepFrom < 0) keepFrom = at;
            keepTo = at + size;
          }
          last = end;
          at += size;
        }
        if (at > 0) this.bytesPerRecord.set(p, at / (last - batchBaseOffset(chunk, 0) + 1));
        if (keepFrom >= 0) chunks.push(chunk.subarray(keepFrom, keepTo));
        covered = Math.max(covered, last);
        if (last < next) break;
        next = last + 1;
      }
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  }

  /** Batches from `from` on, decoded (for dead-letter inspection, not the hot path). */
  private *scan(p: Partition, from: number): Generator<{ batch: Buffer; records: DecodedRecord[] }> {
    let next = Math.max(from, p.logStartOffset);
    while (next < p.highWatermark) {
      const chunk = p.read(next, READ_CHUNK_BYTES);
      if (chunk.length === 0) return;
      for (const b of splitBatches(chunk, true)) {
        const { header, records } = decodeBatch(b);
        yield { batch: b, records: records.filter((r) => r.offset >= next) };
        next = Math.max(next, header.baseOffset + header.lastOffsetDelta + 1);
      }
    }
  }

  private recordAt(p: Partition, offset: number): DecodedRecord | undefined {
    if (offset < p.logStartOffset || offset >= p.highWatermark) return undefined;
    const chunk = p.read(offset, 1);
    for (const b of splitBatches(chunk, true)) for (const r of decodeBatch(b).records) if (r.offset === offset) return r;
    return undefined;
  }

  private keyAt(p: Partition, offset: number): string | undefined {
    const k = `${p.topic}/${p.index}/${offset}`;
    if (this.keyCache.has(k)) return this.keyCache.get(k);
    const chunk = p.read(offset, 1);
    for (const b of splitBatches(chunk, true)) {
      for (const r of decodeBatch(b).records) this.keyCache.set(`${p.topic}/${p.index}/${r.offset}`, r.key === null ? undefined : r.key.toString('latin1'));
    }
    if (this.keyCache.size > 100_000) this.keyCache.clear();
    return this.keyCache.get(k);
  }
}

type SharePartitionState = ReturnType<SharedGroupCoordinator['partition']>;

function canAppend(p: Partition): boolean {
  return p.role.kind === 'standalone' || p.role.kind === 'leader';
}

/**
 * Appends and, in a cluster, waits until the in-sync replicas have it (acks=all, refused
 * below min.insync.replicas): a publish, a dead letter or a replay is acknowledged only
 * once a failover cannot lose it. A single node's partition is committed on append.
 */
async function appendCommitted(p: Partition, bytes: Buffer, maxBytes: number): Promise<{ baseOffset: number; lastOffset: number }> {
  const r = await p.append(bytes, maxBytes, true);
  await p.waitForCommit(r.lastOffset, COMMIT_TIMEOUT_MS);
  return r;
}

interface KeyedRecords {
  records: DecodedRecord[];
  keys: Array<string | undefined>;
}

/** The records of a publish batch and their idempotency keys, or undefined when none has one. */
function keyedRecords(batch: Buffer): KeyedRecords | undefined {
  const { records } = decodeBatch(batch);
  const keys = records.map((r) => idempotencyKeyOf(r.headers));
  return keys.some((k) => k !== undefined) ? { records, keys } : undefined;
}

function groupOf(q: Topic): string {
  return `__queue@${q.record.id}`;
}

function l0(letters: readonly DeadLetter[]): number {
  return letters[0]?.offset ?? 0;
}

function matches(r: DecodedRecord, source: string, f: DeadLetterFilterInput): boolean {
  if (headerValue(r.headers, 'x-kmq-source') !== source) return false;
  if (f.fromTime > 0 && r.timestamp < f.fromTime) return false;
  if (f.toTime > 0 && r.timestamp >= f.toTime) return false;
  for (const [k, v] of Object.entries(f.headers)) if (headerValue(r.headers, k) !== v) return false;
  return true;
}
