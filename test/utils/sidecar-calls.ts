import type { DecodedRecord, KmqClient } from '../../client/index.js';
import type { PublishRequest, PublishResponse, SidecarClient } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';

/** A unary Publish through a sidecar's generated client; unset fields get their defaults. */
export function publishVia(client: SidecarClient, req: Partial<PublishRequest>): Promise<PublishResponse> {
  const full: PublishRequest = { destination: undefined, payload: Buffer.alloc(0), headers: {}, ...req };
  return new Promise((resolve, reject) => client.publish(full, (err, res) => (err === null ? resolve(res) : reject(err))));
}

/** Polls `check` every 20 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The first `count` records of partition 0 of a topic, read with a manual assignment. */
export async function readPartitionZero(admin: KmqClient, topic: string, count: number): Promise<DecodedRecord[]> {
  const c = admin.consumer({ assignment: [{ topic, partition: 0, offset: 0 }] });
  const out: DecodedRecord[] = [];
  try {
    for await (const b of c.batches()) {
      out.push(...b.records);
      if (out.length >= count) break;
    }
  } finally {
    await c.close();
  }
  return out;
}

/** The first value of a record header, as text. */
export const recordHeader = (r: DecodedRecord, key: string): string | undefined => r.headers.find((h) => h.key === key)?.value?.toString();
