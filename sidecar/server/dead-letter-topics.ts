import type { KmqClient, Producer, RecordHeader } from '../../client/index.js';
import { DeadLetterHeader } from './headers.js';

/** Where a dead-lettered record of an ordered subscription came from, and why. */
export interface DeadLetterOrigin {
  subscription: string;
  topic: string;
  partition: number;
  offset: number;
  attempts: number;
  reason: string;
  /** The failure history: first and last failure (ms since the epoch) and the last failure's reason. */
  history?: FailureHistory;
}

/** What a record's failed attempts came to, kept while it is retried. */
export interface FailureHistory {
  firstFailureAt: number;
  lastFailureAt: number;
  lastReason: string;
}

/**
 * Writes dead letters of ordered subscriptions to their dead-letter topics, and
 * retried records to their retry topics, creating a topic (1 partition) the first
 * time it is needed. A dead letter keeps its key, value and headers, plus
 * x-kmq-dlq-* headers naming its origin.
 */
export class DeadLetterTopics {
  private readonly ensured = new Map<string, Promise<void>>();
  private readonly producer: Producer;

  constructor(private readonly client: KmqClient) {
    this.producer = client.producer();
  }

  /** Resolves once the dead letter is stored. */
  async write(topic: string, record: { key: Buffer | null; value: Buffer | null; headers: readonly RecordHeader[] }, origin: DeadLetterOrigin): Promise<void> {
    await this.ensure(topic);
    const headers: RecordHeader[] = [
      ...record.headers,
      { key: DeadLetterHeader.subscription, value: Buffer.from(origin.subscription) },
      { key: DeadLetterHeader.sourceTopic, value: Buffer.from(origin.topic) },
      { key: DeadLetterHeader.sourcePartition, value: Buffer.from(String(origin.partition)) },
      { key: DeadLetterHeader.sourceOffset, value: Buffer.from(String(origin.offset)) },
      { key: DeadLetterHeader.attempts, value: Buffer.from(String(origin.attempts)) },
      { key: DeadLetterHeader.reason, value: Buffer.from(origin.reason) },
      { key: DeadLetterHeader.deadLetteredAt, value: Buffer.from(new Date().toISOString()) },
    ];
    const h = origin.history;
    if (h !== undefined) {
      headers.push(
        { key: DeadLetterHeader.firstFailureAt, value: Buffer.from(new Date(h.firstFailureAt).toISOString()) },
        { key: DeadLetterHeader.lastFailureAt, value: Buffer.from(new Date(h.lastFailureAt).toISOString()) },
        { key: DeadLetterHeader.lastFailureReason, value: Buffer.from(h.lastReason) },
      );
    }
    await this.producer.sendOne(topic, { key: record.key, value: record.value, headers });
  }

  /** Appends a record to `topic` (created when missing); resolves once it is stored. */
  async append(topic: string, record: { key: Buffer | null; value: Buffer | null; headers: RecordHeader[] }): Promise<void> {
    await this.ensure(topic);
    await this.producer.sendOne(topic, record);
  }

  /** Creates `topic` (1 partition) unless it exists; a failure is tried again by the next call. */
  ensure(topic: string): Promise<void> {
    let p = this.ensured.get(topic);
    if (p === undefined) {
      p = this.client.admin().createTopic(topic, { partitions: 1, ifNotExists: true });
      p.catch(() => this.ensured.delete(topic));
      this.ensured.set(topic, p);
    }
    return p;
  }
}
