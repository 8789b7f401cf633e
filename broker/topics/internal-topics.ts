import type { TopicOverrides } from '../cluster/metadata-store.js';

/** Committed offsets of consumer groups; in a cluster its partition 0 leader hosts the group coordinator. */
export const OFFSETS_TOPIC = '__consumer_offsets';
export const SHARE_STATE_TOPIC = '__share_state';
export const PROCESSED_KEYS_TOPIC = '__processed_keys';

/** Committed offsets: compacted, kept forever. */
export const OFFSETS_TOPIC_CONFIG: TopicOverrides = { cleanupPolicy: 'compact', retentionMs: -1, segmentBytes: 16 * 1024 * 1024 };

/** Processed keys: every record carries its absolute expiry, so a tombstone only helps compaction: it may go after an hour. */
export const PROCESSED_KEYS_TOPIC_CONFIG: TopicOverrides = { cleanupPolicy: 'compact', retentionMs: 3_600_000, segmentBytes: 16 * 1024 * 1024 };
