import { isDeepStrictEqual } from 'node:util';
import type { AnyKmqObject, JsonPatchOp, KmqObjectClient } from './kube.js';

/** A plain-JSON copy: undefined fields dropped, as the API server would store it. */
function normalise(value: unknown): unknown {
  return value === undefined ? undefined : (JSON.parse(JSON.stringify(value)) as unknown);
}

/** The JSON patch that sets the status to `next`, or undefined when the stored status already says the same. */
export function statusPatch(current: unknown, next: object): JsonPatchOp[] | undefined {
  const wanted = normalise(next);
  if (isDeepStrictEqual(normalise(current) ?? {}, wanted)) return undefined;
  return [{ op: 'add', path: '/status', value: wanted }];
}

/**
 * Writes `next` as the object's whole status through the status subresource, only when it
 * differs from the status read; true when a write was made. Only the controller of the kind
 * writes its status, so the whole status is replaced.
 */
export async function writeStatus(client: KmqObjectClient, plural: string, obj: AnyKmqObject, next: object): Promise<boolean> {
  const ops = statusPatch(obj.status, next);
  if (ops === undefined) return false;
  await client.patchStatus(plural, obj, ops);
  // Later writes in the same reconcile compare against what was just written, not the stale cache.
  obj.status = ops[0]!.value;
  return true;
}
