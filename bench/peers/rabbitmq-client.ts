/** RabbitMQ through amqplib: durable queues, persistent messages, publisher confirms. */
import amqp from 'amqplib';
import type { ConfirmChannel } from 'amqplib';
import type { PeerClient, SendCall } from './peer-client.js';

export type RabbitQueueType = 'classic' | 'quorum';

export async function openRabbitmqClient(address: string, queueType: RabbitQueueType): Promise<PeerClient> {
  const conn = await amqp.connect(`amqp://guest:guest@${address}`);
  const admin = await conn.createChannel();
  const declare = async (name: string, partitions: number): Promise<void> => {
    if (partitions > 1) throw new Error('RabbitMQ queues have no partitions');
    await admin.assertQueue(name, { durable: true, arguments: { 'x-queue-type': queueType } });
  };
  return {
    createLog: declare,
    createQueue: (name) => declare(name, 1),
    async remove(name) {
      await admin.deleteQueue(name).catch(() => undefined);
    },
    async sender(name): Promise<SendCall> {
      const ch: ConfirmChannel = await conn.createConfirmChannel();
      return (values) =>
        new Promise<void>((resolve, reject) => {
          let left = values.length;
          let failed = false;
          const confirmed = (err: unknown): void => {
            if (failed) return;
            if (err !== null && err !== undefined) {
              failed = true;
              reject(err instanceof Error ? err : new Error(String(err)));
              return;
            }
            if (--left === 0) resolve();
          };
          // Through the default exchange straight to the queue; persistent, confirmed once the queue has it.
          for (const v of values) ch.publish('', name, v, { persistent: true }, confirmed);
        });
    },
    async subscribe(name, _partitions, onValues) {
      const ch = await conn.createChannel();
      // Automatic acknowledgement: a log reader that commits nothing.
      await ch.consume(name, (m) => m !== null && onValues([m.content]), { noAck: true });
    },
    async consumeQueue(name, prefetch, onMessage) {
      const ch = await conn.createChannel();
      await ch.prefetch(prefetch);
      await ch.consume(name, (m) => m !== null && onMessage(m.content, () => ch.ack(m)), { noAck: false });
    },
    async close() {
      await conn.close().catch(() => undefined);
    },
  };
}
