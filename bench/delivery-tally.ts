/**
 * Exactly-once check of the queue workload: adds up how often each consumer acked
 * each sequence number (one saturating byte per message, as the consumers report it).
 */

export interface DeliveryTally {
  /** Sequence numbers acked at least once. */
  unique: number;
  /** Acks beyond the first of a sequence number, over all consumers. */
  duplicates: number;
  /** Sequence numbers nobody acked. */
  missing: number;
}

export function tallyDeliveries(messages: number, countsBase64: readonly string[]): DeliveryTally {
  const total = new Uint32Array(messages);
  for (const b64 of countsBase64) {
    const counts = Buffer.from(b64, 'base64');
    const n = Math.min(messages, counts.length);
    for (let i = 0; i < n; i++) total[i]! += counts[i]!;
  }
  let unique = 0;
  let duplicates = 0;
  for (let i = 0; i < messages; i++) {
    const c = total[i]!;
    if (c > 0) {
      unique++;
      duplicates += c - 1;
    }
  }
  return { unique, duplicates, missing: messages - unique };
}
