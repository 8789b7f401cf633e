import type { KubernetesObject } from '@kubernetes/client-node';
import { ApiException, PatchStrategy } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../lib/errors.js';
import { ApiErrorReason, apiError, applyObject, deleteIfExists, readObject } from './apply.js';
import type { ObjectClient } from './apply.js';
import { TerminalError } from './runtime/controller.js';

// Unit tests on a fake client; test/operator/broker-cluster-objects.test.ts applies
// against a real kube-apiserver.

function status(code: number, reason: string, message: string): ApiException<string> {
  return new ApiException(code, `HTTP-Code: ${code}`, JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code }), {});
}

interface Call {
  verb: string;
  args: unknown[];
}

/** An in-memory API server of one kind of behaviour: stores by name, bumps resourceVersion on a change. */
class FakeClient implements ObjectClient {
  readonly calls: Call[] = [];
  readonly store = new Map<string, KubernetesObject>();
  failNext: Partial<Record<'read' | 'patch' | 'delete', unknown>> = {};
  private rv = 100;

  private fail(verb: 'read' | 'patch' | 'delete'): void {
    const err = this.failNext[verb];
    if (err !== undefined) {
      delete this.failNext[verb];
      throw err;
    }
  }

  read = (async (spec: KubernetesObject): Promise<KubernetesObject> => {
    this.calls.push({ verb: 'read', args: [spec] });
    this.fail('read');
    const o = this.store.get(spec.metadata!.name!);
    if (o === undefined) throw status(404, 'NotFound', `configmaps "${spec.metadata!.name}" not found`);
    return structuredClone(o);
  }) as ObjectClient['read'];

  patch = (async (spec: KubernetesObject, ...args: unknown[]): Promise<KubernetesObject> => {
    this.calls.push({ verb: 'patch', args: [spec, ...args] });
    this.fail('patch');
    const name = spec.metadata!.name!;
    const old = this.store.get(name);
    const { metadata: _m, ...body } = spec;
    // Status is not the applier's: a real API server leaves it out of the comparison and in place.
    const same = old !== undefined && JSON.stringify({ ...old, metadata: undefined, status: undefined }) === JSON.stringify({ ...body, metadata: undefined });
    if (same) return structuredClone(old);
    const next = { ...body, metadata: { ...spec.metadata, resourceVersion: String(++this.rv) } } as KubernetesObject;
    this.store.set(name, next);
    return structuredClone(next);
  }) as ObjectClient['patch'];

  delete = (async (spec: KubernetesObject, ...args: unknown[]) => {
    this.calls.push({ verb: 'delete', args: [spec, ...args] });
    this.fail('delete');
    if (!this.store.delete(spec.metadata!.name!)) throw status(404, 'NotFound', 'not found');
    return { kind: 'Status', status: 'Success' };
  }) as ObjectClient['delete'];
}

const cm = (data: Record<string, string>): KubernetesObject & { data: Record<string, string> } => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'settings', namespace: 'shop' },
  data,
});

describe('applyObject', () => {
  it('server-side applies as kmq-operator with force, and reports created, changed, unchanged', async () => {
    const client = new FakeClient();
    const first = await applyObject(client, cm({ a: '1' }));
    expect(first).toMatchObject({ created: true, changed: true });
    const patch = client.calls.find((c) => c.verb === 'patch')!;
    expect(patch.args.slice(1)).toEqual([undefined, undefined, 'kmq-operator', true, PatchStrategy.ServerSideApply]);

    const again = await applyObject(client, cm({ a: '1' }));
    expect(again).toMatchObject({ created: false, changed: false });
    expect(again.object.metadata!.resourceVersion).toBe(first.object.metadata!.resourceVersion);

    const edited = await applyObject(client, cm({ a: '2' }));
    expect(edited).toMatchObject({ created: false, changed: true });
  });

  it('a status written by another controller between the read and the apply is not a change of ours', async () => {
    const client = new FakeClient();
    await applyObject(client, cm({ a: '1' }));
    // The read sees the object; then, before the apply lands, another controller writes its status.
    const read = client.read;
    client.read = (async (spec: Parameters<ObjectClient['read']>[0]) => {
      const seen = await read(spec);
      const stored = client.store.get('settings')!;
      client.store.set('settings', { ...stored, status: { observed: 1 }, metadata: { ...stored.metadata, resourceVersion: '999' } } as KubernetesObject);
      return seen;
    }) as ObjectClient['read'];
    const r = await applyObject(client, { ...cm({ a: '1' }) });
    expect(r.object.metadata!.resourceVersion).toBe('999');
    expect(r).toMatchObject({ created: false, changed: false });
    // A real change in the same situation still counts.
    expect(await applyObject(client, cm({ a: '2' }))).toMatchObject({ changed: true });
  });

  it('reads by apiVersion, kind, namespace and name only', async () => {
    const client = new FakeClient();
    await applyObject(client, cm({ a: '1' }));
    expect(client.calls[0]).toEqual({ verb: 'read', args: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'shop' } }] });
  });

  it('passes dryRun through', async () => {
    const client = new FakeClient();
    await applyObject(client, cm({ a: '1' }), { dryRun: 'All' });
    expect(client.calls.find((c) => c.verb === 'patch')!.args[2]).toBe('All');
  });

  it('an invalid object is a TerminalError with the API server\'s message', async () => {
    const client = new FakeClient();
    client.failNext.patch = status(422, 'Invalid', 'StatefulSet.apps "x" is invalid: spec.replicas: Invalid value: -1');
    const err = await applyObject(client, cm({})).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect(err).toMatchObject({ code: ErrorCode.InvalidRequest, retriable: false, context: { reason: 'Invalid', verb: 'apply', kind: 'ConfigMap', namespace: 'shop', name: 'settings', statusCode: 422 } });
    expect((err as Error).message).toBe('apply ConfigMap shop/settings: StatefulSet.apps "x" is invalid: spec.replicas: Invalid value: -1');
  });

  it('a read failure other than NotFound is raised', async () => {
    const client = new FakeClient();
    client.failNext.read = status(403, 'Forbidden', 'configmaps "settings" is forbidden');
    await expect(applyObject(client, cm({}))).rejects.toMatchObject({ retriable: true, context: { reason: 'Forbidden', verb: 'read' } });
  });
});

describe('readObject and deleteIfExists', () => {
  it('NotFound reads as undefined; a delete of a missing object is done', async () => {
    const client = new FakeClient();
    expect(await readObject(client, cm({}))).toBeUndefined();
    expect(await deleteIfExists(client, cm({}))).toBe(false);
    await applyObject(client, cm({ a: '1' }));
    expect(await readObject(client, cm({}))).toMatchObject({ data: { a: '1' } });
    expect(await deleteIfExists(client, cm({}))).toBe(true);
    expect(client.calls.filter((c) => c.verb === 'delete').at(-1)!.args.slice(1)).toEqual([undefined, undefined, undefined, undefined, 'Background']);
    expect(await readObject(client, cm({}))).toBeUndefined();
  });

  it('a failed delete keeps its reason', async () => {
    const client = new FakeClient();
    client.failNext.delete = status(409, 'Conflict', 'the object has been modified');
    await expect(deleteIfExists(client, cm({}))).rejects.toMatchObject({ retriable: true, context: { reason: 'Conflict', verb: 'delete' } });
  });
});

describe('apiError', () => {
  const obj = cm({});
  it.each([
    [404, ApiErrorReason.NotFound, false],
    [409, ApiErrorReason.Conflict, true],
    [401, ApiErrorReason.Forbidden, true],
    [403, ApiErrorReason.Forbidden, true],
    [400, ApiErrorReason.Invalid, false],
    [422, ApiErrorReason.Invalid, false],
    [429, ApiErrorReason.ApiUnavailable, true],
    [500, ApiErrorReason.ApiUnavailable, true],
    [503, ApiErrorReason.ApiUnavailable, true],
  ])('HTTP %i is %s (retriable %s)', (code, reason, retriable) => {
    const e = apiError(status(code, 'X', 'the message'), 'apply', obj);
    expect(e).toBeInstanceOf(KmqError);
    expect(e.context.reason).toBe(reason);
    expect(e.retriable).toBe(retriable);
    expect(e.message).toBe('apply ConfigMap shop/settings: the message');
    expect(e.cause).toBeInstanceOf(ApiException);
  });

  it('a connection error is ApiUnavailable and retriable', () => {
    const e = apiError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' }), 'apply', obj);
    expect(e).toMatchObject({ code: ErrorCode.ConnectionClosed, retriable: true, context: { reason: 'ApiUnavailable' } });
    expect(e.message).toContain('ECONNREFUSED');
  });

  it('a body that is not JSON is the message', () => {
    const e = apiError(new ApiException(502, 'HTTP-Code: 502', 'bad gateway', {}), 'read', obj);
    expect(e.message).toBe('read ConfigMap shop/settings: bad gateway');
  });

  it('a KmqError passes through', () => {
    const original = new KmqError(ErrorCode.Unknown, 'x');
    expect(apiError(original, 'apply', obj)).toBe(original);
  });
});
