/**
 * RecordBatch codec micro-benchmark: records/s to encode (BatchBuilder, encodeBatch)
 * and decode (decodeBatch, forEachRecord with and without CRC) batches of 1000
 * records, for 100 B and 1 KB values (no key, no headers), and for 100 B values with a
 * 16 B key and one header.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/codec.js [scenario label filter]
 */
import { BatchBuilder, decodeBatch, encodeBatch, forEachRecord } from '../protocol/record-batch.js';
import type { RecordHeader, RecordInput } from '../protocol/record-batch.js';

const RECORDS_PER_BATCH = 1000;
const only = process.argv[2];
const MIN_MS = 1500;

function measure(name: string, recordsPerCall: number, fn: () => number): void {
  let sink = 0;
  for (let i = 0; i < 50; i++) sink += fn();
  let calls = 0;
  const start = process.hrtime.bigint();
  let elapsedNs = 0;
  while (elapsedNs < MIN_MS * 1e6) {
    for (let i = 0; i < 20; i++) sink += fn();
    calls += 20;
    elapsedNs = Number(process.hrtime.bigint() - start);
  }
  const perSec = (calls * recordsPerCall) / (elapsedNs / 1e9);
  console.log(`  ${name.padEnd(30)} ${(perSec / 1e6).toFixed(2).padStart(6)} M records/s  ${(elapsedNs / calls / recordsPerCall).toFixed(0).padStart(5)} ns/record  (${sink % 10})`);
}

function scenario(label: string, valueBytes: number, key: Buffer | null, headers: RecordHeader[] | undefined): void {
  if (only !== undefined && !label.includes(only)) return;
  const value = Buffer.alloc(valueBytes, 0x61);
  const records: RecordInput[] = [];
  const ts = Date.now();
  for (let i = 0; i < RECORDS_PER_BATCH; i++) records.push({ key, value, headers, timestamp: ts + (i >> 4) });
  const batch = encodeBatch(records);
  console.log(`${label}: batch of ${RECORDS_PER_BATCH} records = ${batch.length} bytes`);

  measure('encode BatchBuilder.append', RECORDS_PER_BATCH, () => {
    const b = new BatchBuilder({ producerId: 7, producerEpoch: 0, baseSequence: 0 }, batch.length);
    for (let i = 0; i < RECORDS_PER_BATCH; i++) b.append(key, value, headers, ts + (i >> 4));
    return b.build().length;
  });
  measure('encode BatchBuilder (grows)', RECORDS_PER_BATCH, () => {
    const b = new BatchBuilder();
    for (let i = 0; i < RECORDS_PER_BATCH; i++) b.append(key, value, headers);
    return b.build().length;
  });
  measure('encode encodeBatch', RECORDS_PER_BATCH, () => encodeBatch(records).length);
  measure('decode decodeBatch', RECORDS_PER_BATCH, () => decodeBatch(batch).records.length);
  let n = 0;
  const count = (): void => {
    n++;
  };
  measure('decode forEachRecord', RECORDS_PER_BATCH, () => forEachRecord(batch, 0, count) + n);
  measure('decode forEachRecord, no CRC', RECORDS_PER_BATCH, () => forEachRecord(batch, 0, count, false) + n);
}

console.log(`Node ${process.version}, ${RECORDS_PER_BATCH} records per batch`);
scenario('100 B values', 100, null, undefined);
scenario('1 KB values', 1024, null, undefined);
scenario('100 B values, 16 B key, 1 header', 100, Buffer.alloc(16, 0x6b), [{ key: 'trace-id', value: Buffer.alloc(16, 0x74) }]);
