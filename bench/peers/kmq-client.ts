/** kmq through its own client (client/), the same one applications use. */
import { KmqClient } from '../../client/index.js';
import type { Delivery } from '../../client/index.js';
import type { PeerClient, SendCall } from './peer-client.js';

/**
 * Producer settings of the comparison: acks from the leader, no idempotence (as
 * kafkajs, which allows it only with one request in flight), each call sealed and
 * sent at once (lingerMs 0), batches up to 1 MiB.
 */
export const KMQ_PRODUCER = { acks: 'leader', idempotent: false, lingerMs: 0, batchSizeBytes: 1024 * 1024, maxRequestBytes: 1024 * 1024 } as const;

export async function openKmqClient(address: string): Promise<PeerClient> {
  const client = new KmqClient({ brokers: [address], clientId: 'bench-compare' });
  const closers: Array<() => Promise<void>> = [];
  return {
    createLog: (name, partitions) => client.admin().createTopic(name, { partitions }),
    createQueue: (name) => client.admin().createQueue(name, { partitions: 1 }),
    async remove(name) {
      await client.admin().deleteTopic(name, { ifExists: true }).catch(() => undefined);
      await client.admin().deleteQueue(name, { ifExists: true }).catch(() => undefined);
    },
    async sender(name, kind): Promise<SendCall> {
      if (kind === 'queue') {
        const publisher = client.publisher();
        await client.admin().listQueues();
        return async (values) => {
          await publisher.publish({ queue: name }, values.map((value) => ({ value })));
        };
      }
      const producer = client.producer(KMQ_PRODUCER);
      closers.push(() => producer.close());
      return async (values) => {
        await producer.send(name, values.map((value) => ({ value })));
      };
    },
    async subscribe(name, partitions, onValues) {
      const assignment = [];
      for (let p = 0; p < partitions; p++) assignment.push({ topic: name, partition: p, offset: 0 });
      const consumer = client.consumer({ assignment, autoCommit: false, maxWaitMs: 500 });
      closers.push(() => consumer.close());
      await consumer.start();
      void (async () => {
        for await (const b of consumer.batches()) {
          const values: Buffer[] = [];
          for (const r of b.records) if (r.value !== null) values.push(r.value);
          onValues(values);
        }
      })().catch(() => undefined);
    },
    async consumeQueue(name, prefetch, onMessage) {
      const consumer = client.queueConsumer({ queue: name, prefetch, mode: 'push', onError: () => undefined });
      closers.push(() => consumer.close());
      consumer.start();
      void (async () => {
        for await (const d of consumer.deliveries() as AsyncIterable<Delivery>) onMessage(d.value ?? Buffer.alloc(0), () => void d.ack().catch(() => undefined));
      })().catch(() => undefined);
    },
    async close() {
      for (const c of closers) await c().catch(() => undefined);
      await client.close();
    },
  };
}
