/**
 * What the comparison's workers need of each system, behind one interface so that
 * every system runs the same workload code with the same batching rules: a call of
 * values goes to the client at once and resolves when every value is acknowledged.
 */

/**
 * The systems of the comparison (RabbitMQ once per queue type). kafka-java is the
 * Kafka broker driven by Kafka's own Java perf tool (ProducerPerformance) instead of
 * a Node client: produce only; its admin client is kafkajs. kmq-sidecar is the kmq
 * broker reached through a `kmq sidecar` process over gRPC (PublishStream, Consume):
 * produce and e2e on 1 partition; its admin client is kmq's.
 */
export const SYSTEMS = ['kmq', 'kmq-sidecar', 'kafka', 'kafka-java', 'rabbitmq-classic', 'rabbitmq-quorum', 'nats', 'redis'] as const;
export type SystemId = (typeof SYSTEMS)[number];

/** Sends one call of values; resolves once the server acknowledged every one of them. */
export type SendCall = (values: Buffer[]) => Promise<void>;

/** One client of one system. */
export interface PeerClient {
  /** An empty log (topic, stream, durable queue) named `name` of `partitions`; throws when the system has no partitions and `partitions` > 1. */
  createLog(name: string, partitions: number): Promise<void>;
  /** An empty work queue with one shared consumer group that every queue consumer joins. */
  createQueue(name: string): Promise<void>;
  /** Removes a log or queue made by createLog/createQueue, if it exists. */
  remove(name: string): Promise<void>;
  /** A sender to a log (`kind` log) or work queue (`kind` queue); the client sends each call at once, without lingering for more. */
  sender(name: string, kind: 'log' | 'queue'): Promise<SendCall>;
  /** Reads the log from its start (it is empty when this is called), without acks or commits; resolves once reading. */
  subscribe(name: string, partitions: number, onValues: (values: Buffer[]) => void): Promise<void>;
  /** Joins the queue's consumer group, `prefetch` messages held at most; `ack` acknowledges that one message. Resolves once consuming. */
  consumeQueue(name: string, prefetch: number, onMessage: (value: Buffer, ack: () => void) => void): Promise<void>;
  close(): Promise<void>;
}

/** Opens a client of `system` at host:port; each client library is loaded only when used. */
export async function openClient(system: SystemId, address: string): Promise<PeerClient> {
  switch (system) {
    case 'kmq':
    case 'kmq-sidecar':
      return (await import('./kmq-client.js')).openKmqClient(address);
    case 'kafka':
    case 'kafka-java':
      return (await import('./kafka-client.js')).openKafkaClient(address);
    case 'rabbitmq-classic':
      return (await import('./rabbitmq-client.js')).openRabbitmqClient(address, 'classic');
    case 'rabbitmq-quorum':
      return (await import('./rabbitmq-client.js')).openRabbitmqClient(address, 'quorum');
    case 'nats':
      return (await import('./nats-client.js')).openNatsClient(address);
    case 'redis':
      return (await import('./redis-client.js')).openRedisClient(address);
  }
}

/** A Buffer over the same memory as `u` (no copy). */
export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}
