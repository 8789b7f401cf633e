import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import { cleanupDirs, config, makeBatch, tempDir } from '../storage/test-fixtures.js';
import { Partition } from './partition.js';

const dirs: string[] = [];
const opened: Partition[] = [];
afterEach(async () => {
  for (const p of opened.splice(0)) await p.close().catch(() => undefined);
  cleanupDirs(dirs);
});

function open(segmentBytes?: number): Partition {
  const p = Partition.open('t', 0, tempDir(dirs), segmentBytes === undefined ? config() : config({ segmentBytes }), { logger: silentLogger() });
  opened.push(p);
  return p;
}

/** One follower fetch round: the follower copies what the leader has past its log end, the leader learns its progress. */
async function replicate(leader: Partition, follower: Partition, id: number, epoch: number): Promise<void> {
  leader.onReplicaFetch(id, epoch, follower.logEndOffset, Date.now());
  const data = leader.readForReplica(follower.logEndOffset, 1 << 20);
  await follower.appendReplicated(data, leader.highWatermark);
  leader.onReplicaFetch(id, epoch, follower.logEndOffset, Date.now());
}

/** Every batch of the log, across segments. */
function wholeLog(p: Partition): Buffer {
  const parts: Buffer[] = [];
  for (let offset = p.logStartOffset; offset < p.logEndOffset; ) {
    const chunk = p.readForReplica(offset, 1 << 20);
    parts.push(chunk);
    let at = 0;
    while (at < chunk.length) {
      offset = Number(chunk.readBigInt64BE(at)) + chunk.readInt32BE(at + 23) + 1;
      at += chunk.readInt32BE(at + 8) + 12;
    }
  }
  return Buffer.concat(parts);
}

async function settled(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => 'resolved',
    (e: unknown) => e,
  );
}

describe('Partition replication', () => {
  it('a follower drops whole segments below the leader\'s log start, never past its high watermark', async () => {
    const leader = open(1024);
    const follower = open(1024);
    leader.becomeLeader(1, 1, [1, 2], [1, 2], Date.now());
    follower.becomeFollower(1, 1);
    for (let i = 0; i < 20; i++) {
      await leader.append(makeBatch(5), 1 << 20, true);
      await replicate(leader, follower, 2, 1);
    }
    await replicate(leader, follower, 2, 1);
    expect(follower.logEndOffset).toBe(100);
    // The leader's acknowledged segments go (a queue's reclaim).
    expect(leader.log.deleteSegmentsBelow(60)).toBeGreaterThan(0);
    const start = leader.logStartOffset;
    expect(start).toBeGreaterThan(0);
    expect(follower.logStartOffset).toBe(0);
    follower.followLogStart(start);
    expect(follower.logStartOffset).toBe(start);
    expect(wholeLog(follower).equals(wholeLog(leader))).toBe(true);
    // A leader claiming more than the follower has committed moves nothing past that.
    const fresh = open(1024);
    fresh.becomeFollower(1, 1);
    fresh.followLogStart(start);
    expect(fresh.logStartOffset).toBe(0);
  });

  it('serves consumers below the high watermark, which follows the in-sync followers; acks=all waits for it', async () => {
    const leader = open();
    const f2 = open();
    const f3 = open();
    leader.becomeLeader(1, 1, [1, 2, 3], [1, 2, 3], Date.now());
    f2.becomeFollower(1, 1);
    f3.becomeFollower(1, 1);
    const r = await leader.append(makeBatch(5), 1 << 20, true);
    expect(leader.highWatermark).toBe(0);
    expect(leader.read(0, 1 << 20).length).toBe(0);
    const commit = leader.waitForCommit(r.lastOffset, 5_000);
    await replicate(leader, f2, 2, 1);
    expect(leader.highWatermark).toBe(0);
    await replicate(leader, f3, 3, 1);
    expect(leader.highWatermark).toBe(5);
    expect(await settled(commit)).toBe('resolved');
    expect(leader.read(0, 1 << 20).length).toBeGreaterThan(0);
    // Followers learn the high watermark on their next fetch.
    await replicate(leader, f2, 2, 1);
    expect(f2.highWatermark).toBe(5);
  });

  it('refuses acks=all below min.insync.replicas, and fails waiters when leadership moves', async () => {
    const leader = open();
    leader.minInSyncReplicas = 2;
    leader.becomeLeader(1, 1, [1, 2], [1], Date.now());
    const refused = await settled(leader.append(makeBatch(1), 1 << 20, true));
    expect(refused).toBeInstanceOf(KmqError);
    expect((refused as KmqError).code).toBe(ErrorCode.NotEnoughReplicas);
    expect((refused as KmqError).retriable).toBe(true);
    // acks=leader is still taken.
    await leader.append(makeBatch(1), 1 << 20, false);
    leader.updateIsr([1, 2]);
    const r = await leader.append(makeBatch(1), 1 << 20, true);
    const commit = leader.waitForCommit(r.lastOffset, 5_000);
    leader.becomeFollower(2, 2);
    const moved = await settled(commit);
    expect((moved as KmqError).code).toBe(ErrorCode.NotLeader);
    const notLeader = await settled(leader.append(makeBatch(1), 1 << 20));
    expect((notLeader as KmqError).code).toBe(ErrorCode.NotLeader);
    expect((notLeader as KmqError).message).toContain('broker 2 leads it');
  });

  it('fences a follower fetching at another epoch and one that is not a replica', async () => {
    const leader = open();
    leader.becomeLeader(1, 4, [1, 2], [1, 2], Date.now());
    expect(() => leader.onReplicaFetch(2, 3, 0, Date.now())).toThrow(expect.objectContaining({ code: ErrorCode.FencedLeaderEpoch }));
    expect(() => leader.onReplicaFetch(7, 4, 0, Date.now())).toThrow(expect.objectContaining({ code: ErrorCode.InvalidRequest }));
    expect(leader.onReplicaFetch(2, 4, 0, Date.now())).toBe(false);
  });

  it('truncates a returning replica to where its last epoch ends on the new leader', async () => {
    // Broker 1 leads epoch 1 and writes 5 records; broker 2 copies 3 of them.
    const b1 = open();
    const b2 = open();
    b1.becomeLeader(1, 1, [1, 2], [1, 2], Date.now());
    b2.becomeFollower(1, 1);
    await b1.append(makeBatch(3), 1 << 20);
    await replicate(b1, b2, 2, 1);
    await b1.append(makeBatch(2), 1 << 20);
    expect([b1.logEndOffset, b2.logEndOffset]).toEqual([5, 3]);
    // Broker 1 dies; broker 2 leads epoch 2 and writes 4 records of its own.
    b2.becomeLeader(2, 2, [1, 2], [2], Date.now());
    await b2.append(makeBatch(4), 1 << 20);
    expect(b2.epochs.snapshot()).toEqual([
      { epoch: 1, startOffset: 0 },
      { epoch: 2, startOffset: 3 },
    ]);
    // Broker 1 returns as a follower: its epoch 1 ends at 3 on the leader, so records 3-4 go.
    b1.becomeFollower(2, 2);
    const end = b2.epochs.endOf(b1.epochs.latestEpoch, b2.logEndOffset);
    expect(end).toEqual({ epoch: 1, endOffset: 3 });
    expect(await b1.truncateTo(Math.min(end.endOffset, b1.logEndOffset))).toBe(3);
    await replicate(b2, b1, 1, 2);
    expect(b1.logEndOffset).toBe(7);
    expect(wholeLog(b1).equals(wholeLog(b2))).toBe(true);
    expect(b1.epochs.snapshot()).toEqual(b2.epochs.snapshot());
  });

  it('keeps idempotent-producer state on followers, so a retry after failover is recognised', async () => {
    const b1 = open();
    const b2 = open();
    b1.becomeLeader(1, 1, [1, 2], [1, 2], Date.now());
    b2.becomeFollower(1, 1);
    const batch = makeBatch(3);
    batch.writeBigInt64BE(42n, 43); // producerId
    batch.writeInt16BE(0, 51); // producerEpoch
    batch.writeInt32BE(0, 53); // baseSequence
    const { computeBatchCrc, Off } = await import('../../protocol/batch-header.js');
    batch.writeUInt32BE(computeBatchCrc(batch), Off.crc);
    const first = await b1.append(Buffer.from(batch), 1 << 20);
    expect(first.duplicate).toBe(false);
    await replicate(b1, b2, 2, 1);
    b2.becomeLeader(2, 2, [1, 2], [2], Date.now());
    const retry = await b2.append(Buffer.from(batch), 1 << 20);
    expect(retry).toMatchObject({ duplicate: true, baseOffset: 0, lastOffset: 2 });
    expect(b2.logEndOffset).toBe(3);
  });
});
