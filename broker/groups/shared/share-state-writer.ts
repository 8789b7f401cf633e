/**
 * Group commit of shared-group state. Share-partitions change their state in memory,
 * call `touch(this)`, and whoever must not answer before the change is durable awaits
 * `durable()`. Once per event-loop turn (setImmediate) the writer asks every touched
 * source for its journal entries and sends them all in one `append`; with an append in
 * flight, changes gather for the next one, so batches grow with load. At most one
 * append is in flight, which keeps the journal in call order.
 *
 * A failed append rejects its waiters with STORAGE_ERROR and tells each source to
 * rewrite its whole state next time, since the journal may or may not hold the batch.
 * Event-loop only.
 */
import { ErrorCode, KmqError, toKmqError } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import type { JournalEntry, ShareStateJournal } from './share-state-journal.js';

/** Something whose changes the writer journals. */
export interface JournalSource {
  /** Appends the entries for every change since the last call, and forgets those changes. */
  collectJournalEntries(out: JournalEntry[]): void;
  /** The last collected entries may not be durable: journal everything again next time. */
  journalFailed(): void;
}

interface Waiters {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Counters of the writer, for metrics. */
export interface ShareStateWriterStats {
  appends: number;
  entries: number;
  bytes: number;
  failures: number;
}

export class ShareStateWriter {
  private readonly dirty = new Set<JournalSource>();
  private next: Waiters | undefined;
  private scheduled = false;
  private inFlight = false;
  private idleWaiters: Array<() => void> = [];
  readonly stats: ShareStateWriterStats = { appends: 0, entries: 0, bytes: 0, failures: 0 };

  constructor(
    private readonly journal: ShareStateJournal,
    private readonly log?: Logger,
  ) {}

  /** Notes that `source` has changes to journal. */
  touch(source: JournalSource): void {
    this.dirty.add(source);
    this.schedule();
  }

  /** Resolves once every change made so far is durable. */
  durable(): Promise<void> {
    if (this.next === undefined) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.next = { promise, resolve, reject };
    }
    this.schedule();
    return this.next.promise;
  }

  /** Resolves when nothing is waiting to be written and no append is in flight. */
  idle(): Promise<void> {
    if (!this.scheduled && !this.inFlight && this.dirty.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const sources = [...this.dirty];
    this.dirty.clear();
    const waiters = this.next;
    this.next = undefined;
    const entries: JournalEntry[] = [];
    let appended: Promise<void>;
    try {
      for (const s of sources) s.collectJournalEntries(entries);
      appended = entries.length === 0 ? Promise.resolve() : this.journal.append(entries);
    } catch (err) {
      appended = Promise.reject(err);
    }
    this.inFlight = true;
    appended.then(
      () => {
        this.inFlight = false;
        if (entries.length > 0) {
          this.stats.appends++;
          this.stats.entries += entries.length;
          for (const e of entries) this.stats.bytes += e.key.length + (e.value === null ? 0 : e.value.length);
        }
        waiters?.resolve();
        this.afterFlush();
      },
      (err: unknown) => {
        this.inFlight = false;
        this.stats.failures++;
        for (const s of sources) s.journalFailed();
        const e = new KmqError(ErrorCode.StorageError, `Shared-group state append failed: ${toKmqError(err).message}`, {}, { cause: err });
        this.log?.error({ err: e }, 'Shared-group state append failed');
        waiters?.reject(e);
        this.afterFlush();
      },
    );
  };

  private afterFlush(): void {
    if (this.next !== undefined || this.dirty.size > 0) {
      this.schedule();
      return;
    }
    const idle = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of idle) w();
  }
}
