/**
 * Names and values both sides of the broker protocol agree on beyond the message
 * schemas.
 */

/** The broker id metadata gives a partition without a leader, or a cluster without a controller: no broker has it. */
export const NO_BROKER = 0xffffffff;

/** Committed offsets; the leader of its partition 0 hosts the group coordinator. */
export const OFFSETS_TOPIC = '__consumer_offsets';
/** Processed keys of effectively-once consumers; the leader of its partition 0 hosts the store. */
export const PROCESSED_KEYS_TOPIC = '__processed_keys';
/** Queue and shared-group state; the leader of its partition 0 hosts every queue and exchange. */
export const SHARE_STATE_TOPIC = '__share_state';
