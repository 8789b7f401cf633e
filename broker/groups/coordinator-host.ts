import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { CompactedStore } from '../partition/compacted-store.js';
import type { Partition } from '../partition/partition.js';
import type { GroupCoordinator } from './group-coordinator.js';

/**
 * Where this broker's consumer-group coordinator lives. On a single node it is
 * always here. In a cluster it runs only on the broker that leads partition 0 of
 * `__consumer_offsets` (Kafka's design with one coordinator partition): the
 * committed offsets are that partition's records, replicated like any other, so a
 * new leader loads them and takes over; members rejoin it (their old member ids
 * are unknown there) and resume from the committed offsets.
 */
export class GroupCoordinatorHost {
  private active: GroupCoordinator | undefined;
  private partition: Partition | undefined;
  private elsewhere = 'the group coordinator is starting';

  constructor(
    private readonly make: (store: CompactedStore) => GroupCoordinator,
    private readonly maxMessageBytes: number,
    private readonly logger: Logger,
  ) {}

  /** The coordinator; NotLeader (retriable) naming where it is when this broker does not host it. */
  get(): GroupCoordinator {
    if (this.active !== undefined) return this.active;
    throw new KmqError(ErrorCode.NotLeader, `This broker is not the group coordinator: ${this.elsewhere}`);
  }

  /** The coordinator if this broker hosts it (timers, metrics). */
  current(): GroupCoordinator | undefined {
    return this.active;
  }

  /** Hosts the coordinator on `partition` (this broker leads it); loads the committed offsets. */
  async lead(partition: Partition): Promise<void> {
    if (this.partition === partition && this.active !== undefined) return;
    const coordinator = this.make(new CompactedStore(partition, this.maxMessageBytes));
    this.active = coordinator;
    this.partition = partition;
    this.logger.info({ topic: partition.topic, partition: partition.index }, 'Hosting the group coordinator');
    await coordinator.start();
  }

  /** Stops hosting it: `where` says who does (for the error clients get). */
  resign(where: string): void {
    this.elsewhere = where;
    if (this.active === undefined) return;
    this.active = undefined;
    this.partition = undefined;
    this.logger.info({ where }, 'No longer hosting the group coordinator');
  }
}
