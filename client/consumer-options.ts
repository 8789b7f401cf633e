import { invalidSetting, boolSetting, intSetting, stringSetting } from './settings.js';

/** A partition to consume with a manual assignment; `offset` overrides the committed one. */
export interface PartitionAssignment {
  topic: string;
  partition: number;
  offset?: number;
}

/** Options of a Consumer. Give `groupId` + `topics` (group mode) or `assignment` / `topics` without a group (manual). */
export interface ConsumerOptions {
  /** Consumer group: the broker assigns partitions and stores committed offsets. */
  groupId?: string;
  /** Topics to consume. In group mode the broker splits their partitions; without a group, all partitions. */
  topics?: string[];
  /** Manual assignment; excludes `topics`. */
  assignment?: PartitionAssignment[];
  /** Where to start without a committed offset: earliest (true) or latest (false, default). */
  fromBeginning?: boolean;
  /** Commit positions periodically and on close. Default true (needs groupId). */
  autoCommit?: boolean;
  /** Auto-commit period, ms. Default 1000. */
  autoCommitIntervalMs?: number;
  /** Largest fetch response, bytes. Default 8 MiB. */
  maxBytes?: number;
  /** Largest share of a fetch response per partition, bytes. Default 4 MiB. */
  maxBytesPerPartition?: number;
  /** Long-poll wait of a fetch with no data, ms. Default 500. */
  maxWaitMs?: number;
  /** Group session timeout, ms. Default 10000. */
  sessionTimeoutMs?: number;
  /** On OffsetOutOfRange, reset per fromBeginning (default true) or surface the error. */
  resetOnOutOfRange?: boolean;
}

export interface CompiledConsumerOptions {
  groupId: string | undefined;
  topics: string[];
  assignment: PartitionAssignment[] | undefined;
  fromBeginning: boolean;
  autoCommit: boolean;
  autoCommitIntervalMs: number;
  maxBytes: number;
  maxBytesPerPartition: number;
  maxWaitMs: number;
  sessionTimeoutMs: number;
  resetOnOutOfRange: boolean;
}

/** Validates once and fills every default; throws KmqError(InvalidConfig) naming the bad setting. */
export function compileConsumerOptions(o: ConsumerOptions = {}): CompiledConsumerOptions {
  const groupId = o.groupId === undefined ? undefined : stringSetting('consumer.groupId', o.groupId, '');
  if (o.topics !== undefined && (!Array.isArray(o.topics) || o.topics.some((t) => typeof t !== 'string' || t === ''))) {
    throw invalidSetting('consumer.topics', 'must be a list of topic names', o.topics);
  }
  const topics = [...new Set(o.topics ?? [])];
  let assignment: PartitionAssignment[] | undefined;
  if (o.assignment !== undefined) {
    if (!Array.isArray(o.assignment) || o.assignment.length === 0) throw invalidSetting('consumer.assignment', 'must be a non-empty list', o.assignment);
    if (topics.length > 0) throw invalidSetting('consumer.assignment', 'cannot be combined with consumer.topics', o.assignment);
    assignment = o.assignment.map((a, i) => {
      stringSetting(`consumer.assignment[${i}].topic`, a?.topic, '');
      intSetting(`consumer.assignment[${i}].partition`, a.partition, 0, 0);
      if (a.partition === undefined) throw invalidSetting(`consumer.assignment[${i}].partition`, 'is required', a);
      if (a.offset !== undefined) intSetting(`consumer.assignment[${i}].offset`, a.offset, 0, 0);
      return { ...a };
    });
  } else if (topics.length === 0) {
    throw invalidSetting('consumer.topics', 'give topics or an assignment', o.topics);
  }
  const autoCommit = boolSetting('consumer.autoCommit', o.autoCommit, groupId !== undefined);
  if (autoCommit && groupId === undefined) throw invalidSetting('consumer.autoCommit', 'needs consumer.groupId to commit to', true);
  const maxBytes = intSetting('consumer.maxBytes', o.maxBytes, 8 * 1024 * 1024, 1024, 64 * 1024 * 1024);
  return {
    groupId,
    topics,
    assignment,
    fromBeginning: boolSetting('consumer.fromBeginning', o.fromBeginning, false),
    autoCommit,
    autoCommitIntervalMs: intSetting('consumer.autoCommitIntervalMs', o.autoCommitIntervalMs, 1_000, 10),
    maxBytes,
    maxBytesPerPartition: intSetting('consumer.maxBytesPerPartition', o.maxBytesPerPartition, Math.min(maxBytes, 4 * 1024 * 1024), 1024, maxBytes),
    maxWaitMs: intSetting('consumer.maxWaitMs', o.maxWaitMs, 500, 0, 60_000),
    sessionTimeoutMs: intSetting('consumer.sessionTimeoutMs', o.sessionTimeoutMs, 10_000, 1_000, 600_000),
    resetOnOutOfRange: boolSetting('consumer.resetOnOutOfRange', o.resetOnOutOfRange, true),
  };
}
