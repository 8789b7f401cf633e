import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../lib/logger.js';
import { Partition } from '../partition/partition.js';
import { CompactedStore } from '../partition/compacted-store.js';
import { cleanupDirs, config, tempDir } from '../storage/test-fixtures.js';
import { ProcessedKeys } from './processed-keys.js';
import type { JournalEntry } from './processed-keys.js';

const dirs: string[] = [];
const open: Partition[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close()));
  cleanupDirs(dirs);
});

/** A store journaled to a real compacted partition in `dir`, on a clock the test moves. */
function storeIn(dir: string, clock: { now: number }): { keys: ProcessedKeys; partition: Partition } {
  const partition = Partition.open('__processed_keys', 0, dir, config({ cleanupPolicy: 'compact' }), { logger: silentLogger() });
  open.push(partition);
  const journal = new CompactedStore(partition, 1024 * 1024);
  const keys = new ProcessedKeys({
    journal: { append: (e) => journal.appendMany(e), load: () => journal.load() },
    logger: silentLogger(),
    clock: () => clock.now,
    sweepIntervalMs: 1000,
  });
  return { keys, partition };
}

async function reopen(dir: string, clock: { now: number }): Promise<ProcessedKeys> {
  await Promise.all(open.splice(0).map((p) => p.close()));
  const { keys } = storeIn(dir, clock);
  await keys.start();
  return keys;
}

describe('ProcessedKeys', () => {
  it('claims, refuses another owner, renews for the same owner, and expires a claim', async () => {
    const clock = { now: 1_000_000 };
    const { keys } = storeIn(tempDir(dirs), clock);
    await keys.start();
    expect(keys.claim('sub', 'k', 'a#1', 5000)).toBe('claimed');
    expect(keys.claim('sub', 'k', 'b#1', 5000)).toBe('busy');
    clock.now += 4000;
    expect(keys.claim('sub', 'k', 'a#1', 5000)).toBe('claimed');
    expect(keys.peek('sub', 'k')).toEqual({ state: 'claimed', owner: 'a#1', expiresAt: clock.now + 5000 });
    clock.now += 4999;
    expect(keys.claim('sub', 'k', 'b#1', 5000)).toBe('busy');
    clock.now += 1;
    expect(keys.claim('sub', 'k', 'b#1', 5000)).toBe('claimed');
  });

  it('completes whoever holds the claim, never shortens a processed expiry, and answers processed until it expires', async () => {
    const clock = { now: 1_000_000 };
    const { keys } = storeIn(tempDir(dirs), clock);
    await keys.start();
    expect(keys.claim('sub', 'k', 'a#1', 5000)).toBe('claimed');
    await keys.complete('sub', 'k', 'b#1', 60_000);
    expect(keys.claim('sub', 'k', 'a#1', 5000)).toBe('processed');
    await keys.complete('sub', 'k', 'a#1', 10);
    expect(keys.peek('sub', 'k')?.expiresAt).toBe(1_060_000);
    clock.now = 1_059_999;
    expect(keys.claim('sub', 'k', 'c#1', 5000)).toBe('processed');
    clock.now = 1_060_000;
    expect(keys.claim('sub', 'k', 'c#1', 5000)).toBe('claimed');
  });

  it('releases only the owner’s claim', async () => {
    const clock = { now: 1_000_000 };
    const { keys } = storeIn(tempDir(dirs), clock);
    await keys.start();
    keys.claim('sub', 'k', 'a#1', 5000);
    keys.release('sub', 'k', 'b#1');
    expect(keys.claim('sub', 'k', 'b#1', 5000)).toBe('busy');
    keys.release('sub', 'k', 'a#1');
    expect(keys.claim('sub', 'k', 'b#1', 5000)).toBe('claimed');
    await keys.complete('sub', 'k', 'b#1', 60_000);
    keys.release('sub', 'k', 'b#1');
    expect(keys.claim('sub', 'k', 'c#1', 5000)).toBe('processed');
  });

  it('keeps scopes apart', async () => {
    const clock = { now: 1_000_000 };
    const { keys } = storeIn(tempDir(dirs), clock);
    await keys.start();
    await keys.complete('sub-a', 'k', 'x', 60_000);
    expect(keys.claim('sub-a', 'k', 'y', 5000)).toBe('processed');
    expect(keys.claim('sub-b', 'k', 'y', 5000)).toBe('claimed');
  });

  it('refuses empty scopes, keys and owners, and ttls that are not positive whole numbers', async () => {
    const clock = { now: 1_000_000 };
    const { keys } = storeIn(tempDir(dirs), clock);
    await keys.start();
    expect(() => keys.claim('', 'k', 'o', 1000)).toThrow(/scope/);
    expect(() => keys.claim('s', '', 'o', 1000)).toThrow(/key/);
    expect(() => keys.claim('s', 'k', '', 1000)).toThrow(/owner/);
    expect(() => keys.claim('s', 'k', 'o', 0)).toThrow(/claim_ttl_ms/);
    expect(() => keys.complete('s', 'k', 'o', 1.5)).toThrow(/ttl_ms/);
  });

  it('survives a restart: processed keys and live claims come back, released and expired ones do not', async () => {
    const dir = tempDir(dirs);
    const clock = { now: 1_000_000 };
    const { keys } = storeIn(dir, clock);
    await keys.start();
    await keys.complete('sub', 'done', 'a', 60_000);
    keys.claim('sub', 'held', 'a', 10_000);
    keys.claim('sub', 'short', 'a', 100);
    keys.claim('sub', 'released', 'a', 10_000);
    keys.release('sub', 'released', 'a');
    await keys.complete('sub', 'flush', 'a', 60_000); // claims are journaled in order before it

    clock.now += 500;
    const again = await reopen(dir, clock);
    expect(again.peek('sub', 'done')).toEqual({ state: 'processed', owner: 'a', expiresAt: 1_060_000 });
    expect(again.peek('sub', 'held')).toEqual({ state: 'claimed', owner: 'a', expiresAt: 1_010_000 });
    expect(again.peek('sub', 'short')).toBeUndefined();
    expect(again.peek('sub', 'released')).toBeUndefined();
    expect(again.size).toBe(3); // done, held, flush: the expired claim was dropped at load
    expect(again.claim('sub', 'held', 'b', 1000)).toBe('busy');
  });

  it('sweeps expired entries on tick and journals tombstones, so they stay gone after a restart', async () => {
    const dir = tempDir(dirs);
    const clock = { now: 1_000_000 };
    const { keys, partition } = storeIn(dir, clock);
    await keys.start();
    await keys.complete('sub', 'a', 'o', 2000);
    await keys.complete('sub', 'b', 'o', 60_000);
    const end = partition.logEndOffset;
    clock.now += 2000;
    expect(keys.tick()).toBe(1);
    expect(keys.size).toBe(1);
    expect(keys.tick()).toBe(0); // throttled by the sweep interval
    await new Promise((r) => setTimeout(r, 20));
    expect(partition.logEndOffset).toBe(end + 1);
    clock.now -= 1000; // a restarted broker whose clock reads earlier still sees the tombstone
    const again = await reopen(dir, clock);
    expect(again.peek('sub', 'a')).toBeUndefined();
    expect(again.peek('sub', 'b')?.state).toBe('processed');
  });
});

type Op =
  | { kind: 'claim'; key: string; owner: string; ttl: number }
  | { kind: 'complete'; key: string; owner: string; ttl: number }
  | { kind: 'release'; key: string; owner: string }
  | { kind: 'advance'; ms: number }
  | { kind: 'restart' };

describe('ProcessedKeys against a reference model', () => {
  const key = fc.constantFrom('k1', 'k2', 'k3');
  const owner = fc.constantFrom('a', 'b', 'c');
  const ttl = fc.integer({ min: 1, max: 50 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('claim' as const), key, owner, ttl }),
    fc.record({ kind: fc.constant('complete' as const), key, owner, ttl }),
    fc.record({ kind: fc.constant('release' as const), key, owner }),
    fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 40 }) }),
    fc.constant({ kind: 'restart' as const }),
  );

  it('answers as the file header says, and a restart from the journal changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        const clock = { now: 1000 };
        const log: JournalEntry[] = [];
        const journal = { append: (e: JournalEntry[]): Promise<void> => (log.push(...e), Promise.resolve()), load: (): Iterable<JournalEntry> => [...log] };
        const make = (): ProcessedKeys => new ProcessedKeys({ journal, logger: silentLogger(), clock: () => clock.now, sweepIntervalMs: 7 });
        let keys = make();
        await keys.start();
        const model = new Map<string, { state: 'claimed' | 'processed'; owner: string; expiresAt: number }>();
        const live = (k: string): { state: 'claimed' | 'processed'; owner: string; expiresAt: number } | undefined => {
          const e = model.get(k);
          return e !== undefined && e.expiresAt > clock.now ? e : undefined;
        };
        for (const o of ops) {
          switch (o.kind) {
            case 'claim': {
              const e = live(o.key);
              const want = e?.state === 'processed' ? 'processed' : e !== undefined && e.owner !== o.owner ? 'busy' : 'claimed';
              if (want === 'claimed') model.set(o.key, { state: 'claimed', owner: o.owner, expiresAt: clock.now + o.ttl });
              expect(keys.claim('s', o.key, o.owner, o.ttl)).toBe(want);
              break;
            }
            case 'complete': {
              const e = live(o.key);
              const expiresAt = e?.state === 'processed' ? Math.max(e.expiresAt, clock.now + o.ttl) : clock.now + o.ttl;
              model.set(o.key, { state: 'processed', owner: o.owner, expiresAt });
              await keys.complete('s', o.key, o.owner, o.ttl);
              break;
            }
            case 'release': {
              const e = live(o.key);
              if (e?.state === 'claimed' && e.owner === o.owner) model.delete(o.key);
              keys.release('s', o.key, o.owner);
              break;
            }
            case 'advance':
              clock.now += o.ms;
              keys.tick();
              break;
            case 'restart':
              keys = make();
              await keys.start();
              break;
          }
          for (const k of ['k1', 'k2', 'k3']) expect(keys.peek('s', k)).toEqual(live(k));
        }
      }),
      { numRuns: 300 },
    );
  });
});
