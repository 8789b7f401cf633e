/** Apache Kafka through kafkajs (pure JavaScript; no native library to build). */
import { randomUUID } from 'node:crypto';
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import type { Consumer, Producer } from 'kafkajs';
import type { PeerClient, SendCall } from './peer-client.js';

export async function openKafkaClient(address: string): Promise<PeerClient> {
  const kafka = new Kafka({ clientId: 'bench-compare', brokers: [address], logLevel: logLevel.ERROR, retry: { retries: 2 } });
  const admin = kafka.admin();
  await admin.connect();
  const producers: Producer[] = [];
  const consumers: Consumer[] = [];
  return {
    async createLog(name, partitions) {
      await admin.createTopics({ topics: [{ topic: name, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true });
    },
    createQueue() {
      return Promise.reject(new Error('Kafka has no work queue in kafkajs (share groups, KIP-932, need the Java client)'));
    },
    async remove(name) {
      await admin.deleteTopics({ topics: [name] }).catch(() => undefined);
    },
    async sender(name): Promise<SendCall> {
      // acks=1 (leader), not idempotent: kafkajs allows idempotence only with one request in flight.
      const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false });
      await producer.connect();
      producers.push(producer);
      return async (values) => {
        await producer.send({ topic: name, acks: 1, compression: CompressionTypes.None, messages: values.map((value) => ({ value })) });
      };
    },
    async subscribe(name, _partitions, onValues) {
      const consumer = kafka.consumer({ groupId: `bench-${randomUUID()}`, maxWaitTimeInMs: 500, minBytes: 1 });
      consumers.push(consumer);
      await consumer.connect();
      await consumer.subscribe({ topic: name, fromBeginning: true });
      const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const values: Buffer[] = [];
          for (const m of batch.messages) if (m.value !== null) values.push(m.value);
          onValues(values);
        },
      });
      await joined;
    },
    consumeQueue() {
      return Promise.reject(new Error('Kafka has no work queue in kafkajs'));
    },
    async close() {
      for (const c of consumers) await c.disconnect().catch(() => undefined);
      for (const p of producers) await p.disconnect().catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
    },
  };
}
