/**
 * CRC32C micro-benchmark: the native @node-rs/crc32 used by protocol/crc32c.ts against
 * a plain JavaScript table implementation (kept here only for the comparison), on
 * 100 B, 16 KiB and 1 MiB inputs.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/crc32c.js
 */
import { crc32c } from '../protocol/crc32c.js';

const TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

function crc32cTable(data: Uint8Array): number {
  let crc = -1;
  for (let i = 0; i < data.length; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

function measure(name: string, fn: (d: Buffer) => number, data: Buffer, minMs = 1000): void {
  let sink = 0;
  // Warm up, then time whole rounds until minMs has passed.
  for (let i = 0; i < 200; i++) sink ^= fn(data);
  const perRound = Math.max(1, Math.floor((1 << 22) / data.length));
  let calls = 0;
  const start = process.hrtime.bigint();
  let elapsedNs = 0;
  while (elapsedNs < minMs * 1e6) {
    for (let i = 0; i < perRound; i++) sink ^= fn(data);
    calls += perRound;
    elapsedNs = Number(process.hrtime.bigint() - start);
  }
  const mbps = (calls * data.length) / (elapsedNs / 1e9) / 1e6;
  const nsPerCall = elapsedNs / calls;
  console.log(`${name.padEnd(8)} ${String(data.length).padStart(8)} B  ${mbps.toFixed(0).padStart(7)} MB/s  ${nsPerCall.toFixed(0).padStart(9)} ns/call  (${sink & 1})`);
}

const sizes = [100, 16 * 1024, 1024 * 1024];
for (const size of sizes) {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 131 + 7) & 0xff;
  if (crc32c(data) !== crc32cTable(data)) throw new Error(`Implementations disagree on ${size} bytes`);
  measure('native', crc32c, data);
  measure('js-table', crc32cTable, data);
}
