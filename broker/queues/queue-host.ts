import type { Logger } from '../../lib/logger.js';
import type { CompactedStore } from '../partition/compacted-store.js';
import type { JournaledService } from '../partition/hosted-service.js';
import { SharedGroupCoordinator } from '../groups/shared/shared-group-coordinator.js';
import { ExchangeRegistry } from '../routing/exchange-registry.js';
import type { RoutingStore } from '../routing/exchange-types.js';
import { PublishDedupe } from '../idempotency/publish-dedupe.js';
import type { DedupeSource } from '../idempotency/publish-dedupe.js';
import type { TopicManager } from '../topics/topic-manager.js';
import { QueueService } from './queue-service.js';
import type { QueueCatalog } from './queue-service.js';

/** What every term of the queue host shares: the broker's topics and its settings. */
export interface QueueHostDeps {
  topics: TopicManager;
  /** Where exchanges and bindings are kept: the broker's metadata, or the cluster's store. */
  routing: RoutingStore;
  /** The publish dedupe window and its bound on keys (broker options). */
  dedupe: { windowMs: number; maxEntries: number };
  /** Queue creation and deletion; the broker's own topics when undefined. */
  catalog?: QueueCatalog;
  logger: Logger;
}

/**
 * Queues, shared groups and exchanges as one service whose state is the journal of
 * `__share_state` partition 0 (HostedService): on a single node it is always here;
 * in a cluster it runs on the broker leading that partition, whose queue partitions
 * the controller keeps led by the same broker, so every queue operation is local.
 * A new host loads the journal, the exchanges and the publish dedupe keys afresh.
 */
export class QueueHost implements JournaledService {
  readonly shared: SharedGroupCoordinator;
  readonly exchanges: ExchangeRegistry;
  readonly queues: QueueService;
  /** Publish dedupe keys: memory only, rebuilt from the queue logs by each new host. */
  readonly dedupe: PublishDedupe;

  constructor(
    journal: CompactedStore,
    private readonly deps: QueueHostDeps,
  ) {
    this.shared = new SharedGroupCoordinator({
      logger: deps.logger.child({ component: 'shared-groups' }),
      journal: { append: (entries) => journal.appendMany(entries), load: () => journal.load() },
    });
    const topics = deps.topics;
    this.dedupe = new PublishDedupe(deps.dedupe);
    this.exchanges = new ExchangeRegistry(deps.routing, (d) => topics.has(d.name) && (topics.get(d.name).record.queue !== undefined) === (d.kind === 'queue'));
    this.queues = new QueueService(topics, this.shared, this.exchanges, deps.logger.child({ component: 'queues' }), Date.now, this.dedupe, deps.catalog);
  }

  async start(): Promise<void> {
    await this.exchanges.start();
    await this.shared.start();
    const rebuilt = this.dedupe.rebuild(publishDestinations(this.deps.topics, this.exchanges));
    if (rebuilt > 0) this.deps.logger.info({ keys: this.dedupe.size }, 'Publish dedupe keys reloaded');
    this.queues.start();
  }

  /** Expires locks, silent members and dedupe keys (every 100 ms). */
  tick(): void {
    this.queues.tick();
    this.dedupe.expire();
  }
}

/**
 * The partitions a publish can reach: every queue, and every topic an exchange routes
 * to (bound or alternate). Plain topics are fed by Produce, which publish dedupe does
 * not cover, so their logs are not read.
 */
function* publishDestinations(topics: TopicManager, exchanges: ExchangeRegistry): Iterable<DedupeSource> {
  const routed = new Set<string>();
  for (const e of exchanges.listExchanges()) {
    if (e.alternate !== undefined) routed.add(e.alternate.name);
    for (const b of e.bindings) routed.add(b.destination.name);
  }
  for (const t of topics.list(false)) {
    if (t.record.queue === undefined && !routed.has(t.record.name)) continue;
    for (const p of t.partitions) {
      yield {
        destination: t.record.name,
        partition: p.index,
        logEndOffset: p.logEndOffset,
        offsetForTimestamp: (ts) => p.offsetForTimestamp(ts),
        read: (offset, maxBytes) => p.read(offset, maxBytes),
      };
    }
  }
}
