import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../lib/errors.js';
import { coordinationStoreContract } from './coordination-store.contract.js';
import { LocalCoordinationStore } from './local-coordination-store.js';
import { sharedClient } from './test-fixtures.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-local-store-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const shared = LocalCoordinationStore.open(path.join(dir, 'contract.json'));
// The local store grants leases in process: a kept-alive one never expires, one without keep-alive after its TTL.
coordinationStoreContract('local', { open: () => Promise.resolve(sharedClient(shared)), leaseTtlMs: 300 });

describe('LocalCoordinationStore across a restart', () => {
  it('keeps keys and growing versions, and drops keys bound to a lease', async () => {
    const file = path.join(dir, 'restart.json');
    const a = LocalCoordinationStore.open(file);
    await a.put('topics/orders', 'v1');
    const second = await a.put('topics/orders', 'v2');
    const lease = await a.grantLease(10_000);
    await a.put('brokers/1', 'b1', { lease });
    await a.put('gone', 'x');
    await a.delete('gone');
    await a.close();

    const b = LocalCoordinationStore.open(file);
    expect(await b.get('topics/orders')).toEqual({ value: 'v2', version: second.version });
    expect(await b.get('brokers/1')).toBeUndefined();
    expect(await b.get('gone')).toBeUndefined();
    const next = await b.put('topics/payments', 'p');
    expect(next.version).toBeGreaterThan(second.version + 2);
    expect((await b.put('topics/orders', 'v3', { ifVersion: second.version })).ok).toBe(true);
    await b.close();
  });

  it('refuses to open a damaged file, and leaves it as it is', () => {
    const file = path.join(dir, 'damaged.json');
    fs.writeFileSync(file, '{"revision": 3, "entries": [{"key": "a"');
    expect(() => LocalCoordinationStore.open(file)).toThrow(expect.objectContaining({ code: ErrorCode.StorageError, message: expect.stringContaining('damaged') }));
    fs.writeFileSync(file, '{"revision": 1, "entries": [{"key": "a", "value": "x", "version": 5}]}');
    expect(() => LocalCoordinationStore.open(file)).toThrow(expect.objectContaining({ code: ErrorCode.StorageError }));
    expect(fs.readFileSync(file, 'utf8')).toContain('"version": 5');
  });
});
