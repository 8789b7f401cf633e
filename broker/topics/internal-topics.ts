import type { TopicOverrides } from '../cluster/metadata-store.js';

import { OFFSETS_TOPIC, PROCESSED_KEYS_TOPIC, SHARE_STATE_TOPIC } from '../../protocol/well-known.js';

export { OFFSETS_TOPIC, PROCESSED_KEYS_TOPIC, SHARE_STATE_TOPIC };

/** Queue and shared-group state: compacted, kept forever. */
export const SHARE_STATE_TOPIC_CONFIG: TopicOverrides = { cleanupPolicy: 'compact', retentionMs: -1, segmentBytes: 16 * 1024 * 1024 };

/** Committed offsets: compacted, kept forever. */
export const OFFSETS_TOPIC_CONFIG: TopicOverrides = { cleanupPolicy: 'compact', retentionMs: -1, segmentBytes: 16 * 1024 * 1024 };

/** Processed keys: every record carries its absolute expiry, so a tombstone only helps compaction: it may go after an hour. */
export const PROCESSED_KEYS_TOPIC_CONFIG: TopicOverrides = { cleanupPolicy: 'compact', retentionMs: 3_600_000, segmentBytes: 16 * 1024 * 1024 };
