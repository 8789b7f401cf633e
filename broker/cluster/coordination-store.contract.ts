import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { CoordinationStore, WatchEvent } from './coordination-store.js';

/** What the contract suite needs from an implementation. */
export interface CoordinationStoreContractOptions {
  /** Opens a store; the suite opens several at once (concurrent writers) and closes every one. */
  open: () => Promise<CoordinationStore>;
  /** A lease TTL the store grants as is, ms; lease tests wait a few of them. */
  leaseTtlMs: number;
}

/** Polls `check` until it returns true, failing after `timeoutMs`. */
export async function until(what: string, timeoutMs: number, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The semantics every CoordinationStore must have (coordination-store.ts),
 * run against each implementation. Each test works under its own key prefix.
 */
export function coordinationStoreContract(name: string, options: CoordinationStoreContractOptions): void {
  describe(`${name}: the coordination store contract`, () => {
    const opened: CoordinationStore[] = [];
    let store: CoordinationStore;
    let ns: string;
    const open = async (): Promise<CoordinationStore> => {
      const s = await options.open();
      opened.push(s);
      return s;
    };
    const ttl = options.leaseTtlMs;

    beforeEach(async () => {
      ns = `t-${randomUUID()}/`;
      store = await open();
    });
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });

    it('reads what it wrote, and every put raises the version', async () => {
      expect(await store.get(`${ns}a`)).toBeUndefined();
      const first = await store.put(`${ns}a`, 'one');
      expect(first.ok).toBe(true);
      expect(first.version).toBeGreaterThan(0);
      expect(await store.get(`${ns}a`)).toEqual({ value: 'one', version: first.version });
      const second = await store.put(`${ns}a`, 'two');
      expect(second.version).toBeGreaterThan(first.version);
      expect(await store.get(`${ns}a`)).toEqual({ value: 'two', version: second.version });
    });

    it("puts with ifVersion 'absent' only when the key does not exist", async () => {
      const created = await store.put(`${ns}a`, 'first', { ifVersion: 'absent' });
      expect(created.ok).toBe(true);
      const again = await store.put(`${ns}a`, 'second', { ifVersion: 'absent' });
      expect(again).toEqual({ ok: false, version: created.version });
      expect((await store.get(`${ns}a`))?.value).toBe('first');
    });

    it('lets exactly one of two writers with the same ifVersion win', async () => {
      const other = await open();
      const base = await store.put(`${ns}leader`, 'none');
      const results = await Promise.all([
        store.put(`${ns}leader`, 'broker-1', { ifVersion: base.version }),
        other.put(`${ns}leader`, 'broker-2', { ifVersion: base.version }),
      ]);
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      const winner = results.findIndex((r) => r.ok);
      const loser = results[1 - winner]!;
      expect(loser.version).toBe(results[winner]!.version);
      expect(await store.get(`${ns}leader`)).toEqual({ value: winner === 0 ? 'broker-1' : 'broker-2', version: results[winner]!.version });
      // A stale version never writes.
      expect((await store.put(`${ns}leader`, 'stale', { ifVersion: base.version })).ok).toBe(false);
      expect((await store.put(`${ns}absent`, 'x', { ifVersion: base.version })).ok).toBe(false);
      expect(await store.get(`${ns}absent`)).toBeUndefined();
    });

    it('deletes with ifVersion only at that version', async () => {
      const put = await store.put(`${ns}a`, 'v');
      expect(await store.delete(`${ns}a`, { ifVersion: put.version + 1000 })).toEqual({ ok: false, version: put.version });
      expect(await store.get(`${ns}a`)).toBeDefined();
      const deleted = await store.delete(`${ns}a`, { ifVersion: put.version });
      expect(deleted.ok).toBe(true);
      expect(deleted.version).toBeGreaterThan(put.version);
      expect(await store.get(`${ns}a`)).toBeUndefined();
      expect(await store.delete(`${ns}a`, { ifVersion: put.version })).toEqual({ ok: false, version: 0 });
      expect(await store.delete(`${ns}a`)).toEqual({ ok: true, version: 0 });
    });

    it('lists keys by prefix in key order', async () => {
      await store.put(`${ns}brokers/2`, 'b2');
      await store.put(`${ns}brokers/1`, 'b1');
      await store.put(`${ns}brokersX`, 'not a broker');
      await store.put(`${ns}topics/t`, 't');
      const listed = await store.list(`${ns}brokers/`);
      expect(listed.map((e) => [e.key, e.value])).toEqual([
        [`${ns}brokers/1`, 'b1'],
        [`${ns}brokers/2`, 'b2'],
      ]);
      expect(listed[0]!.version).toEqual((await store.get(`${ns}brokers/1`))!.version);
      expect(await store.list(`${ns}nothing/`)).toEqual([]);
    });

    it('deletes a leased key when the lease expires, and reports the lease lost', async () => {
      const lease = await store.grantLease(ttl, { keepAlive: false });
      expect(lease.ttlMs).toBeGreaterThanOrEqual(ttl);
      await store.put(`${ns}brokers/1`, 'alive', { lease });
      expect(await store.get(`${ns}brokers/1`)).toBeDefined();
      const started = Date.now();
      await until('the leased key is deleted', ttl * 4 + 5000, async () => (await store.get(`${ns}brokers/1`)) === undefined);
      expect(Date.now() - started).toBeGreaterThanOrEqual(ttl / 2);
      const err = await lease.lost;
      expect(err).toBeInstanceOf(KmqError);
      expect(err.retriable).toBe(true);
      expect(lease.ended).toBe(true);
      await expect(store.put(`${ns}brokers/1`, 'late', { lease })).rejects.toMatchObject({ code: ErrorCode.InvalidRequest });
    });

    it('deletes a leased key when the lease is revoked', async () => {
      const lease = await store.grantLease(ttl);
      await store.put(`${ns}brokers/1`, 'alive', { lease });
      await store.put(`${ns}plain`, 'stays');
      await lease.revoke();
      expect(lease.ended).toBe(true);
      expect(await store.get(`${ns}brokers/1`)).toBeUndefined();
      expect((await store.get(`${ns}plain`))?.value).toBe('stays');
      await lease.revoke();
    });

    it('keeps a kept-alive lease and its keys beyond the TTL', async () => {
      const lease = await store.grantLease(ttl);
      await store.put(`${ns}brokers/1`, 'alive', { lease });
      await new Promise((r) => setTimeout(r, lease.ttlMs * 2.5));
      expect(lease.ended).toBe(false);
      expect((await store.get(`${ns}brokers/1`))?.value).toBe('alive');
      await lease.revoke();
    });

    it('watches puts and deletes under a prefix, in order, with their versions', async () => {
      const events: WatchEvent[] = [];
      const stop = await store.watch(`${ns}w/`, (e) => events.push(e));
      const writer = await open();
      const p1 = await writer.put(`${ns}w/a`, '1');
      await writer.put(`${ns}elsewhere`, 'x');
      const p2 = await writer.put(`${ns}w/b`, '2');
      const p3 = await writer.put(`${ns}w/a`, '3');
      const d = await writer.delete(`${ns}w/b`);
      await until('four events', 5000, () => events.length >= 4);
      expect(events).toEqual([
        { type: 'put', key: `${ns}w/a`, value: '1', version: p1.version },
        { type: 'put', key: `${ns}w/b`, value: '2', version: p2.version },
        { type: 'put', key: `${ns}w/a`, value: '3', version: p3.version },
        { type: 'delete', key: `${ns}w/b`, version: d.version },
      ]);
      await stop();
      await writer.put(`${ns}w/c`, 'after stop');
      await new Promise((r) => setTimeout(r, 200));
      expect(events).toHaveLength(4);
    });

    it('refuses bad arguments and use after close', async () => {
      await expect(store.put(`${ns}a`, 'x', { ifVersion: -1 })).rejects.toMatchObject({ code: ErrorCode.InvalidRequest, retriable: false });
      await expect(store.grantLease(0)).rejects.toMatchObject({ code: ErrorCode.InvalidRequest });
      const closing = await open();
      await closing.close();
      await expect(closing.get(`${ns}a`)).rejects.toMatchObject({ code: ErrorCode.ConnectionClosed });
    });
  });
}
