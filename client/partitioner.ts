import { partitionForKey } from './murmur2.js';

/**
 * Chooses a partition for records that name none. Keyed records hash with
 * Kafka's murmur2, so a key always maps to the same partition (for a fixed
 * partition count). Records without a key stick to one random partition until
 * the batch for it is sealed, then move on: batches fill up instead of each
 * partition getting a trickle (Kafka's sticky partitioner, KIP-480).
 */
export class Partitioner {
  private readonly sticky = new Map<string, number>();
  private readonly random: () => number;

  constructor(random: () => number = Math.random) {
    this.random = random;
  }

  partition(topic: string, key: Uint8Array | null | undefined, partitions: number): number {
    if (key !== null && key !== undefined) return partitionForKey(key, partitions);
    const current = this.sticky.get(topic);
    if (current !== undefined && current < partitions) return current;
    const chosen = Math.floor(this.random() * partitions);
    this.sticky.set(topic, chosen);
    return chosen;
  }

  /** The batch for (topic, partition) was sealed: unkeyed records move to another partition. */
  batchSealed(topic: string, partition: number, partitions: number): void {
    if (this.sticky.get(topic) !== partition) return;
    if (partitions <= 1) return;
    let next = Math.floor(this.random() * (partitions - 1));
    if (next >= partition) next++;
    this.sticky.set(topic, next);
  }
}
