/**
 * What the group coordinator needs to know about topics, supplied by the broker.
 * Offsets are log offsets; all calls are synchronous reads of in-memory state.
 */
export interface TopicView {
  /** undefined when the topic does not exist. */
  partitionCount(topic: string): number | undefined;
  logStartOffset(topic: string, partition: number): number;
  logEndOffset(topic: string, partition: number): number;
  /** The first offset whose timestamp is at or after `timestamp`; the log end offset when none is. */
  offsetForTimestamp(topic: string, partition: number, timestamp: number): number;
}
