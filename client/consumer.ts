import { backoffDelay, sleep } from '../lib/backoff.js';
import { ErrorCode, KmqError, toKmqError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { Apis } from '../protocol/apis.js';
import { Off, BATCH_HEADER_BYTES, batchTotalBytes, readInt64 } from '../protocol/batch-header.js';
import { errorCodeFromWire } from '../protocol/error-codes.js';
import type { FetchPartitionResult, FetchRequest } from '../protocol/gen/kmq/broker/v1/broker.js';
import { forEachRecord } from '../protocol/record-batch.js';
import type { DecodedRecord } from '../protocol/record-batch.js';
import type { Cluster } from './cluster.js';
import type { CompiledConsumerOptions } from './consumer-options.js';
import { FetchQueue } from './fetch-queue.js';
import type { PartitionCursor } from './fetch-queue.js';
import { GroupMember } from './group-member.js';
import type { TopicPartition } from './group-member.js';
import { commitOffsets, fetchCommitted, listOffsets, unknownPartition } from './offsets.js';
import type { CompiledRetrySettings } from './options.js';
import { invalidSetting } from './settings.js';

/** Records of one partition from one fetch, in offset order. */
export interface ConsumerBatch {
  topic: string;
  partition: number;
  records: DecodedRecord[];
  /** The partition's high watermark when fetched: lag = highWatermark - (last offset + 1). */
  highWatermark: number;
}

export interface RunOptions {
  /** Called for each batch, one at a time; the position advances when it resolves. */
  eachBatch: (batch: ConsumerBatch) => Promise<void> | void;
}

const ROUTE_ERRORS: ReadonlySet<string> = new Set([ErrorCode.NotLeader, ErrorCode.UnknownTopic, ErrorCode.UnknownPartition, ErrorCode.BrokerNotAvailable, ErrorCode.RequestTimedOut]);
const keyOf = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/** Offset after the last whole batch in `bytes`, or -1 when there is none. */
function endOfWholeBatches(bytes: Buffer): number {
  let at = 0;
  let next = -1;
  while (at + BATCH_HEADER_BYTES <= bytes.length) {
    const size = batchTotalBytes(bytes, at);
    if (size < BATCH_HEADER_BYTES || at + size > bytes.length) break;
    next = readInt64(bytes, at + Off.baseOffset) + bytes.readInt32BE(at + Off.lastOffsetDelta) + 1;
    at += size;
  }
  return next;
}

/**
 * Reads records from partitions it owns: assigned by the broker (group mode) or
 * given (manual). One fetch per leader covers all its partitions; the next fetch
 * goes out while the application handles the previous answer. Positions advance
 * when the application asks for the next batch, so a crash redelivers what was
 * being handled (at-least-once); commits store positions (next offset to consume).
 */
export class Consumer {
  private readonly cursors = new Map<string, PartitionCursor>();
  private readonly queue: FetchQueue;
  private readonly loops = new Map<number, symbol>();
  private readonly member: GroupMember | undefined;
  private started: Promise<void> | undefined;
  private running = true;
  private iterating = false;
  private commitTimer: NodeJS.Timeout | undefined;
  private routeRetryTimer: NodeJS.Timeout | undefined;
  private routeFailures = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly options: CompiledConsumerOptions,
    private readonly backoff: CompiledRetrySettings,
    private readonly log: Logger,
    clientId: string,
  ) {
    this.queue = new FetchQueue(options.maxBytes);
    if (options.groupId !== undefined && options.assignment === undefined) {
      this.member = new GroupMember(
        cluster,
        { groupId: options.groupId, topics: options.topics, sessionTimeoutMs: options.sessionTimeoutMs, clientId },
        {
          assigned: (tps) => this.assign(tps.map((tp) => ({ ...tp }))),
          revoked: (tps) => this.revoke(tps),
          lost: () => this.dropAll(),
          owned: () => this.owned(),
        },
        backoff,
        log,
      );
    }
  }

  /** Batches as they arrive, until close(). Only one iteration at a time. */
  async *batches(): AsyncGenerator<ConsumerBatch, void, undefined> {
    if (this.iterating) throw new KmqError(ErrorCode.InvalidRequest, 'Consumer is already being iterated', {}, { retriable: false });
    this.iterating = true;
    try {
      await this.start();
      while (this.running) {
        const item = await this.queue.take();
        if (item === undefined) return;
        if (item.error !== undefined) throw item.error;
        const { cursor, epoch, fetchOffset } = item.chunk;
        if (!cursor.active || cursor.epoch !== epoch) continue;
        const records: DecodedRecord[] = [];
        const next = forEachRecord(item.chunk.bytes, fetchOffset, (r) => records.push(r));
        if (records.length === 0) {
          if (next > cursor.position) cursor.position = next;
          continue;
        }
        cursor.handed = next;
        yield { topic: cursor.topic, partition: cursor.partition, records, highWatermark: item.chunk.highWatermark };
        if (cursor.epoch === epoch && next > cursor.position) cursor.position = next;
      }
    } finally {
      this.iterating = false;
    }
  }

  /** Calls eachBatch for every batch until close() or until it throws. */
  async run(options: RunOptions): Promise<void> {
    for await (const batch of this.batches()) await options.eachBatch(batch);
  }

  /** Starts consuming (joins the group or applies the assignment); batches() does this on its own. */
  start(): Promise<void> {
    this.started ??= this.begin();
    return this.started;
  }

  /**
   * Commits positions (next offset to consume) of partitions that moved,
   * including the batch the application holds now: call it after handling that
   * batch. Auto-commit, revocation and close commit only batches whose handling
   * finished (the application asked for the next one).
   */
  async commit(): Promise<void> {
    if (this.options.groupId === undefined) throw invalidSetting('consumer.groupId', 'commit() needs a consumer group', undefined);
    await this.commitMoved(true);
  }

  /**
   * Commits exactly `offsets` (next offset to consume per partition), e.g. the
   * highest contiguous handled point inside a batch still being handled. The
   * fetch position does not move. Every partition must be owned by this consumer
   * now; otherwise nothing is committed and a NotPartitionOwner error names them.
   */
  async commitOffsets(offsets: ReadonlyArray<TopicPartition & { offset: number }>): Promise<void> {
    if (this.options.groupId === undefined) throw invalidSetting('consumer.groupId', 'commitOffsets() needs a consumer group', undefined);
    const cursors: PartitionCursor[] = [];
    const values: number[] = [];
    const foreign: string[] = [];
    for (const o of offsets) {
      if (!Number.isInteger(o.offset) || o.offset < 0) throw invalidSetting(`commit offset of ${o.topic}[${o.partition}]`, 'must be an integer >= 0', o.offset);
      const c = this.cursors.get(keyOf(o.topic, o.partition));
      if (c === undefined || !c.active) foreign.push(`${o.topic}[${o.partition}]`);
      else {
        cursors.push(c);
        values.push(o.offset);
      }
    }
    if (foreign.length > 0) {
      const first = offsets.find((o) => this.cursors.get(keyOf(o.topic, o.partition))?.active !== true)!;
      throw new KmqError(ErrorCode.NotPartitionOwner, `This consumer does not own ${foreign.join(', ')}; nothing was committed`, { group: this.options.groupId, topic: first.topic, partition: first.partition }, { retriable: false });
    }
    await this.commitCursors(cursors, values);
  }

  private async commitMoved(includeHanded: boolean): Promise<void> {
    const moved: PartitionCursor[] = [];
    const offsets: number[] = [];
    for (const c of this.cursors.values()) {
      if (!c.active || !c.ready) continue;
      const offset = includeHanded && c.handed > c.position ? c.handed : c.position;
      if (offset < 0 || offset === c.committed) continue;
      moved.push(c);
      offsets.push(offset);
    }
    await this.commitCursors(moved, offsets);
  }

  /** Moves the position of an owned partition; the next batch starts there. */
  seek(topic: string, partition: number, offset: number): void {
    if (!Number.isInteger(offset) || offset < 0) throw invalidSetting('seek offset', 'must be an integer >= 0', offset);
    const cursor = this.cursors.get(keyOf(topic, partition));
    if (cursor === undefined || !cursor.active) {
      const manual = this.started === undefined ? this.options.assignment?.find((a) => a.topic === topic && a.partition === partition) : undefined;
      if (manual === undefined) throw unknownPartition(topic, partition);
      manual.offset = offset;
      return;
    }
    cursor.epoch++;
    cursor.fetchOffset = offset;
    cursor.position = offset;
    cursor.handed = offset;
    if (!cursor.ready) {
      cursor.ready = true;
      void this.ensureLoops();
    }
  }

  /** Next offset to consume of an owned partition, or undefined. */
  position(topic: string, partition: number): number | undefined {
    const c = this.cursors.get(keyOf(topic, partition));
    return c === undefined || !c.ready ? undefined : c.position;
  }

  /** The partitions consumed now. */
  assignment(): TopicPartition[] {
    return this.owned();
  }

  /** Stops fetching, commits (when autoCommit), leaves the group and ends the iteration. */
  async close(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.commitTimer);
    clearTimeout(this.routeRetryTimer);
    this.queue.close();
    if (this.started !== undefined) await this.started.catch(() => {});
    if (this.options.autoCommit) {
      await this.commitMoved(false).catch((err: unknown) => this.log.warn({ group: this.options.groupId, err: (err as Error).message }, 'Final commit failed'));
    }
    await this.member?.leave();
    for (const c of this.cursors.values()) c.active = false;
    this.cursors.clear();
  }

  private async begin(): Promise<void> {
    if (this.member !== undefined) {
      await this.member.start();
    } else if (this.options.assignment !== undefined) {
      await this.assign(this.options.assignment.map((a) => ({ ...a })));
    } else {
      const tps: TopicPartition[] = [];
      for (const topic of this.options.topics) {
        const route = await this.cluster.route(topic);
        for (let partition = 0; partition < route.leaders.length; partition++) tps.push({ topic, partition });
      }
      await this.assign(tps);
    }
    if (this.options.autoCommit) {
      this.commitTimer = setInterval(() => {
        this.commitMoved(false).catch((err: unknown) => this.log.warn({ group: this.options.groupId, err: (err as Error).message }, 'Auto-commit failed'));
      }, this.options.autoCommitIntervalMs);
    }
  }

  private owned(): TopicPartition[] {
    const out: TopicPartition[] = [];
    for (const c of this.cursors.values()) if (c.active) out.push({ topic: c.topic, partition: c.partition });
    return out;
  }

  /** Starts partitions: committed offset, else earliest/latest per fromBeginning; an explicit offset wins. */
  private async assign(tps: Array<TopicPartition & { offset?: number }>): Promise<void> {
    const fresh: PartitionCursor[] = [];
    for (const tp of tps) {
      const key = keyOf(tp.topic, tp.partition);
      if (this.cursors.get(key)?.active === true) continue;
      const c: PartitionCursor = { topic: tp.topic, partition: tp.partition, fetchOffset: -1, position: -1, handed: -1, committed: -1, epoch: 0, highWatermark: -1, ready: false, active: true, leader: undefined };
      if (tp.offset !== undefined) {
        c.fetchOffset = c.position = c.handed = tp.offset;
      }
      this.cursors.set(key, c);
      fresh.push(c);
    }
    const unknown = fresh.filter((c) => c.position < 0);
    if (unknown.length > 0 && this.options.groupId !== undefined) {
      const committed = await fetchCommitted(this.cluster, this.options.groupId, unknown);
      for (const o of committed) {
        const c = this.cursors.get(keyOf(o.topic, o.partition));
        if (c !== undefined && o.offset >= 0) {
          c.fetchOffset = c.position = c.handed = c.committed = o.offset;
        }
      }
    }
    await this.resetOffsets(fresh.filter((c) => c.position < 0), this.options.fromBeginning ? 'earliest' : 'latest');
    for (const c of fresh) if (c.active) c.ready = true;
    await this.ensureLoops();
  }

  private async resetOffsets(cursors: PartitionCursor[], spec: 'earliest' | 'latest'): Promise<void> {
    const byTopic = new Map<string, PartitionCursor[]>();
    for (const c of cursors) {
      let list = byTopic.get(c.topic);
      if (list === undefined) byTopic.set(c.topic, (list = []));
      list.push(c);
    }
    for (const [topic, list] of byTopic) {
      const offsets = await listOffsets(this.cluster, topic, list.map((c) => c.partition), spec);
      for (const c of list) {
        const o = offsets.get(c.partition);
        if (o === undefined) throw new KmqError(ErrorCode.UnknownPartition, `No ${spec} offset for ${topic}[${c.partition}]`, { topic, partition: c.partition });
        c.epoch++;
        c.fetchOffset = c.position = c.handed = o;
      }
    }
  }

  private async revoke(tps: TopicPartition[]): Promise<void> {
    const revoked: PartitionCursor[] = [];
    for (const tp of tps) {
      const c = this.cursors.get(keyOf(tp.topic, tp.partition));
      if (c === undefined) continue;
      c.active = false;
      c.epoch++;
      revoked.push(c);
    }
    if (this.options.autoCommit) {
      const moved = revoked.filter((c) => c.ready && c.position !== c.committed && c.position >= 0);
      await this.commitCursors(moved, moved.map((c) => c.position)).catch((err: unknown) =>
        this.log.warn({ group: this.options.groupId, err: (err as Error).message }, 'Commit of revoked partitions failed'),
      );
    }
    for (const c of revoked) if (this.cursors.get(keyOf(c.topic, c.partition)) === c) this.cursors.delete(keyOf(c.topic, c.partition));
  }

  private dropAll(): void {
    for (const c of this.cursors.values()) {
      c.active = false;
      c.epoch++;
    }
    this.cursors.clear();
  }

  private async commitCursors(cursors: PartitionCursor[], offsets: number[]): Promise<void> {
    if (cursors.length === 0 || this.options.groupId === undefined) return;
    const entries = cursors.map((c, i) => ({ topic: c.topic, partition: c.partition, offset: offsets[i]! }));
    await commitOffsets(this.cluster, this.options.groupId, this.member?.memberId ?? '', entries);
    for (let i = 0; i < cursors.length; i++) cursors[i]!.committed = offsets[i]!;
  }

  /** Looks up leaders of ready partitions and starts one fetch loop per leader that has none. */
  private async ensureLoops(): Promise<void> {
    if (!this.running) return;
    try {
      for (const c of this.cursors.values()) {
        if (!c.active || !c.ready || c.leader !== undefined) continue;
        const route = await this.cluster.route(c.topic);
        const leader = route.leaders[c.partition];
        if (leader === undefined) throw new KmqError(ErrorCode.UnknownPartition, `Topic ${c.topic} has no partition ${c.partition}`, { topic: c.topic, partition: c.partition });
        c.leader = leader;
      }
      this.routeFailures = 0;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'Partition leader lookup failed');
      this.retryRoutesLater();
    }
    for (const c of this.cursors.values()) {
      if (c.active && c.ready && c.leader !== undefined && !this.loops.has(c.leader)) {
        const token = Symbol('fetch-loop');
        this.loops.set(c.leader, token);
        void this.fetchLoop(c.leader, token);
      }
    }
  }

  private retryRoutesLater(): void {
    if (this.routeRetryTimer !== undefined || !this.running) return;
    const delay = backoffDelay(this.routeFailures++, this.backoff);
    this.routeRetryTimer = setTimeout(() => {
      this.routeRetryTimer = undefined;
      void this.ensureLoops();
    }, delay);
  }

  private async fetchLoop(leader: number, token: symbol): Promise<void> {
    const { maxWaitMs, maxBytes, maxBytesPerPartition } = this.options;
    let failures = 0;
    while (this.running && this.loops.get(leader) === token) {
      const cursors: PartitionCursor[] = [];
      for (const c of this.cursors.values()) if (c.active && c.ready && c.leader === leader) cursors.push(c);
      if (cursors.length === 0) {
        this.loops.delete(leader);
        return;
      }
      await this.queue.waitForSpace();
      if (!this.running) break;
      const epochs = cursors.map((c) => c.epoch);
      const req: FetchRequest = {
        partitions: cursors.map((c) => ({ topic: c.topic, partition: c.partition, fetchOffset: c.fetchOffset, maxBytes: maxBytesPerPartition })),
        maxWaitMs,
        minBytes: 1,
        maxBytes,
      };
      try {
        const conn = await this.cluster.connectionToBroker(leader);
        const res = await conn.request(Apis.Fetch, req, undefined, { timeoutMs: this.cluster.requestTimeoutMs + maxWaitMs });
        this.absorb(res.header.partitions, res.payload, cursors, epochs);
        failures = 0;
      } catch (raw) {
        const err = toKmqError(raw);
        if (!this.running) break;
        this.log.warn({ broker: leader, err: err.message }, 'Fetch failed');
        for (const c of cursors) {
          c.leader = undefined;
          if (ROUTE_ERRORS.has(err.code) || err.code === ErrorCode.ConnectionClosed) this.cluster.invalidate(c.topic);
        }
        this.loops.delete(leader);
        await sleep(backoffDelay(failures++, this.backoff));
        void this.ensureLoops();
        return;
      }
    }
    if (this.loops.get(leader) === token) this.loops.delete(leader);
  }

  /** Splits a fetch answer per partition and queues the data; handles per-partition errors. */
  private absorb(results: FetchPartitionResult[], payload: Buffer, asked: PartitionCursor[], epochs: number[]): void {
    let at = 0;
    let rerouted = false;
    for (const r of results) {
      const bytes = payload.subarray(at, at + r.recordsLength);
      at += r.recordsLength;
      const i = asked.findIndex((c) => c.topic === r.topic && c.partition === r.partition);
      const c = asked[i];
      if (c === undefined || !c.active || c.epoch !== epochs[i]) continue;
      if (r.errorCode !== 0) {
        rerouted = this.partitionError(c, r) || rerouted;
        continue;
      }
      c.highWatermark = r.highWatermark;
      if (bytes.length === 0) continue;
      const next = endOfWholeBatches(bytes);
      if (next < 0) {
        this.log.warn({ topic: c.topic, partition: c.partition, bytes: bytes.length }, 'Fetch returned no whole batch; raise consumer.maxBytesPerPartition');
        continue;
      }
      if (next > c.fetchOffset) {
        this.queue.push({ chunk: { cursor: c, epoch: c.epoch, fetchOffset: c.fetchOffset, bytes, highWatermark: r.highWatermark } });
        c.fetchOffset = next;
      }
    }
    if (rerouted) this.retryRoutesLater();
  }

  /** Returns true when the partition needs a new leader lookup. */
  private partitionError(c: PartitionCursor, r: FetchPartitionResult): boolean {
    const code = errorCodeFromWire(r.errorCode);
    const err = new KmqError(code, r.errorMessage !== '' ? r.errorMessage : `Fetch of ${c.topic}[${c.partition}] failed: ${code}`, { topic: c.topic, partition: c.partition, offset: c.fetchOffset });
    if (code === ErrorCode.OffsetOutOfRange) {
      if (!this.options.resetOnOutOfRange) {
        c.ready = false;
        this.queue.push({ error: err });
        return false;
      }
      const spec = this.options.fromBeginning ? 'earliest' : 'latest';
      this.log.warn({ topic: c.topic, partition: c.partition, offset: c.fetchOffset, resetTo: spec }, 'Offset out of range; resetting');
      c.ready = false;
      this.resetOffsets([c], spec).then(
        () => {
          c.ready = c.active;
          void this.ensureLoops();
        },
        (e: unknown) => {
          this.queue.push({ error: toKmqError(e) });
        },
      );
      return false;
    }
    if (ROUTE_ERRORS.has(code)) this.cluster.invalidate(c.topic);
    else this.log.warn({ topic: c.topic, partition: c.partition, err: err.message }, 'Fetch of partition failed');
    // Look the leader up again after a backoff rather than refetching at once.
    c.leader = undefined;
    return true;
  }
}
