import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { batchBaseOffset, batchLastOffsetDelta, batchTotalBytes, computeBatchCrc, Off } from '../../protocol/batch-header.js';
import { decodeBatch, encodeBatch, splitBatches, validateBatch } from '../../protocol/record-batch.js';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { FileIo } from './file-io.js';
import { PartitionLog } from './partition-log.js';
import type { LogConfig } from './log-config.js';
import { segmentFileName } from './log-segment.js';
import { capturingLogger, cleanupDirs, config, makeBatch, tempDir } from './test-fixtures.js';

const dirs: string[] = [];
afterEach(() => cleanupDirs(dirs));

interface Stored {
  base: number;
  last: number;
  bytes: Buffer;
}

/** Appends batches of the given record counts; returns copies of what was stored. */
async function fill(log: PartitionLog, counts: number[], timestamp: (i: number) => number = () => 1_000, valueBytes = 20): Promise<Stored[]> {
  const stored: Stored[] = [];
  for (let i = 0; i < counts.length; i++) {
    const b = makeBatch(counts[i]!, timestamp(i), valueBytes);
    const r = await log.append(b, 3);
    expect(r.lastOffset - r.baseOffset + 1).toBe(counts[i]);
    stored.push({ base: r.baseOffset, last: r.lastOffset, bytes: Buffer.from(b) });
  }
  return stored;
}

function expectEveryOffsetReadable(log: PartitionLog, stored: Stored[]): void {
  for (const s of stored) {
    for (let o = s.base; o <= s.last; o++) {
      const got = log.read(o, 1);
      expect(got.equals(s.bytes), `offset ${o}`).toBe(true);
    }
  }
}

function expectOutOfRange(fn: () => unknown, logStartOffset: number, logEndOffset: number): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KmqError);
    const e = err as KmqError;
    expect(e.code).toBe(ErrorCode.OffsetOutOfRange);
    expect(e.context).toMatchObject({ logStartOffset, logEndOffset });
    expect(e.message).toContain(`[${logStartOffset}, ${logEndOffset}]`);
    return;
  }
  expect.fail('expected OffsetOutOfRange');
}

function logFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.log'))
    .sort();
}

describe('PartitionLog append and read', () => {
  it('round-trips batches across many segments and reads the batch containing every offset', async () => {
    const dir = tempDir(dirs);
    const log = PartitionLog.open(dir, config({ segmentBytes: 1024, indexIntervalBytes: 300 }));
    const counts = Array.from({ length: 150 }, (_, i) => 1 + (i % 5));
    const stored = await fill(log, counts);
    expect(log.segmentCount).toBeGreaterThan(10);
    expect(log.logStartOffset).toBe(0);
    expect(log.logEndOffset).toBe(counts.reduce((a, b) => a + b, 0));
    expectEveryOffsetReadable(log, stored);
    // Stamped fields: offsets and leader epoch, CRC still valid.
    const first = log.read(0, 1);
    expect(first.readInt32BE(Off.partitionLeaderEpoch)).toBe(3);
    expect(validateBatch(first).baseOffset).toBe(0);
    // Segment files are named by their 20-digit base offset.
    expect(logFiles(dir)[0]).toBe('00000000000000000000.log');
    expect(logFiles(dir)).toHaveLength(log.segmentCount);
    await log.close();
  });

  it('respects maxBytes with whole batches, but returns one oversized batch whole', async () => {
    const log = PartitionLog.open(tempDir(dirs), config({ indexIntervalBytes: 100 }));
    const stored = await fill(log, Array.from({ length: 40 }, () => 3));
    const size = stored[0]!.bytes.length;
    const got = log.read(0, size * 5 + size - 1);
    expect(got.length).toBe(size * 5);
    expect(splitBatches(got).map((b) => batchBaseOffset(b))).toEqual([0, 3, 6, 9, 12]);
    const one = log.read(7, 1);
    expect(one.length).toBe(size);
    expect(batchBaseOffset(one)).toBe(6);
    // A read ends at the segment end, never with a partial batch.
    const all = log.read(0, 1 << 20);
    expect(all.length).toBe(size * 40);
    await log.close();
  });

  it('raises OffsetOutOfRange outside [logStartOffset, logEndOffset] and is empty at the end', async () => {
    const log = PartitionLog.open(tempDir(dirs), config());
    expect(log.read(0, 100).length).toBe(0);
    await fill(log, [5, 5]);
    expect(log.read(10, 100).length).toBe(0);
    expectOutOfRange(() => log.read(11, 100), 0, 10);
    expectOutOfRange(() => log.read(-1, 100), 0, 10);
    await log.close();
  });

  it('rejects malformed input without changing the log', async () => {
    const log = PartitionLog.open(tempDir(dirs), config());
    await fill(log, [2]);
    const half = makeBatch(3).subarray(0, 40);
    await expect(log.append(Buffer.from(half))).rejects.toMatchObject({ code: ErrorCode.CorruptMessage });
    expect(log.logEndOffset).toBe(2);
    // Several batches back to back get consecutive offsets.
    const two = Buffer.concat([makeBatch(2), makeBatch(4)]);
    const r = await log.append(two);
    expect(r).toMatchObject({ baseOffset: 2, lastOffset: 7 });
    expect(batchBaseOffset(log.read(5, 1))).toBe(4);
    await log.close();
  });

  it('finds offsets by timestamp', async () => {
    const log = PartitionLog.open(tempDir(dirs), config({ segmentBytes: 1024, indexIntervalBytes: 150 }));
    const ts = [10, 20, 15, 30, 30, 25, 40, 50, 45, 60, 70, 65, 80, 90, 100, 95, 110, 120, 130, 140];
    const stored = await fill(log, ts.map(() => 2), (i) => ts[i]!);
    for (let target = 0; target <= 150; target += 5) {
      const idx = stored.findIndex((_, i) => ts[i]! >= target);
      const expected = idx < 0 ? log.logEndOffset : stored[idx]!.base;
      expect(log.offsetForTimestamp(target), `ts ${target}`).toBe(expected);
    }
    await log.close();
  });

  it('scans batch headers from the batch containing an offset', async () => {
    const log = PartitionLog.open(tempDir(dirs), config({ segmentBytes: 1024 }));
    const stored = await fill(log, Array.from({ length: 30 }, () => 4));
    const seen: number[] = [];
    log.scanBatchHeaders(41, (h) => seen.push(h.baseOffset));
    expect(seen).toEqual(stored.filter((s) => s.last >= 41).map((s) => s.base));
    await log.close();
  });
});

describe('PartitionLog segments and retention', () => {
  it('rolls by age with an injected clock', async () => {
    let now = 1_000_000;
    const log = PartitionLog.open(tempDir(dirs), config({ segmentMs: 1000 }), { clock: () => now });
    await log.append(makeBatch(1));
    now += 500;
    await log.append(makeBatch(1));
    expect(log.segmentCount).toBe(1);
    now += 500;
    await log.append(makeBatch(1));
    expect(log.segmentCount).toBe(2);
    now += 5000;
    await log.append(makeBatch(1));
    expect(log.segmentCount).toBe(3);
    await log.close();
  });

  it('drops whole oldest segments by size and moves logStartOffset', async () => {
    const dir = tempDir(dirs);
    const log = PartitionLog.open(dir, config({ segmentBytes: 1024 }));
    const stored = await fill(log, Array.from({ length: 60 }, () => 3));
    const before = log.segmentCount;
    const sizeBefore = log.sizeBytes;
    log.updateConfig(config({ segmentBytes: 1024, retentionBytes: 3000 }));
    const removed = log.enforceRetention();
    expect(removed).toBeGreaterThan(0);
    expect(log.segmentCount).toBe(before - removed);
    // Kafka's rule: whole segments go only while what stays is at least retentionBytes,
    // so the result lies in [retentionBytes, retentionBytes + one segment).
    expect(log.sizeBytes).toBeGreaterThanOrEqual(3000);
    expect(log.sizeBytes).toBeLessThan(3000 + 1024 + 200);
    expect(log.sizeBytes).toBeLessThan(sizeBefore);
    expect(logFiles(dir)).toHaveLength(log.segmentCount);
    const start = log.logStartOffset;
    expect(start).toBeGreaterThan(0);
    expect(stored.some((s) => s.base === start)).toBe(true);
    expectOutOfRange(() => log.read(start - 1, 100), start, log.logEndOffset);
    expectEveryOffsetReadable(
      log,
      stored.filter((s) => s.base >= start),
    );
    expect(log.enforceRetention()).toBe(0);
    await log.close();
    // The new start survives a reopen.
    const again = PartitionLog.open(dir, config({ segmentBytes: 1024 }));
    expect(again.logStartOffset).toBe(start);
    await again.close();
  });

  it('drops segments past retentionMs by their newest timestamp and keeps the active one', async () => {
    const log = PartitionLog.open(tempDir(dirs), config({ segmentBytes: 1024, retentionMs: 1000 }));
    // Ten batches per timestamp step; segments hold a few batches each.
    const stored = await fill(log, Array.from({ length: 40 }, () => 3), (i) => 10_000 + i * 100);
    const n = log.segmentCount;
    expect(log.enforceRetention(10_000)).toBe(0);
    // Everything older than 12_000 goes: segments whose newest batch < 12_000.
    const removed = log.enforceRetention(13_000);
    expect(removed).toBeGreaterThan(0);
    const start = log.logStartOffset;
    const firstKept = stored.find((s) => s.base === start)!;
    expect(firstKept).toBeDefined();
    // The segment before the start had only batches older than the cutoff.
    const prevBatch = stored[stored.indexOf(firstKept) - 1]!;
    expect(10_000 + stored.indexOf(prevBatch) * 100).toBeLessThan(12_000);
    expectOutOfRange(() => log.read(start - 1, 100), start, log.logEndOffset);
    // Far in the future: all but the active segment go.
    log.enforceRetention(1e12);
    expect(log.segmentCount).toBe(1);
    expect(n).toBeGreaterThan(1);
    expect(log.logEndOffset).toBe(120);
    expect(log.read(log.logStartOffset, 100).length).toBeGreaterThan(0);
    await log.close();
  });
});

describe('PartitionLog recovery', () => {
  it('continues offsets after a reopen and keeps every batch', async () => {
    const dir = tempDir(dirs);
    const log = PartitionLog.open(dir, config({ segmentBytes: 1024 }));
    const stored = await fill(log, Array.from({ length: 30 }, (_, i) => 1 + (i % 4)), (i) => 500 + 10 * i);
    const end = log.logEndOffset;
    await log.close();
    const again = PartitionLog.open(dir, config({ segmentBytes: 1024 }));
    expect(again.logEndOffset).toBe(end);
    expectEveryOffsetReadable(again, stored);
    // Time indexes of closed segments come back from their files.
    for (let i = 0; i < stored.length; i++) expect(again.offsetForTimestamp(495 + 10 * i)).toBe(stored[i]!.base);
    expect(again.offsetForTimestamp(10_000)).toBe(end);
    const r = await again.append(makeBatch(2));
    expect(r.baseOffset).toBe(end);
    await again.close();
  });

  it('opens an empty directory, and one that does not exist yet', async () => {
    const dir = path.join(tempDir(dirs), 'a', 'b');
    const log = PartitionLog.open(dir, config());
    expect([log.logStartOffset, log.logEndOffset, log.sizeBytes, log.segmentCount]).toEqual([0, 0, 0, 1]);
    await log.close();
  });

  const tornCases: [string, (valid: Buffer) => Buffer][] = [
    ['garbage bytes', () => Buffer.from('this is not a record batch at all, just noise')],
    ['half a batch', (valid) => valid.subarray(0, Math.floor(valid.length / 2))],
    [
      'a batch with a wrong CRC',
      (valid) => {
        const b = Buffer.from(valid);
        b[b.length - 1]! ^= 0xff;
        return b;
      },
    ],
    ['a few bytes of a header', (valid) => valid.subarray(0, 7)],
  ];

  for (const [name, torn] of tornCases) {
    it(`truncates a torn write (${name}) and keeps what precedes it`, async () => {
      const dir = tempDir(dirs);
      const log = PartitionLog.open(dir, config({ segmentBytes: 1024 }));
      const stored = await fill(log, Array.from({ length: 20 }, () => 2));
      const end = log.logEndOffset;
      await log.close();
      const active = path.join(dir, logFiles(dir).at(-1)!);
      const goodSize = fs.statSync(active).size;
      const next = makeBatch(2);
      next.writeInt32BE(0, 0);
      next.writeInt32BE(end, 4);
      const junk = torn(next);
      fs.appendFileSync(active, junk);

      const { logger, lines } = capturingLogger();
      const again = PartitionLog.open(dir, config({ segmentBytes: 1024 }), { logger });
      const warn = lines.find((l) => l.msg === 'Truncated torn write');
      expect(warn).toMatchObject({ level: 40, path: active, position: goodSize, bytesRemoved: junk.length });
      expect(fs.statSync(active).size).toBe(goodSize);
      expect(again.logEndOffset).toBe(end);
      expectEveryOffsetReadable(again, stored);
      expect((await again.append(makeBatch(1))).baseOffset).toBe(end);
      await again.close();
    });
  }

  it('truncates at a corrupt batch in the middle of the active segment', async () => {
    const dir = tempDir(dirs);
    const log = PartitionLog.open(dir, config());
    const stored = await fill(log, [3, 3, 3, 3]);
    await log.close();
    const file = path.join(dir, segmentFileName(0, '.log'));
    const data = fs.readFileSync(file);
    const at = stored[2]!.bytes.length * 2 + 70;
    data[at]! ^= 0x55;
    fs.writeFileSync(file, data);
    const { logger, lines } = capturingLogger();
    const again = PartitionLog.open(dir, config(), { logger });
    expect(again.logEndOffset).toBe(6);
    expect(lines.find((l) => l.msg === 'Truncated torn write')).toMatchObject({ reason: 'CRC mismatch', bytesRemoved: stored[0]!.bytes.length * 2 });
    expectEveryOffsetReadable(again, stored.slice(0, 2));
    await again.close();
  });

  const indexDamage: [string, (file: string) => void][] = [
    ['junk of a bad size', (f) => fs.writeFileSync(f, Buffer.from('junk junk junk'))],
    ['non-monotonic entries', (f) => fs.writeFileSync(f, Buffer.from([0, 0, 0, 9, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 200]))],
    ['entries beyond the log', (f) => fs.writeFileSync(f, Buffer.from([0, 0, 0, 1, 0x7f, 0, 0, 0]))],
    ['an entry pointing mid-batch', (f) => fs.writeFileSync(f, Buffer.from([0, 0, 0, 2, 0, 0, 0, 5]))],
    ['a missing file', (f) => fs.rmSync(f)],
  ];

  for (const [name, damage] of indexDamage) {
    it(`rebuilds a corrupt offset index (${name}) and still reads correctly`, async () => {
      const dir = tempDir(dirs);
      const cfg = config({ segmentBytes: 2048, indexIntervalBytes: 100 });
      const log = PartitionLog.open(dir, cfg);
      const stored = await fill(log, Array.from({ length: 40 }, () => 2));
      await log.close();
      const names = logFiles(dir);
      expect(names.length).toBeGreaterThan(2);
      const closedIndex = path.join(dir, names[1]!.replace('.log', '.index'));
      expect(fs.statSync(closedIndex).size).toBeGreaterThan(0);
      damage(closedIndex);
      // The active segment's index is rebuilt on every open anyway.
      fs.writeFileSync(path.join(dir, names.at(-1)!.replace('.log', '.index')), Buffer.from('garbage!'));

      const { logger, lines } = capturingLogger();
      const again = PartitionLog.open(dir, cfg, { logger });
      expect(lines.filter((l) => l.msg === 'Rebuilt segment indexes').map((l) => l.path)).toEqual([closedIndex]);
      expectEveryOffsetReadable(again, stored);
      expect(fs.statSync(closedIndex).size % 8).toBe(0);
      await again.close();
      // Rebuilt files are accepted on the next open.
      const third = capturingLogger();
      const reopened = PartitionLog.open(dir, cfg, { logger: third.logger });
      expect(third.lines.filter((l) => l.level === 40)).toEqual([]);
      expectEveryOffsetReadable(reopened, stored);
      await reopened.close();
    });
  }

  it('rebuilds a corrupt time index', async () => {
    const dir = tempDir(dirs);
    const cfg = config({ segmentBytes: 2048, indexIntervalBytes: 100 });
    const log = PartitionLog.open(dir, cfg);
    const stored = await fill(log, Array.from({ length: 40 }, () => 2), (i) => 1000 + i);
    await log.close();
    const f = path.join(dir, logFiles(dir)[0]!.replace('.log', '.timeindex'));
    fs.writeFileSync(f, Buffer.alloc(24, 0xff));
    const { logger, lines } = capturingLogger();
    const again = PartitionLog.open(dir, cfg, { logger });
    expect(lines.some((l) => l.msg === 'Rebuilt segment indexes' && l.path !== undefined)).toBe(true);
    for (let i = 0; i < 40; i++) expect(again.offsetForTimestamp(1000 + i)).toBe(stored[i]!.base);
    await again.close();
  });

  it('continues from the previous segment when the last .log is missing', async () => {
    const dir = tempDir(dirs);
    const log = PartitionLog.open(dir, config({ segmentBytes: 1024 }));
    const stored = await fill(log, Array.from({ length: 30 }, () => 2));
    await log.close();
    const names = logFiles(dir);
    const last = names.at(-1)!;
    fs.rmSync(path.join(dir, last));
    const lastBase = Number(last.slice(0, 20));
    const { logger, lines } = capturingLogger();
    const again = PartitionLog.open(dir, config({ segmentBytes: 1024 }), { logger });
    expect(again.logEndOffset).toBe(lastBase);
    expect(lines.some((l) => l.msg === 'Removed index without a log segment')).toBe(true);
    expect(fs.existsSync(path.join(dir, last.replace('.log', '.index')))).toBe(false);
    expectEveryOffsetReadable(
      again,
      stored.filter((s) => s.last < lastBase),
    );
    expect((await again.append(makeBatch(1))).baseOffset).toBe(lastBase);
    await again.close();
  });

  it('discards a stray .cleaned file and finishes a .swap', async () => {
    const dir = tempDir(dirs);
    const cfg = config({ segmentBytes: 1024 });
    const log = PartitionLog.open(dir, cfg);
    const stored = await fill(log, Array.from({ length: 30 }, () => 2));
    const segs = log.segmentCount;
    await log.close();
    const names = logFiles(dir);
    // A swap that merges the first two segments, as compaction would commit it.
    const merged = Buffer.concat([fs.readFileSync(path.join(dir, names[0]!)), fs.readFileSync(path.join(dir, names[1]!))]);
    fs.writeFileSync(path.join(dir, names[0]! + '.swap'), merged);
    fs.writeFileSync(path.join(dir, names[2]! + '.cleaned'), Buffer.from('half-written'));
    const again = PartitionLog.open(dir, cfg);
    expect(again.segmentCount).toBe(segs - 1);
    const after = fs.readdirSync(dir);
    expect(after.filter((n) => n.endsWith('.swap') || n.endsWith('.cleaned'))).toEqual([]);
    expect(after).not.toContain(names[1]);
    expectEveryOffsetReadable(again, stored);
    await again.close();
  });
});

/** Counts fdatasync calls; the syscalls themselves are real. */
class CountingFileIo extends FileIo {
  syncs = 0;
  override fdatasync(fd: number, p: string): Promise<void> {
    this.syncs++;
    return super.fdatasync(fd, p);
  }
}

describe('PartitionLog flush policy', () => {
  it('every-batch: appends resolve after fdatasync, and concurrent appends share one', async () => {
    const io = new CountingFileIo();
    const log = PartitionLog.open(tempDir(dirs), config({ flush: { mode: 'every-batch', intervalMs: 1000 } }), { io });
    await log.append(makeBatch(1));
    expect(io.syncs).toBe(1);
    const results = await Promise.all(Array.from({ length: 10 }, () => log.append(makeBatch(2))));
    expect(results.map((r) => r.baseOffset)).toEqual(Array.from({ length: 10 }, (_, i) => 1 + 2 * i));
    // One sync started by the first, one queued sync covering the other nine.
    expect(io.syncs).toBe(3);
    await log.close();
  });

  it('interval: a timer fdatasyncs dirty data', async () => {
    const io = new CountingFileIo();
    const log = PartitionLog.open(tempDir(dirs), config({ flush: { mode: 'interval', intervalMs: 20 } }), { io });
    await log.append(makeBatch(1));
    expect(io.syncs).toBe(0);
    for (let i = 0; i < 50 && io.syncs === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(io.syncs).toBeGreaterThanOrEqual(1);
    const settled = io.syncs;
    await new Promise((r) => setTimeout(r, 80));
    // Nothing new written: nothing to sync.
    expect(io.syncs).toBe(settled);
    await log.close();
  });

  it('none: no fdatasync until flush() or close()', async () => {
    const io = new CountingFileIo();
    const log = PartitionLog.open(tempDir(dirs), config({ flush: { mode: 'none', intervalMs: 20 } }), { io });
    await log.append(makeBatch(1));
    await new Promise((r) => setTimeout(r, 60));
    expect(io.syncs).toBe(0);
    await log.flush();
    expect(io.syncs).toBe(1);
    await log.close();
  });
});

describe('PartitionLog compaction', () => {
  const withValue = (key: string | null, value: string, timestamp: number): Buffer => encode([{ key, value, timestamp }]);

  function readAll(log: PartitionLog): { offset: number; key: string | null; value: string | null }[] {
    const out: { offset: number; key: string | null; value: string | null }[] = [];
    let at = log.logStartOffset;
    while (at < log.logEndOffset) {
      const buf = log.read(at, 1 << 20);
      if (buf.length === 0) break;
      for (const b of splitBatches(buf)) {
        for (const r of decodeBatch(b).records) out.push({ offset: r.offset, key: r.key?.toString() ?? null, value: r.value?.toString() ?? null });
        at = batchBaseOffset(b) + batchLastOffsetDelta(b) + 1;
      }
    }
    return out;
  }

  it('keeps the latest record per key in closed segments, with offsets unchanged', async () => {
    const dir = tempDir(dirs);
    const cfg: LogConfig = config({ segmentBytes: 1024, cleanupPolicy: 'compact' });
    const log = PartitionLog.open(dir, cfg);
    // Multi-record batches: some records of a batch survive, some do not.
    for (let round = 0; round < 30; round++) {
      const keys = ['a', 'b', 'c', 'd'];
      await log.append(encode(keys.map((k) => ({ key: k, value: `${k}${round}`, timestamp: 1000 + round }))));
      await log.append(encode([{ key: null, value: `nokey${round}`, timestamp: 1000 + round }]));
    }
    await log.append(encode([{ key: 'b', value: null, timestamp: 5000 }]));
    await log.append(encode([{ key: 'z', value: 'z-active', timestamp: 5000 }]));
    const before = readAll(log);
    const end = log.logEndOffset;
    const segmentsBefore = log.segmentCount;
    const bytesBefore = log.sizeBytes;
    const activeBase = fs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.log'))
      .sort()
      .at(-1)!;

    const removed = await log.compact();
    expect(removed).toBeGreaterThan(0);
    expect(log.logEndOffset).toBe(end);
    expect(log.sizeBytes).toBeLessThan(bytesBefore);
    const after = readAll(log);
    expect(before.length - after.length).toBe(removed);

    const activeStart = Number(activeBase.slice(0, 20));
    const closedBefore = before.filter((r) => r.offset < activeStart);
    const latest = new Map<string, number>();
    for (const r of closedBefore) if (r.key !== null) latest.set(r.key, r.offset);
    const expected = before.filter((r) => r.offset >= activeStart || r.key === null || latest.get(r.key) === r.offset);
    expect(after).toEqual(expected);
    // Every remaining record is readable at its own offset; gaps read forward.
    for (const r of after) {
      const b = log.read(r.offset, 1);
      expect(batchBaseOffset(b)).toBeLessThanOrEqual(r.offset);
      expect(batchBaseOffset(b) + batchLastOffsetDelta(b)).toBeGreaterThanOrEqual(r.offset);
      validateBatch(b);
    }
    // A second pass removes nothing more but merges the now small segments.
    expect(await log.compact()).toBe(0);
    expect(log.segmentCount).toBeLessThan(segmentsBefore);
    expect(readAll(log)).toEqual(after);
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.cleaned') || n.endsWith('.swap'))).toEqual([]);
    expect(logFiles(dir)).toHaveLength(log.segmentCount);
    await log.close();

    const again = PartitionLog.open(dir, cfg);
    expect(readAll(again)).toEqual(after);
    expect(await again.compact()).toBe(0);
    await again.close();
  });

  it('drops tombstones older than retentionMs', async () => {
    const now = 100_000;
    const cfg: LogConfig = config({ segmentBytes: 1024, cleanupPolicy: 'compact', retentionMs: 10_000 });
    const log = PartitionLog.open(tempDir(dirs), cfg, { clock: () => now });
    await log.append(withValue('old', 'v', 1_000));
    await log.append(encode([{ key: 'old', value: null, timestamp: 2_000 }]));
    await log.append(encode([{ key: 'recent', value: null, timestamp: 95_000 }]));
    for (let i = 0; i < 20; i++) await log.append(withValue(`k${i}`, 'x'.repeat(80), 95_000));
    expect(log.segmentCount).toBeGreaterThan(1);
    await log.compact();
    const keys = readAll(log).map((r) => r.key);
    expect(keys).not.toContain('old');
    expect(keys).toContain('recent');
    await log.close();
  });

  it('does nothing for the delete policy', async () => {
    const log = PartitionLog.open(tempDir(dirs), config({ segmentBytes: 1024 }));
    for (let i = 0; i < 30; i++) await log.append(withValue('same', 'x'.repeat(50), 1));
    expect(await log.compact()).toBe(0);
    await log.close();
  });
});

function encode(records: { key: string | null; value: string | null; timestamp: number }[]): Buffer {
  return encodeBatch(records.map((r) => ({ key: r.key === null ? null : Buffer.from(r.key), value: r.value === null ? null : Buffer.from(r.value), timestamp: r.timestamp })));
}

describe('PartitionLog storage failures', () => {
  /** Writes go to a read-only fd once armed, so the kernel itself refuses them. */
  class FailingWrites extends FileIo {
    armed = false;
    private readonly roFd = fs.openSync('/dev/null', 'r');
    override write(fd: number, p: string, data: Buffer, position: number, start?: number, end?: number): void {
      super.write(this.armed ? this.roFd : fd, p, data, position, start, end);
    }
  }

  it('surfaces a failed write as StorageError and takes the log offline', async () => {
    const io = new FailingWrites();
    const { logger, lines } = capturingLogger();
    const dir = tempDir(dirs);
    const log = PartitionLog.open(dir, config(), { io, logger });
    await log.append(makeBatch(2));
    io.armed = true;
    const err = await log.append(makeBatch(2)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KmqError);
    expect(err).toMatchObject({ code: ErrorCode.StorageError, context: { operation: 'write', path: path.join(dir, segmentFileName(0, '.log')) } });
    expect((err as KmqError).message).toContain('write');
    expect((err as KmqError).message).toContain(segmentFileName(0, '.log'));
    expect((err as KmqError).cause).toBeDefined();
    expect(lines.some((l) => l.msg === 'Log is offline after an I/O failure')).toBe(true);
    io.armed = false;
    await expect(log.append(makeBatch(1))).rejects.toMatchObject({ code: ErrorCode.StorageError });
    expect(log.logEndOffset).toBe(2);
    await log.close();
  });

  it('surfaces a failed fdatasync as StorageError to every waiting append', async () => {
    class FailingSync extends FileIo {
      // /dev/null cannot be synced: the kernel answers EINVAL.
      private readonly devNull = fs.openSync('/dev/null', 'r');
      override fdatasync(_fd: number, p: string): Promise<void> {
        return super.fdatasync(this.devNull, p);
      }
    }
    const log = PartitionLog.open(tempDir(dirs), config({ flush: { mode: 'every-batch', intervalMs: 1000 } }), { io: new FailingSync() });
    const results = await Promise.allSettled([log.append(makeBatch(1)), log.append(makeBatch(1))]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: ErrorCode.StorageError, context: { operation: 'fdatasync' } });
    }
    await expect(log.flush()).rejects.toMatchObject({ code: ErrorCode.StorageError });
    await log.close();
  });

  it('FileIo names the operation and path', () => {
    const io = new FileIo();
    const missing = path.join(tempDir(dirs), 'nope', 'x.log');
    expect(() => io.readFile(missing)).toThrow(KmqError);
    try {
      io.readFile(missing);
    } catch (err) {
      expect(err).toMatchObject({ code: ErrorCode.StorageError, context: { operation: 'read', path: missing } });
      expect((err as Error).message).toContain(missing);
    }
  });

  it('refuses to open over an unreadable directory entry', () => {
    const dir = tempDir(dirs);
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, 'x');
    expect(() => PartitionLog.open(file, config())).toThrow(expect.objectContaining({ code: ErrorCode.StorageError }));
  });
});

describe('PartitionLog property: every offset finds its batch', () => {
  it('for random batch sizes, segment sizes and index intervals', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ records: fc.integer({ min: 1, max: 8 }), valueBytes: fc.integer({ min: 0, max: 300 }) }), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 1024, max: 6000 }),
        fc.integer({ min: 0, max: 2000 }),
        async (batches, segmentBytes, indexIntervalBytes) => {
          const dir = tempDir(dirs);
          const cfg = config({ segmentBytes, indexIntervalBytes });
          const log = PartitionLog.open(dir, cfg);
          const stored: Stored[] = [];
          for (const b of batches) {
            const batch = makeBatch(b.records, 1000, b.valueBytes);
            const r = await log.append(batch);
            stored.push({ base: r.baseOffset, last: r.lastOffset, bytes: Buffer.from(batch) });
          }
          const check = (l: PartitionLog): void => {
            for (const s of stored) {
              for (let o = s.base; o <= s.last; o++) {
                const got = l.read(o, 0);
                if (!got.equals(s.bytes)) throw new Error(`offset ${o}: wrong batch (base ${batchBaseOffset(got)})`);
              }
            }
            const total = l.read(0, 1 << 30);
            if (batchTotalBytes(total) <= 0 || computeBatchCrc(total.subarray(0, batchTotalBytes(total))) !== total.readUInt32BE(Off.crc)) {
              throw new Error('first batch invalid');
            }
          };
          check(log);
          await log.close();
          const again = PartitionLog.open(dir, cfg);
          check(again);
          await again.close();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('log config', () => {
  it('names the invalid setting', () => {
    expect(() => PartitionLog.open(tempDir(dirs), config({ segmentBytes: 10 }))).toThrow(/segmentBytes/);
    expect(() => PartitionLog.open(tempDir(dirs), config({ flush: { mode: 'sometimes' as 'none', intervalMs: 5 } }))).toThrow(/flush\.mode/);
    expect(() => PartitionLog.open(tempDir(dirs), config({ retentionMs: -5 }))).toThrow(expect.objectContaining({ code: ErrorCode.InvalidConfig }));
  });
});
