import { afterEach, describe, expect, it } from 'vitest';
import { BatchBuilder } from '../../protocol/record-batch.js';
import { PartitionLog } from './partition-log.js';
import type { FlushConfig } from './log-config.js';
import { cleanupDirs, config, tempDir } from './test-fixtures.js';

// Append throughput per flush mode, printed, never asserted. Opt in: KMQ_BENCH=1.
const enabled = process.env.KMQ_BENCH === '1';
const TOTAL_BYTES = Number(process.env.KMQ_BENCH_MIB ?? 256) * 1024 * 1024;
const APPEND_BYTES = 1024 * 1024;
const RECORD_BYTES = 100;

const dirs: string[] = [];
afterEach(() => cleanupDirs(dirs));

/** A ~1 MiB batch of 100-byte records, as a producer would send. */
function megabyteBatch(): { batch: Buffer; count: number } {
  const b = new BatchBuilder({}, APPEND_BYTES + 4096);
  const value = Buffer.alloc(RECORD_BYTES, 7);
  while (b.sizeBytes + RECORD_BYTES + 16 <= APPEND_BYTES) b.append(null, value, null, 1_000);
  const count = b.count;
  return { batch: b.build(), count };
}

async function run(mode: FlushConfig['mode'], inFlight: number): Promise<string> {
  const log = PartitionLog.open(tempDir(dirs), config({ flush: { mode, intervalMs: 1000 } }));
  const { batch, count } = megabyteBatch();
  const appends = Math.ceil(TOTAL_BYTES / batch.length);
  const started = process.hrtime.bigint();
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < appends) {
      issued++;
      await log.append(batch);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await log.deleteAll();
  const mb = (appends * batch.length) / 1e6;
  const records = appends * count;
  return `${mode.padEnd(11)} in-flight ${String(inFlight).padStart(2)}: ${(mb / seconds).toFixed(0).padStart(5)} MB/s, ${((appends / seconds) | 0).toString().padStart(5)} appends/s, ~${((records / seconds / 1e6).toFixed(2))}M records/s`;
}

describe.skipIf(!enabled)('append throughput (1 MiB appends)', () => {
  it('prints MB/s per flush mode', async () => {
    const lines: string[] = [];
    for (const [mode, inFlight] of [
      ['every-batch', 1],
      ['every-batch', 8],
      ['interval', 1],
      ['none', 1],
    ] as const) {
      lines.push(await run(mode, inFlight));
    }
    console.log(`append throughput, ${TOTAL_BYTES / 1024 / 1024} MiB per run\n${lines.join('\n')}`);
    expect(lines).toHaveLength(4);
  }, 600_000);
});
