/** Redis Streams through ioredis: XADD, XREAD, consumer groups with XREADGROUP and XACK. */
import { Redis } from 'ioredis';
import type { PeerClient, SendCall } from './peer-client.js';

/** The consumer group every work-queue consumer process joins. */
const GROUP = 'workers';
type StreamReply = Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;

export async function openRedisClient(address: string): Promise<PeerClient> {
  const [host, port] = address.split(':') as [string, string];
  const open = (): Redis => {
    const r = new Redis({ host, port: Number(port), maxRetriesPerRequest: 0, enableOfflineQueue: true });
    r.on('error', () => undefined);
    return r;
  };
  const cmd = open();
  const readers: Redis[] = [];
  let closed = false;
  /** Blocking reads need a connection of their own: every command behind one waits for it. */
  const readLoop = (read: (r: Redis) => Promise<StreamReply>, onEntry: (id: Buffer, fields: Buffer[]) => void): void => {
    const r = open();
    readers.push(r);
    void (async () => {
      while (!closed) {
        const reply = await read(r);
        if (reply === null) continue;
        for (const [, entries] of reply) for (const [id, fields] of entries) onEntry(id, fields);
      }
    })().catch(() => undefined);
  };
  return {
    async createLog(name, partitions) {
      if (partitions > 1) throw new Error('A Redis stream has no partitions');
      await cmd.del(name);
    },
    async createQueue(name) {
      await cmd.del(name);
      await cmd.xgroup('CREATE', name, GROUP, '$', 'MKSTREAM');
    },
    async remove(name) {
      await cmd.del(name);
    },
    async sender(name): Promise<SendCall> {
      // One pipeline per call: the XADDs of a call go out together, answered in order.
      return async (values) => {
        const p = cmd.pipeline();
        for (const v of values) p.xadd(name, '*', 'v', v);
        const res = await p.exec();
        const err = res?.find(([e]) => e !== null)?.[0];
        if (err) throw err;
      };
    },
    async subscribe(name, _partitions, onValues) {
      let last: Buffer | string = '0-0';
      readLoop(
        async (r) => {
          const reply = (await r.xreadBuffer('COUNT', 1000, 'BLOCK', 500, 'STREAMS', name, last)) as StreamReply;
          return reply;
        },
        (id, fields) => {
          last = id;
          onValues([fields[1]!]);
        },
      );
    },
    async consumeQueue(name, prefetch, onMessage) {
      const consumer = `c-${process.pid}`;
      readLoop(
        async (r) => (await r.xreadgroupBuffer('GROUP', GROUP, consumer, 'COUNT', prefetch, 'BLOCK', 500, 'STREAMS', name, '>')) as StreamReply,
        (id, fields) => onMessage(fields[1]!, () => void cmd.xack(name, GROUP, id).catch(() => undefined)),
      );
    },
    async close() {
      closed = true;
      for (const r of readers) r.disconnect();
      cmd.disconnect();
    },
  };
}
