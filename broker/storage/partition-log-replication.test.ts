import { afterEach, describe, expect, it } from 'vitest';
import { batchBaseOffset, Off } from '../../protocol/batch-header.js';
import { splitBatches } from '../../protocol/record-batch.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { PartitionLog } from './partition-log.js';
import { cleanupDirs, config, makeBatch, tempDir } from './test-fixtures.js';

const dirs: string[] = [];
afterEach(() => cleanupDirs(dirs));

/** Appends batches of `counts` records at `epoch`; returns the log's bytes so far as a leader would ship them. */
async function lead(log: PartitionLog, counts: number[], epoch: number): Promise<void> {
  for (const n of counts) await log.append(makeBatch(n), epoch);
}

function allBatches(log: PartitionLog): Buffer[] {
  const out: Buffer[] = [];
  let offset = log.logStartOffset;
  while (offset < log.logEndOffset) {
    const chunk = log.read(offset, 1 << 20);
    for (const b of splitBatches(chunk, false)) {
      out.push(Buffer.from(b));
      offset = batchBaseOffset(b, 0) + b.readInt32BE(Off.lastOffsetDelta) + 1;
    }
  }
  return out;
}

describe('PartitionLog replication support', () => {
  it('appends a leader\'s batches with their offsets and epochs, and refuses a gap', async () => {
    const leader = PartitionLog.open(tempDir(dirs), config());
    const follower = PartitionLog.open(tempDir(dirs), config());
    await lead(leader, [3, 2, 4], 7);
    const shipped = allBatches(leader);
    await follower.appendReplicated(Buffer.concat(shipped.slice(0, 2)));
    expect(follower.logEndOffset).toBe(5);
    const gap = await follower.appendReplicated(Buffer.from(shipped[0]!)).catch((e: unknown) => e);
    expect(gap).toBeInstanceOf(KmqError);
    expect((gap as KmqError).code).toBe(ErrorCode.CorruptMessage);
    expect((gap as KmqError).message).toContain('starts at offset 0, the log ends at 5');
    await follower.appendReplicated(Buffer.from(shipped[2]!));
    expect(Buffer.concat(allBatches(follower)).equals(Buffer.concat(shipped))).toBe(true);
    expect(follower.read(0, 1).readInt32BE(Off.partitionLeaderEpoch)).toBe(7);
    await leader.close();
    await follower.close();
  });

  it('reads stop before a bound (the high watermark) at a batch boundary', async () => {
    const log = PartitionLog.open(tempDir(dirs), config());
    await lead(log, [3, 2, 4], 0);
    expect(splitBatches(log.read(0, 1 << 20, 5), false).length).toBe(2);
    expect(splitBatches(log.read(0, 1 << 20, 3), false).length).toBe(1);
    expect(log.read(3, 1 << 20, 3).length).toBe(0);
    expect(log.read(5, 1 << 20, 5).length).toBe(0);
    expect(splitBatches(log.read(5, 1 << 20), false).length).toBe(1);
    await log.close();
  });

  it('truncates to a batch boundary, across segments, durably, and appends again from there', async () => {
    const dir = tempDir(dirs);
    const log = PartitionLog.open(dir, config({ segmentBytes: 1024 }));
    for (let i = 0; i < 40; i++) await log.append(makeBatch(2, 1_000, 40), 1);
    expect(log.segmentCount).toBeGreaterThan(3);
    const before = allBatches(log);
    // Offset 31 is inside the batch 30..31: the whole batch goes.
    expect(await log.truncateTo(31)).toBe(30);
    expect(log.logEndOffset).toBe(30);
    expect(Buffer.concat(allBatches(log)).equals(Buffer.concat(before.slice(0, 15)))).toBe(true);
    await log.append(makeBatch(1), 2);
    expect(log.logEndOffset).toBe(31);
    await log.close();

    const reopened = PartitionLog.open(dir, config({ segmentBytes: 1024 }));
    expect(reopened.logEndOffset).toBe(31);
    expect(reopened.read(30, 1).readInt32BE(Off.partitionLeaderEpoch)).toBe(2);
    expect(await reopened.truncateTo(100)).toBe(31);
    await reopened.close();
  });

  it('empties the log when truncated at or below its start, and restarts at the given offset', async () => {
    const log = PartitionLog.open(tempDir(dirs), config());
    await lead(log, [3, 3], 0);
    expect(await log.truncateTo(0)).toBe(0);
    expect(log.logStartOffset).toBe(0);
    expect(log.read(0, 100).length).toBe(0);
    await log.append(makeBatch(2), 1);
    expect(log.logEndOffset).toBe(2);
    await log.close();
  });
});

describe('PartitionLog.resetTo', () => {
  it('empties the log and restarts it at an offset past its end', async () => {
    const dir = tempDir(dirs);
    const log = PartitionLog.open(dir, config());
    await lead(log, [3, 3], 0);
    await log.resetTo(500);
    expect(log.logStartOffset).toBe(500);
    expect(log.logEndOffset).toBe(500);
    await log.append(makeBatch(2), 1);
    await log.close();
    const reopened = PartitionLog.open(dir, config());
    expect([reopened.logStartOffset, reopened.logEndOffset]).toEqual([500, 502]);
    await reopened.close();
  });
});
