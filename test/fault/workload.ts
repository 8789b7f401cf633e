import type { KmqClient, Producer } from '../../client/index.js';
import { toKmqError } from '../../lib/errors.js';
import type { AckedRecord } from './checker.js';
import { valueOf } from './checker.js';

/**
 * An idempotent acks=all producer writing `v-<seq>` values in sequence order,
 * keyed over 16 keys, with up to `inFlight` send calls of `perCall` records
 * outstanding. Records whose send resolved are acknowledged; a send that failed
 * for good is counted and its records are indeterminate.
 */
export class ProduceWorkload {
  readonly acked: AckedRecord[] = [];
  sent = 0;
  failedSends = 0;
  readonly errors = new Map<string, number>();
  private stopped = false;
  private readonly producer: Producer;
  private loop: Promise<void> | undefined;

  constructor(
    client: KmqClient,
    private readonly topic: string,
    private readonly perCall = 10,
    private readonly inFlight = 8,
  ) {
    this.producer = client.producer({ acks: 'all', idempotent: true, lingerMs: 2 });
  }

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const pending = new Set<Promise<void>>();
    while (!this.stopped) {
      const first = this.sent;
      const records = Array.from({ length: this.perCall }, (_, i) => ({ key: `k-${(first + i) % 16}`, value: valueOf(first + i) }));
      this.sent += records.length;
      const p: Promise<void> = this.producer.send(this.topic, records).then(
        (mds) => {
          mds.forEach((md, i) => this.acked.push({ seq: first + i, partition: md.partition, offset: md.offset }));
        },
        (err: unknown) => {
          this.failedSends += records.length;
          const code = toKmqError(err).code;
          this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
        },
      );
      pending.add(p);
      void p.finally(() => pending.delete(p));
      if (pending.size >= this.inFlight) await Promise.race(pending);
      else await new Promise((r) => setImmediate(r));
    }
    await Promise.all(pending);
  }

  /** Stops sending and waits for every outstanding call to settle. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.producer.close().catch(() => undefined);
  }
}
