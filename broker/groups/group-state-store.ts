/**
 * Where the group coordinator persists committed offsets. The broker implements it
 * on the internal compacted topic `__consumer_offsets`; records are encoded by
 * offset-record.ts.
 *
 * Contract:
 * - `append` resolves once the record is durable; records become durable in the
 *   order `append` was called (a log), so the last record per key wins on load.
 * - `load` yields every record in that order; it is called once, by `start()`,
 *   before any `append`.
 */
export interface GroupStateStore {
  /** value null = tombstone (deletes the key). */
  append(key: Buffer, value: Buffer | null): Promise<void>;
  load(): AsyncIterable<{ key: Buffer; value: Buffer | null }> | Iterable<{ key: Buffer; value: Buffer | null }>;
}
