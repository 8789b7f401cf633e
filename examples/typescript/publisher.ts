// Example app, publishing side: sends --count messages to a topic through the kmq
// sidecar's gRPC API and prints where the broker stored each one.
//
//   node dist/examples/typescript/publisher.js --topic greetings --count 3 [--sidecar 127.0.0.1:50051]
import { parseArgs } from 'node:util';
import { credentials } from '@grpc/grpc-js';
import { SidecarClient } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import type { PublishRequest, PublishResponse } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';

const { values } = parseArgs({
  options: {
    sidecar: { type: 'string', default: '127.0.0.1:50051' },
    topic: { type: 'string', default: 'greetings' },
    count: { type: 'string', default: '3' },
  },
});

const sidecar = new SidecarClient(values.sidecar, credentials.createInsecure());

function publish(req: PublishRequest): Promise<PublishResponse> {
  return new Promise((resolve, reject) => sidecar.publish(req, (err, res) => (err === null ? resolve(res) : reject(err))));
}

try {
  const count = Number(values.count);
  for (let i = 1; i <= count; i++) {
    const payload = `hello ${i}`;
    // One key for all: the messages land in one partition, so the consumer sees them in order.
    const res = await publish({ destination: { topic: values.topic }, key: Buffer.from('example'), payload: Buffer.from(payload), headers: { 'content-type': 'text/plain' } });
    const at = res.placements[0];
    console.log(`published "${payload}" to ${values.topic} partition ${at?.partition} offset ${at?.offset} (idempotency key ${res.idempotencyKey})`);
  }
} catch (err) {
  console.error(`publish failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  sidecar.close();
}
