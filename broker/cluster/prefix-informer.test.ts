import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { CoordinationStore, VersionedEntry, WatchEvent } from './coordination-store.js';
import { MemoryCoordinationStore } from './memory-coordination-store.js';
import { PrefixInformer } from './prefix-informer.js';
import type { KeyChange } from './prefix-informer.js';
import { eventually } from './test-fixtures.js';

const fast = { initialMs: 1, maxMs: 5, multiplier: 2, jitter: 0 };

/** A store whose lists take their snapshot at once but answer only when released, and can fail. */
class SlowListStore {
  readonly pending: (() => void)[] = [];
  failures = 0;
  private watcher: ((event: WatchEvent) => void) | undefined;

  constructor(readonly shared: MemoryCoordinationStore) {}

  asStore(): CoordinationStore {
    return {
      get: (k) => this.shared.get(k),
      put: (k, v, o) => this.shared.put(k, v, o),
      delete: (k, o) => this.shared.delete(k, o),
      grantLease: (t, o) => this.shared.grantLease(t, o),
      close: () => this.shared.close(),
      watch: (prefix, onEvent) => {
        this.watcher = onEvent;
        return this.shared.watch(prefix, onEvent);
      },
      list: async (prefix): Promise<VersionedEntry[]> => {
        if (this.failures > 0) {
          this.failures--;
          throw new KmqError(ErrorCode.BrokerNotAvailable, 'unreachable');
        }
        const snapshot = await this.shared.list(prefix);
        await new Promise<void>((resolve) => this.pending.push(resolve));
        return snapshot;
      },
    };
  }

  resync(): void {
    this.watcher?.({ type: 'resync' });
  }
}

function values(informer: PrefixInformer): Record<string, string> {
  return Object.fromEntries([...informer.all()].map(([k, v]) => [k, v.value]));
}

describe('PrefixInformer', () => {
  it('replays events that arrive while listing over the snapshot, and swaps it in whole', async () => {
    const shared = new MemoryCoordinationStore();
    await shared.put('p/a', 'a1');
    await shared.put('p/b', 'b1');
    await shared.put('other', 'x');
    const slow = new SlowListStore(shared);
    const batches: KeyChange[][] = [];
    const informer = new PrefixInformer({ store: slow.asStore(), prefix: 'p/', backoff: fast, onChange: (c) => batches.push(c) });
    const started = informer.start();
    await eventually('listing', 1000, () => slow.pending.length === 1);
    const a2 = await shared.put('p/a', 'a2');
    await shared.delete('p/b');
    await shared.put('p/c', 'c1');
    await shared.put('p/c', 'c2');
    expect(informer.ready).toBe(false);
    expect(informer.all().size).toBe(0);
    slow.pending.shift()!();
    await started;
    expect(informer.ready).toBe(true);
    expect(values(informer)).toEqual({ 'p/a': 'a2', 'p/c': 'c2' });
    expect(informer.get('p/a')?.version).toBe(a2.version);
    expect(batches).toHaveLength(1);
    expect(batches[0]!.map((c) => [c.key, c.after?.value])).toEqual([
      ['p/a', 'a2'],
      ['p/c', 'c2'],
    ]);
    // Afterwards events apply one by one.
    await shared.delete('p/a');
    expect(batches[1]).toEqual([{ key: 'p/a', before: { value: 'a2', version: a2.version }, after: undefined }]);
    await informer.stop();
  });

  it('lists again on resync, dropping a list in flight, and reports only what changed', async () => {
    const shared = new MemoryCoordinationStore();
    await shared.put('p/a', 'a1');
    const slow = new SlowListStore(shared);
    const batches: KeyChange[][] = [];
    const informer = new PrefixInformer({ store: slow.asStore(), prefix: 'p/', backoff: fast, onChange: (c) => batches.push(c) });
    const started = informer.start();
    await eventually('listing', 1000, () => slow.pending.length === 1);
    slow.pending.shift()!();
    await started;
    expect(values(informer)).toEqual({ 'p/a': 'a1' });

    // A resync, and a second one while that list is in flight.
    slow.resync();
    await eventually('relisting', 1000, () => slow.pending.length === 1);
    await shared.put('p/b', 'b1');
    slow.resync();
    await eventually('relisting again', 1000, () => slow.pending.length === 2);
    slow.pending.shift()!(); // The superseded list answers: ignored.
    await new Promise((r) => setTimeout(r, 10));
    expect(batches).toHaveLength(1);
    slow.pending.shift()!();
    await eventually('applied', 1000, () => batches.length === 2);
    expect(values(informer)).toEqual({ 'p/a': 'a1', 'p/b': 'b1' });
    expect(batches[1]!.map((c) => c.key)).toEqual(['p/b']);
    await informer.stop();
  });

  it('retries failed lists, reports the errors, and survives a throwing listener', async () => {
    const shared = new MemoryCoordinationStore();
    await shared.put('p/a', 'a1');
    const slow = new SlowListStore(shared);
    slow.failures = 2;
    const errors: KmqError[] = [];
    const informer = new PrefixInformer({
      store: slow.asStore(),
      prefix: 'p/',
      backoff: fast,
      filter: (key) => key !== 'p/skip',
      onChange: () => {
        throw new Error('listener bug');
      },
      onError: (err) => errors.push(err),
    });
    const started = informer.start();
    await eventually('listing', 1000, () => slow.pending.length === 1);
    slow.pending.shift()!();
    await started;
    expect(errors.map((e) => e.message)).toEqual(['unreachable', 'unreachable', 'listener bug']);
    await shared.put('p/skip', 'x');
    await shared.put('p/b', 'b1');
    expect(values(informer)).toEqual({ 'p/a': 'a1', 'p/b': 'b1' });
    await informer.stop();
  });
});
