import { describe, expect, it } from 'vitest';
import type { AnyKmqObject, JsonPatchOp, KmqObjectClient } from './kube.js';
import { statusPatch, writeStatus } from './status-writer.js';

function obj(status?: unknown): AnyKmqObject {
  return { apiVersion: 'kmq.dev/v1alpha1', kind: 'Topic', metadata: { namespace: 'shop', name: 'orders' }, spec: {}, status };
}

function recorder(): KmqObjectClient & { statuses: JsonPatchOp[][] } {
  const statuses: JsonPatchOp[][] = [];
  return {
    statuses,
    async patch() {
      throw new Error('not expected');
    },
    async patchStatus(_plural, _obj, ops) {
      statuses.push(ops);
    },
    async namespaceTerminating() {
      return false;
    },
  };
}

describe('status writes', () => {
  it('only when something changed (undefined fields and key order do not count)', () => {
    expect(statusPatch({ a: 1, b: { c: 2 } }, { b: { c: 2 }, a: 1, d: undefined })).toBeUndefined();
    expect(statusPatch(undefined, {})).toBeUndefined();
    expect(statusPatch({ a: 1 }, { a: 2 })).toEqual([{ op: 'add', path: '/status', value: { a: 2 } }]);
    expect(statusPatch(undefined, { a: 1 })).toEqual([{ op: 'add', path: '/status', value: { a: 1 } }]);
  });

  it('a second identical write in one reconcile is skipped', async () => {
    const client = recorder();
    const o = obj({ messages: 1 });
    expect(await writeStatus(client, 'topics', o, { messages: 2 })).toBe(true);
    expect(await writeStatus(client, 'topics', o, { messages: 2 })).toBe(false);
    expect(client.statuses).toEqual([[{ op: 'add', path: '/status', value: { messages: 2 } }]]);
  });
});
