/**
 * The floor under the sidecar's added latency: one hop between two processes on
 * this machine at a fixed rate, over a raw TCP socket (the broker protocol's kind
 * of hop) and over a gRPC stream (@grpc/grpc-js, the kind the sidecar path adds
 * twice: app → sidecar and sidecar → app). Nothing is done with the messages
 * but timing them: each starts with its send time (float64 LE, wall-clock ms).
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Server, ServerCredentials, credentials, makeGenericClientConstructor } from '@grpc/grpc-js';
import type { ServerDuplexStream, ServiceDefinition } from '@grpc/grpc-js';
import type { LatencyResult } from './bench-config.js';
import { wallClockMs } from './bench-config.js';
import { cpuSince, latencySummary } from './measure.js';

export type HopKind = 'tcp' | 'grpc';

export interface HopSinkConfig {
  kind: HopKind;
  messages: number;
  messageBytes: number;
  warmupMessages: number;
  timeoutMs: number;
}

export interface HopSourceConfig {
  kind: HopKind;
  port: number;
  messages: number;
  messageBytes: number;
  ratePerSec: number;
}

const identity = (b: Buffer): Buffer => b;
/** One bidirectional method carrying raw bytes: no codec cost in the figure beyond gRPC's own framing. */
const HOP_SERVICE: ServiceDefinition = {
  send: {
    path: '/kmq.bench.Hop/Send',
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** Receives `messages` messages on one connection (reported via `onListening`) and times each. */
export function hopSink(c: HopSinkConfig, onListening: (port: number) => void): Promise<LatencyResult> {
  return new Promise((resolve, reject) => {
    const latencies = new Float64Array(c.messages);
    let received = 0;
    let measured = 0;
    let cpu = process.cpuUsage();
    let t0 = 0;
    let close = (): void => {};
    const timer = setTimeout(() => {
      close();
      reject(new Error(`hop ${c.kind}: ${received} of ${c.messages} messages in ${c.timeoutMs} ms`));
    }, c.timeoutMs);
    const onMessage = (m: Buffer): void => {
      const now = wallClockMs();
      if (received === 0) {
        t0 = performance.now();
        cpu = process.cpuUsage();
      }
      if (received++ >= c.warmupMessages) latencies[measured++] = now - m.readDoubleLE(0);
      if (received === c.messages) {
        clearTimeout(timer);
        const elapsedMs = performance.now() - t0;
        close();
        resolve({ records: received, measured, elapsedMs, ...latencySummary(latencies, measured), ...cpuSince(cpu) });
      }
    };
    if (c.kind === 'tcp') {
      const server = net.createServer((sock) => {
        sock.setNoDelay(true);
        let pending: Buffer = Buffer.alloc(0);
        sock.on('data', (d: Buffer) => {
          pending = pending.length === 0 ? d : Buffer.concat([pending, d]);
          let at = 0;
          while (pending.length - at >= c.messageBytes) {
            onMessage(pending.subarray(at, at + c.messageBytes));
            at += c.messageBytes;
          }
          pending = pending.subarray(at);
        });
        sock.on('error', () => {});
      });
      close = () => server.close();
      server.on('error', reject);
      server.listen(0, '127.0.0.1', () => onListening((server.address() as net.AddressInfo).port));
      return;
    }
    const server = new Server();
    server.addService(HOP_SERVICE, {
      send: (call: ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', onMessage);
        call.on('error', () => {});
      },
    });
    close = () => server.forceShutdown();
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : onListening(port)));
  });
}

/** Sends `messages` messages at `ratePerSec` (each when due, checked every 1 ms, as the latency workloads do). */
export async function hopSource(c: HopSourceConfig): Promise<{ messages: number }> {
  let write: (b: Buffer) => void;
  let close: () => void;
  if (c.kind === 'tcp') {
    const sock = net.connect(c.port, '127.0.0.1');
    sock.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    write = (b) => sock.write(b);
    close = () => sock.end();
  } else {
    const Client = makeGenericClientConstructor(HOP_SERVICE, 'Hop');
    const client = new Client(`127.0.0.1:${c.port}`, credentials.createInsecure());
    const call = client.makeBidiStreamRequest<Buffer, Buffer>(HOP_SERVICE.send!.path, identity, identity);
    call.on('error', () => {});
    write = (b) => call.write(b);
    close = () => {
      call.end();
      client.close();
    };
  }
  const t0 = performance.now();
  let sent = 0;
  while (sent < c.messages) {
    const due = Math.min(c.messages, Math.floor(((performance.now() - t0) * c.ratePerSec) / 1000));
    while (sent < due) {
      const b = Buffer.alloc(c.messageBytes);
      b.writeDoubleLE(wallClockMs(), 0);
      write(b);
      sent++;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  // Let the last messages leave before the connection goes.
  await new Promise((resolve) => setTimeout(resolve, 200));
  close();
  return { messages: sent };
}
