import type { KmqError } from '../lib/errors.js';

/** Where one partition stands for this consumer. */
export interface PartitionCursor {
  topic: string;
  partition: number;
  /** Next offset to fetch: past everything fetched, consumed or not. */
  fetchOffset: number;
  /** Next offset to consume: past what the application has processed. Committed as is. */
  position: number;
  /** Position after the batch the application holds now (handed out, maybe not yet processed). */
  handed: number;
  /** Last committed position, -1 when none. */
  committed: number;
  /** Bumped on seek, reset and revocation: fetched data of an older epoch is dropped. */
  epoch: number;
  highWatermark: number;
  /** Start offset known and not paused by a surfaced error. */
  ready: boolean;
  /** Still owned; false once revoked. */
  active: boolean;
  /** Broker id of the leader, once looked up. */
  leader: number | undefined;
}

/** Raw fetched bytes of one partition, decoded only when the application takes them. */
export interface FetchedChunk {
  cursor: PartitionCursor;
  epoch: number;
  fetchOffset: number;
  bytes: Buffer;
  highWatermark: number;
}

export type QueueItem = { chunk: FetchedChunk; error?: undefined } | { chunk?: undefined; error: KmqError };

/**
 * Fetched data waiting for the application. Fetch loops push; the iterator
 * takes. `waitForSpace` holds the fetch loops once `limitBytes` are queued, so
 * one response is prefetched while the application handles the previous one,
 * and memory stays bounded.
 */
export class FetchQueue {
  private readonly items: QueueItem[] = [];
  private head = 0;
  private bytes = 0;
  private takers: Array<(item: QueueItem | undefined) => void> = [];
  private spaceWaiters: Array<() => void> = [];
  private closed = false;

  constructor(private readonly limitBytes: number) {}

  push(item: QueueItem): void {
    if (this.closed) return;
    const taker = this.takers.shift();
    if (taker !== undefined) {
      taker(item);
      return;
    }
    if (item.chunk !== undefined) this.bytes += item.chunk.bytes.length;
    this.items.push(item);
  }

  /** The next item, or undefined once closed. */
  take(): Promise<QueueItem | undefined> {
    if (this.head < this.items.length) {
      const item = this.items[this.head]!;
      this.items[this.head++] = undefined as unknown as QueueItem;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items.splice(0, this.head);
        this.head = 0;
      }
      if (item.chunk !== undefined) this.bytes -= item.chunk.bytes.length;
      this.wakeSpace();
      return Promise.resolve(item);
    }
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.takers.push(resolve));
  }

  waitForSpace(): Promise<void> {
    if (this.bytes < this.limitBytes || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.spaceWaiters.push(resolve));
  }

  /** Ends every wait; later takes return undefined. */
  close(): void {
    this.closed = true;
    this.items.length = 0;
    this.head = 0;
    this.bytes = 0;
    for (const t of this.takers.splice(0)) t(undefined);
    this.wakeSpace();
  }

  private wakeSpace(): void {
    if (this.bytes >= this.limitBytes && !this.closed) return;
    for (const w of this.spaceWaiters.splice(0)) w();
  }
}
