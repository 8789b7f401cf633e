/**
 * Where shared groups persist their state. The broker implements it on an internal
 * compacted partition; records are encoded by share-state-record.ts.
 *
 * Contract:
 * - `append` resolves once every entry is durable; one call is one log append (all or
 *   nothing), and appends become durable in call order, so the last entry per key wins
 *   on load. The coordinator never has two appends in flight.
 * - `load` yields every record in log order; it is called once, by `start()`, before
 *   any `append`.
 */
export interface ShareStateJournal {
  /** value null = tombstone (deletes the key). */
  append(entries: Array<{ key: Buffer; value: Buffer | null }>): Promise<void>;
  load(): Iterable<{ key: Buffer; value: Buffer | null }>;
}

/** One key/value of the journal. */
export interface JournalEntry {
  key: Buffer;
  value: Buffer | null;
}
