import type { V1Lease } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { KmqError } from '../../lib/errors.js';
import { ManualClock } from './clock.js';
import { LeaderElector, compileLeaderElectionOptions } from './leader-election.js';
import type { LeaseStore } from './leader-election.js';

/** One Lease in memory with the apiserver's compare-and-swap on resourceVersion. */
class MemoryLeaseStore {
  lease: V1Lease | undefined;
  private version = 0;
  readonly cut = new Set<string>();

  for(who: string): LeaseStore {
    const guard = <T>(f: () => T): Promise<T> => (this.cut.has(who) ? Promise.reject(new Error('partitioned')) : Promise.resolve().then(f));
    return {
      get: () => guard(() => (this.lease ? structuredClone(this.lease) : undefined)),
      create: (_ns, lease) =>
        guard(() => {
          if (this.lease) throw Object.assign(new Error('exists'), { code: 409 });
          this.lease = { ...structuredClone(lease), metadata: { ...lease.metadata, resourceVersion: String(++this.version) } };
          return structuredClone(this.lease);
        }),
      replace: (_ns, lease) =>
        guard(() => {
          if (lease.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) throw Object.assign(new Error('conflict'), { code: 409 });
          this.lease = { ...structuredClone(lease), metadata: { ...lease.metadata, resourceVersion: String(++this.version) } };
          return structuredClone(this.lease);
        }),
    };
  }
}

interface Interval {
  who: string;
  start: number;
  end?: number;
}

function setup() {
  const clock = new ManualClock();
  const store = new MemoryLeaseStore();
  const intervals: Interval[] = [];
  const candidate = (who: string, releaseOnStop = true) => {
    const elector = new LeaderElector({
      namespace: 'ns',
      name: 'lease',
      identity: who,
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      releaseOnStop,
      store: store.for(who),
      clock,
      random: () => 0,
      onStartedLeading: () => void intervals.push({ who, start: clock.now() }),
      onStoppedLeading: () => {
        intervals.find((i) => i.who === who && i.end === undefined)!.end = clock.now();
      },
    });
    const done = elector.run();
    return { who, elector, done };
  };
  const noOverlap = () => {
    const sorted = [...intervals].sort((a, b) => a.start - b.start);
    for (let k = 1; k < sorted.length; k++) expect(sorted[k]!.start).toBeGreaterThanOrEqual(sorted[k - 1]!.end ?? Infinity);
  };
  return { clock, store, intervals, candidate, noOverlap };
}

describe('LeaderElector', () => {
  it('elects exactly one of two candidates that start together, and renews', async () => {
    const { clock, store, candidate } = setup();
    const a = candidate('a');
    const b = candidate('b');
    await clock.advance(0);
    expect([a.elector.isLeader, b.elector.isLeader].filter(Boolean)).toHaveLength(1);
    const leader = a.elector.isLeader ? 'a' : 'b';
    expect(store.lease?.spec?.holderIdentity).toBe(leader);
    for (let i = 0; i < 30; i++) {
      await clock.advance(1000);
      expect([a.elector.isLeader, b.elector.isLeader].filter(Boolean)).toHaveLength(1);
    }
    expect(a.elector.leader).toBe(leader);
    expect(b.elector.leader).toBe(leader);
    await Promise.all([a.elector.stop(), b.elector.stop()]);
  });

  it('on stop ends the work first, then releases, and the other takes over at its next retry', async () => {
    const { clock, store, intervals, candidate, noOverlap } = setup();
    const a = candidate('a');
    await clock.advance(0);
    const b = candidate('b');
    await clock.advance(0);
    expect(a.elector.isLeader).toBe(true);
    const stopping = a.elector.stop();
    await clock.advance(0);
    await stopping;
    expect(intervals[0]!.end).toBeDefined();
    expect(store.lease?.spec?.holderIdentity).toBe('');
    const releasedAt = clock.now();
    while (!b.elector.isLeader) await clock.advance(100);
    expect(clock.now() - releasedAt).toBeLessThanOrEqual(2_000);
    expect(store.lease?.spec?.leaseTransitions).toBe(1);
    noOverlap();
    await b.elector.stop();
  });

  it('after a crash (no release) the other waits the lease duration from its last observed change', async () => {
    const { clock, candidate, noOverlap } = setup();
    const a = candidate('a', false);
    await clock.advance(0);
    const b = candidate('b');
    await clock.advance(10_000);
    await a.elector.stop();
    const stoppedAt = clock.now();
    while (!b.elector.isLeader) await clock.advance(100);
    const waited = clock.now() - stoppedAt;
    expect(waited).toBeGreaterThanOrEqual(15_000 - 2_000);
    expect(waited).toBeLessThanOrEqual(15_000 + 2_000);
    noOverlap();
    await b.elector.stop();
  });

  it('a leader cut off from the apiserver stops leading at its renew deadline, before anyone else may lead', async () => {
    const { clock, store, intervals, candidate, noOverlap } = setup();
    const a = candidate('a');
    await clock.advance(0);
    const b = candidate('b');
    await clock.advance(5_000);
    store.cut.add('a');
    const cutAt = clock.now();
    while (a.elector.isLeader) await clock.advance(100);
    await a.done;
    expect(clock.now() - cutAt).toBeLessThanOrEqual(10_000);
    while (!b.elector.isLeader) await clock.advance(100);
    expect(intervals.map((i) => i.who)).toEqual(['a', 'b']);
    noOverlap();
    // a does not release what it no longer holds
    expect(store.lease?.spec?.holderIdentity).toBe('b');
    await b.elector.stop();
  });

  it('rejects settings that break the timing invariants, naming the setting', () => {
    const base = { namespace: 'ns', name: 'l', identity: 'x', store: new MemoryLeaseStore().for('x'), onStartedLeading: () => undefined };
    expect(compileLeaderElectionOptions(base)).toEqual({ leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, releaseOnStop: true });
    expect(() => compileLeaderElectionOptions({ ...base, leaseDurationMs: 10_000 })).toThrow(/leaseDurationMs/);
    expect(() => compileLeaderElectionOptions({ ...base, renewDeadlineMs: 1_000 })).toThrow(/renewDeadlineMs/);
    expect(() => compileLeaderElectionOptions({ ...base, identity: '' })).toThrow(KmqError);
  });
});
