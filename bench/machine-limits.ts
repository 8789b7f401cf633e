/**
 * What the machine itself can do, measured in the same run as the broker so the
 * broker's figures can be read as fractions of it: sequential write bandwidth of
 * the data folder's file system (with and without fdatasync) and loopback TCP
 * throughput between two processes. Each function runs in its own worker process.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { BandwidthResult, DiskConfig, TcpSourceConfig } from './bench-config.js';

/**
 * Writes `totalBytes` sequentially in `chunkBytes` writes to a new file in `dir`,
 * then removes it. Synchronous calls: nothing else runs in this process, and it
 * is the cost of the system calls that is measured.
 */
export function diskWrite(c: DiskConfig): BandwidthResult {
  const file = path.join(dir(c.dir), `disk-${process.pid}-${c.syncEachChunk ? 'sync' : 'nosync'}.bin`);
  const chunk = randomBytes(c.chunkBytes);
  const fd = fs.openSync(file, 'w');
  try {
    const t0 = performance.now();
    let written = 0;
    while (written < c.totalBytes) {
      let at = 0;
      while (at < chunk.length) at += fs.writeSync(fd, chunk, at, chunk.length - at);
      written += chunk.length;
      if (c.syncEachChunk) fs.fdatasyncSync(fd);
    }
    if (!c.syncEachChunk) fs.fdatasyncSync(fd);
    return { bytes: written, elapsedMs: performance.now() - t0 };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

function dir(d: string): string {
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/**
 * The receiving end of the loopback test: listens on a free port (reported via
 * `onListening`), counts bytes of one connection from its first byte to its end.
 */
export function tcpSink(onListening: (port: number) => void): Promise<BandwidthResult> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((sock) => {
      let bytes = 0;
      let t0 = -1;
      sock.on('data', (d: Buffer) => {
        if (t0 < 0) t0 = performance.now();
        bytes += d.length;
      });
      sock.on('end', () => {
        const elapsedMs = performance.now() - t0;
        sock.end();
        server.close();
        resolve({ bytes, elapsedMs });
      });
      sock.on('error', reject);
    });
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => onListening((server.address() as net.AddressInfo).port));
  });
}

/** The sending end: writes the same `chunkBytes` buffer as fast as the socket drains, for `durationMs`. */
export function tcpSource(c: TcpSourceConfig): Promise<BandwidthResult> {
  return new Promise((resolve, reject) => {
    const chunk = randomBytes(c.chunkBytes);
    const sock = net.connect(c.port, '127.0.0.1');
    sock.setNoDelay(true);
    let bytes = 0;
    let t0 = 0;
    const pump = (): void => {
      while (performance.now() - t0 < c.durationMs) {
        bytes += chunk.length;
        if (!sock.write(chunk)) {
          sock.once('drain', pump);
          return;
        }
      }
      sock.end();
    };
    sock.on('connect', () => {
      t0 = performance.now();
      pump();
    });
    sock.on('close', () => resolve({ bytes, elapsedMs: performance.now() - t0 }));
    sock.on('error', reject);
  });
}
