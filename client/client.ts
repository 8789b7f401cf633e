import type { Logger } from '../lib/logger.js';
import { Admin } from './admin.js';
import { Cluster } from './cluster.js';
import { Consumer } from './consumer.js';
import { compileConsumerOptions } from './consumer-options.js';
import type { ConsumerOptions } from './consumer-options.js';
import { compileClientOptions } from './options.js';
import type { ClientOptions, CompiledClientOptions } from './options.js';
import { Producer } from './producer.js';
import { Publisher } from './publisher.js';
import type { PublisherOptions } from './publisher.js';
import { BrokerProcessedKeyStore } from './processed-keys.js';
import { QueueConsumer, compileQueueConsumerOptions } from './queue-consumer.js';
import type { QueueConsumerOptions } from './queue-consumer.js';
import { compileProducerOptions } from './producer-options.js';
import type { ProducerOptions } from './producer-options.js';

/**
 * The entry point of the broker client. Options are validated here, once;
 * connections open lazily on first use. Producers, consumers and the admin share
 * the client's connections and metadata cache.
 */
export class KmqClient {
  readonly options: CompiledClientOptions;
  private readonly cluster: Cluster;
  private readonly log: Logger;
  private readonly producers = new Set<Producer>();
  private readonly consumers = new Set<Consumer>();
  private readonly queueConsumers = new Set<QueueConsumer>();
  private adminClient: Admin | undefined;

  constructor(options: ClientOptions = {}) {
    this.options = compileClientOptions(options);
    this.log = this.options.logger.child({ component: 'client', clientId: this.options.clientId });
    this.cluster = new Cluster({ ...this.options, logger: this.log });
  }

  producer(options: ProducerOptions = {}): Producer {
    const p = new Producer(this.cluster, compileProducerOptions(options, this.options.retry.retries), this.options.retry, this.log.child({ role: 'producer' }));
    this.producers.add(p);
    return p;
  }

  consumer(options: ConsumerOptions): Consumer {
    const compiled = compileConsumerOptions(options);
    const log = this.log.child(compiled.groupId === undefined ? { role: 'consumer' } : { role: 'consumer', group: compiled.groupId });
    const c = new Consumer(this.cluster, compiled, this.options.retry, log, this.options.clientId);
    this.consumers.add(c);
    return c;
  }

  /** Publishes to exchanges and queues. */
  publisher(options: PublisherOptions = {}): Publisher {
    return new Publisher(this.cluster, options);
  }

  /** A member of a queue's shared group (or of a topic's shared group with `group`). */
  queueConsumer(options: QueueConsumerOptions): QueueConsumer {
    const compiled = compileQueueConsumerOptions(options);
    const log = this.log.child({ role: 'queue-consumer', queue: compiled.queue, ...(compiled.group === '' ? {} : { group: compiled.group }) });
    const { connectTimeoutMs, requestTimeoutMs, maxFrameBytes } = this.options;
    const c = new QueueConsumer(this.cluster, compiled, this.options.retry, log, { connectTimeoutMs, requestTimeoutMs, maxFrameBytes, logger: this.log });
    this.queueConsumers.add(c);
    return c;
  }

  /** The broker's processed-key store of one scope (a subscription name), for effectively-once consumers. */
  processedKeys(scope: string): BrokerProcessedKeyStore {
    return new BrokerProcessedKeyStore(this.cluster, scope);
  }

  admin(): Admin {
    this.adminClient ??= new Admin(this.cluster);
    return this.adminClient;
  }

  /** Closes consumers (committing, settling), flushes producers, then closes connections. */
  async close(): Promise<void> {
    await Promise.all([...this.consumers].map((c) => c.close()));
    await Promise.all([...this.queueConsumers].map((c) => c.close()));
    this.queueConsumers.clear();
    await Promise.all([...this.producers].map((p) => p.close()));
    this.consumers.clear();
    this.producers.clear();
    await this.cluster.close();
  }
}
