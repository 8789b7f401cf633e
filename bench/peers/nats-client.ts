/** NATS JetStream through nats.js (@nats-io/transport-node, @nats-io/jetstream). */
import { connect, createInbox } from '@nats-io/transport-node';
import { AckPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { PeerClient, SendCall } from './peer-client.js';
import { asBuffer } from './peer-client.js';

/** The durable consumer every work-queue consumer process pulls from. */
const WORKERS = 'workers';

export async function openNatsClient(address: string): Promise<PeerClient> {
  const nc = await connect({ servers: address, maxReconnectAttempts: 0 });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const addStream = async (name: string, partitions: number, retention: RetentionPolicy): Promise<void> => {
    if (partitions > 1) throw new Error('A JetStream stream has no partitions');
    await jsm.streams.add({ name, subjects: [name], storage: StorageType.File, retention, num_replicas: 1 });
  };
  return {
    createLog: (name, partitions) => addStream(name, partitions, RetentionPolicy.Limits),
    async createQueue(name) {
      await addStream(name, 1, RetentionPolicy.Workqueue);
      await jsm.consumers.add(name, { durable_name: WORKERS, ack_policy: AckPolicy.Explicit, max_ack_pending: 100_000, ack_wait: 30_000_000_000 });
    },
    async remove(name) {
      await jsm.streams.delete(name).catch(() => undefined);
    },
    async sender(name): Promise<SendCall> {
      // JetStream publish as the Go client's PublishAsync does it: a core publish with a
      // reply subject per call, the stream's PubAck for every message arriving on one
      // inbox subscription. (js.publish() makes a request, timer included, per message,
      // and stays near 14,000 msg/s here whatever the number in flight.)
      const inbox = createInbox();
      const calls = new Map<string, { left: number; resolve: () => void; reject: (e: Error) => void }>();
      nc.subscribe(`${inbox}.*`, {
        callback: (_err, m) => {
          const id = m.subject.slice(inbox.length + 1);
          const call = calls.get(id);
          if (call === undefined) return;
          if (m.string().includes('"error"')) {
            calls.delete(id);
            call.reject(new Error(`JetStream publish failed: ${m.string()}`));
            return;
          }
          if (--call.left === 0) {
            calls.delete(id);
            call.resolve();
          }
        },
      });
      await nc.flush();
      let next = 0;
      return (values) =>
        new Promise<void>((resolve, reject) => {
          const id = String(next++);
          calls.set(id, { left: values.length, resolve, reject });
          const reply = `${inbox}.${id}`;
          for (const v of values) nc.publish(name, v, { reply });
        });
    },
    async subscribe(name, _partitions, onValues) {
      // An ordered consumer: no acks, the client's own flow control.
      const consumer = await js.consumers.get(name);
      const messages = await consumer.consume({ max_messages: 1000 });
      void (async () => {
        for await (const m of messages) onValues([asBuffer(m.data)]);
      })().catch(() => undefined);
    },
    async consumeQueue(name, prefetch, onMessage) {
      const consumer = await js.consumers.get(name, WORKERS);
      const messages = await consumer.consume({ max_messages: prefetch });
      void (async () => {
        for await (const m of messages) onMessage(asBuffer(m.data), () => m.ack());
      })().catch(() => undefined);
    },
    async close() {
      await nc.close().catch(() => undefined);
    },
  };
}
