import { describe, expect, it } from 'vitest';
import { KmqError, ErrorCode } from '../../../lib/errors.js';
import { addFinalizer, addFinalizerPatch, FINALIZER, hasFinalizer, removeFinalizer, removeFinalizerPatch } from './finalizer.js';
import type { AnyKmqObject, JsonPatchOp, KmqObjectClient } from './kube.js';

function obj(finalizers?: string[]): AnyKmqObject {
  return { apiVersion: 'kmq.dev/v1alpha1', kind: 'Topic', metadata: { namespace: 'shop', name: 'orders', resourceVersion: '7', ...(finalizers === undefined ? {} : { finalizers }) }, spec: {} };
}

function recorder(fail?: unknown): KmqObjectClient & { patches: JsonPatchOp[][] } {
  const patches: JsonPatchOp[][] = [];
  return {
    patches,
    async patch(_plural, _obj, ops) {
      if (fail !== undefined) throw fail;
      patches.push(ops);
    },
    async patchStatus() {
      throw new Error('not expected');
    },
    async namespaceTerminating() {
      return false;
    },
  };
}

describe('finalizer patches', () => {
  it('add: creates the list, or appends, guarded by the resourceVersion', () => {
    expect(addFinalizerPatch(obj())).toEqual([
      { op: 'test', path: '/metadata/resourceVersion', value: '7' },
      { op: 'add', path: '/metadata/finalizers', value: [FINALIZER] },
    ]);
    expect(addFinalizerPatch(obj(['other']))).toEqual([
      { op: 'test', path: '/metadata/resourceVersion', value: '7' },
      { op: 'add', path: '/metadata/finalizers/-', value: FINALIZER },
    ]);
  });

  it('remove: tests the entry at its index, so nothing else is removed', () => {
    expect(removeFinalizerPatch(obj(['other', FINALIZER, 'third']))).toEqual([
      { op: 'test', path: '/metadata/finalizers/1', value: FINALIZER },
      { op: 'remove', path: '/metadata/finalizers/1' },
    ]);
    expect(removeFinalizerPatch(obj(['other']))).toEqual([]);
  });

  it('adds and removes only when needed', async () => {
    const client = recorder();
    expect(await addFinalizer(client, 'topics', obj([FINALIZER]))).toBe(false);
    expect(await removeFinalizer(client, 'topics', obj(['other']))).toBe(false);
    expect(client.patches).toHaveLength(0);
    expect(await addFinalizer(client, 'topics', obj())).toBe(true);
    expect(await removeFinalizer(client, 'topics', obj([FINALIZER]))).toBe(true);
    expect(client.patches).toHaveLength(2);
    expect(hasFinalizer(obj([FINALIZER]))).toBe(true);
  });

  it('a failed test (stale cache) is retriable, not terminal; an object already gone is fine', async () => {
    const stale = recorder(new KmqError(ErrorCode.InvalidRequest, 'test failed', { reason: 'Invalid' }, { retriable: false }));
    await expect(addFinalizer(stale, 'topics', obj())).rejects.toMatchObject({ retriable: true, context: { reason: 'Conflict' } });
    const gone = recorder(new KmqError(ErrorCode.InvalidRequest, 'not found', { reason: 'NotFound' }));
    await expect(removeFinalizer(gone, 'topics', obj([FINALIZER]))).resolves.toBe(true);
    const down = recorder(new KmqError(ErrorCode.ConnectionClosed, 'refused', { reason: 'ApiUnavailable' }));
    await expect(removeFinalizer(down, 'topics', obj([FINALIZER]))).rejects.toThrow('refused');
  });
});
