import { ErrorCode, KmqError } from '../../../lib/errors.js';
import { ApiErrorReason } from '../../apply.js';
import type { AnyKmqObject, JsonPatchOp, KmqObjectClient } from './kube.js';

/** The finalizer of every broker-backed kmq object: the broker-side object is dealt with before the resource goes. */
export const FINALIZER = 'kmq.dev/finalizer';

export function hasFinalizer(obj: AnyKmqObject): boolean {
  return obj.metadata.finalizers?.includes(FINALIZER) ?? false;
}

export function isBeingDeleted(obj: AnyKmqObject): boolean {
  return obj.metadata.deletionTimestamp != null;
}

/** The JSON patch that adds the finalizer, guarded by the resourceVersion read. */
export function addFinalizerPatch(obj: AnyKmqObject): JsonPatchOp[] {
  const guard: JsonPatchOp[] = obj.metadata.resourceVersion === undefined ? [] : [{ op: 'test', path: '/metadata/resourceVersion', value: obj.metadata.resourceVersion }];
  const finalizers = obj.metadata.finalizers;
  if (finalizers === undefined || finalizers.length === 0) return [...guard, { op: 'add', path: '/metadata/finalizers', value: [FINALIZER] }];
  return [...guard, { op: 'add', path: '/metadata/finalizers/-', value: FINALIZER }];
}

/** The JSON patch that removes the finalizer: a test of the entry first, so a stale index removes nothing else. */
export function removeFinalizerPatch(obj: AnyKmqObject): JsonPatchOp[] {
  const i = obj.metadata.finalizers?.indexOf(FINALIZER) ?? -1;
  if (i < 0) return [];
  return [
    { op: 'test', path: `/metadata/finalizers/${i}`, value: FINALIZER },
    { op: 'remove', path: `/metadata/finalizers/${i}` },
  ];
}

/**
 * Adds the finalizer unless it is there. A patch refused because the object changed
 * meanwhile (its test failed) becomes a retriable error: the next reconcile reads again.
 */
export async function addFinalizer(client: KmqObjectClient, plural: string, obj: AnyKmqObject): Promise<boolean> {
  if (hasFinalizer(obj)) return false;
  await patchRetriably(client, plural, obj, addFinalizerPatch(obj), 'add the finalizer to');
  return true;
}

/** Removes the finalizer if it is there; an object already gone is fine. */
export async function removeFinalizer(client: KmqObjectClient, plural: string, obj: AnyKmqObject): Promise<boolean> {
  const ops = removeFinalizerPatch(obj);
  if (ops.length === 0) return false;
  await patchRetriably(client, plural, obj, ops, 'remove the finalizer from');
  return true;
}

async function patchRetriably(client: KmqObjectClient, plural: string, obj: AnyKmqObject, ops: JsonPatchOp[], what: string): Promise<void> {
  try {
    await client.patch(plural, obj, ops);
  } catch (err) {
    const reason = err instanceof KmqError ? err.context.reason : undefined;
    if (reason === ApiErrorReason.NotFound) return;
    // A failed JSON patch test is a 422 (Invalid, terminal for apply); here it only means the cache was stale.
    if (reason === ApiErrorReason.Invalid || reason === ApiErrorReason.Conflict) {
      throw new KmqError(ErrorCode.Unknown, `Could not ${what} ${obj.kind} ${obj.metadata.namespace}/${obj.metadata.name}: it changed meanwhile`, { reason: ApiErrorReason.Conflict }, { cause: err, retriable: true });
    }
    throw err;
  }
}
