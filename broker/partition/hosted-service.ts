import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { CompactedStore } from './compacted-store.js';
import type { Partition } from './partition.js';

/** A service whose state is the journal on one internal partition. */
export interface JournaledService {
  /** Loads the state from the journal; the service refuses requests until it resolves. */
  start(): Promise<void>;
}

/**
 * Where a broker service that keeps its state in an internal compacted
 * partition runs (the consumer-group coordinator on `__consumer_offsets`, the
 * processed-key store on `__processed_keys`). On a single node it is always
 * here. In a cluster it runs only on the broker that leads that partition
 * (Kafka's coordinator design): the journal is replicated like any partition, so
 * a new leader loads it and takes over; elsewhere requests get a retriable
 * NotLeader and clients look the leader up again.
 */
export class HostedService<T extends JournaledService> {
  private active: T | undefined;
  private partition: Partition | undefined;
  private elsewhere = 'it is starting';

  constructor(
    /** What the service is, for errors and logs ("group coordinator"). */
    readonly what: string,
    private readonly make: (store: CompactedStore) => T,
    private readonly maxMessageBytes: number,
    private readonly logger: Logger,
    /** Called when a request finds the service absent (a cluster creates its internal topic on first use). */
    private readonly whenAbsent: () => void = () => undefined,
  ) {}

  /** The service; NotLeader (retriable) naming where it runs when this broker does not host it. */
  get(): T {
    if (this.active !== undefined) return this.active;
    this.whenAbsent();
    throw new KmqError(ErrorCode.NotLeader, `This broker does not host the ${this.what}: ${this.elsewhere}`);
  }

  /** The service if this broker hosts it (timers, metrics). */
  current(): T | undefined {
    return this.active;
  }

  /** Hosts the service on `partition` (this broker leads it) and loads its state. */
  async lead(partition: Partition): Promise<void> {
    if (this.partition === partition && this.active !== undefined) return;
    const service = this.make(new CompactedStore(partition, this.maxMessageBytes));
    this.active = service;
    this.partition = partition;
    this.logger.info({ topic: partition.topic, partition: partition.index }, `Hosting the ${this.what}`);
    await service.start();
  }

  /** Stops hosting it; `where` says who does (for the error clients get). */
  resign(where: string): void {
    this.elsewhere = where;
    if (this.active === undefined) return;
    this.active = undefined;
    this.partition = undefined;
    this.logger.info({ where }, `No longer hosting the ${this.what}`);
  }
}
