// Example app, consuming side: opens a Consume stream on a sidecar subscription,
// prints and acknowledges each delivery, and stops after --count messages (or
// fails after --timeout-ms without them).
//
//   node dist/examples/typescript/consumer.js --subscription greeter --count 3 [--sidecar 127.0.0.1:50051]
import { parseArgs } from 'node:util';
import { credentials } from '@grpc/grpc-js';
import type { StatusObject } from '@grpc/grpc-js';
import { SidecarClient } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import type { ConsumeResponse } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';

const { values } = parseArgs({
  options: {
    sidecar: { type: 'string', default: '127.0.0.1:50051' },
    subscription: { type: 'string', default: 'greeter' },
    count: { type: 'string', default: '3' },
    'timeout-ms': { type: 'string', default: '30000' },
  },
});

const want = Number(values.count);
const sidecar = new SidecarClient(values.sidecar, credentials.createInsecure());
const stream = sidecar.consume();
let received = 0;

const timer = setTimeout(() => {
  console.error(`timed out after ${values['timeout-ms']} ms with ${received} of ${want} messages`);
  process.exitCode = 1;
  stream.cancel();
}, Number(values['timeout-ms']));

stream.on('data', (r: ConsumeResponse) => {
  if (r.started !== undefined) {
    console.log(`consuming ${r.started.subscription} (max in flight ${r.started.maxInFlight})`);
    return;
  }
  const d = r.delivery;
  if (d === undefined) return;
  const from = d.source?.topic ?? d.source?.queue;
  console.log(`received "${d.payload.toString()}" from ${from} partition ${d.source?.partition} offset ${d.source?.offset} attempt ${d.attempt}`);
  // Settle every delivery: ack when handled (retry / deadLetter otherwise).
  stream.write({ ack: { deliveryId: d.deliveryId } });
  received++;
  if (received === want) {
    clearTimeout(timer);
    // Ending our side lets the sidecar finish the acks sent, then close the stream with OK.
    stream.end();
  }
});
// A failed stream also reports its status; the handler below prints it.
stream.on('error', () => {});
stream.on('status', (s: StatusObject) => {
  clearTimeout(timer);
  if (s.code !== 0 && process.exitCode === undefined) {
    console.error(`Consume ended with status ${s.code}: ${s.details}`);
    process.exitCode = 1;
  }
  if (process.exitCode === undefined) console.log(`done: ${received} messages acknowledged`);
  sidecar.close();
});
stream.write({ start: { subscription: values.subscription, maxInFlight: 0 } });
