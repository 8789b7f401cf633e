import type { KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { PatchStrategy } from '@kubernetes/client-node';
import { ErrorCode, KmqError } from '../lib/errors.js';
import type { ErrorContext } from '../lib/errors.js';
import { FIELD_MANAGER } from './builders/meta.js';
import { TerminalError } from './runtime/controller.js';

/** The calls of KubernetesObjectApi that applying and deleting use; a fake stands in for it in unit tests. */
export type ObjectClient = Pick<KubernetesObjectApi, 'read' | 'patch' | 'delete'>;

/**
 * Condition reasons of a failed API request, CamelCase as conditions want them; a
 * KmqError from this module carries one in `context.reason`.
 */
export const ApiErrorReason = {
  /** 404: the object (or its namespace, or its kind) does not exist. */
  NotFound: 'NotFound',
  /** 409: another writer got there first; the next reconcile reads again. */
  Conflict: 'Conflict',
  /** 401/403: the operator lacks a permission; retried, an admin may grant it. */
  Forbidden: 'Forbidden',
  /** 400/422: the object was refused as it is; retrying the same object cannot help. */
  Invalid: 'Invalid',
  /** 429, 5xx, timeouts, connection errors: the API server is busy or unreachable. */
  ApiUnavailable: 'ApiUnavailable',
} as const;
export type ApiErrorReason = (typeof ApiErrorReason)[keyof typeof ApiErrorReason];

/** The outcome of applying one object. */
export interface ApplyResult<T extends KubernetesObject> {
  /** The object as the API server stored it. */
  object: T;
  /** It did not exist before. */
  created: boolean;
  /** The apply stored something new (a status update by another controller in between does not count). */
  changed: boolean;
}

/** Options of applyObject. */
export interface ApplyOptions {
  /** `All` asks the API server to validate and admit the object without storing it. */
  dryRun?: 'All';
}

/**
 * Server-side applies `desired` as field manager `kmq-operator`, taking over fields
 * that others changed (force): a hand edit of a field the operator sets is undone,
 * fields the operator does not set are left alone. Applying the same object twice
 * stores nothing the second time and reports `changed: false`.
 */
export async function applyObject<T extends KubernetesObject>(client: ObjectClient, desired: T, options: ApplyOptions = {}): Promise<ApplyResult<T>> {
  const before = await readObject(client, desired);
  let object: T;
  try {
    object = await client.patch(desired, undefined, options.dryRun, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  } catch (err) {
    throw apiError(err, 'apply', desired);
  }
  const previous = before?.metadata?.resourceVersion;
  const moved = previous === undefined || previous !== object.metadata?.resourceVersion;
  // The version also moves when a controller writes the status between our read and our apply
  // (the disruption controller does for PodDisruptionBudgets): only a change of content counts.
  return { object, created: before === undefined, changed: moved && (before === undefined || contentOf(before) !== contentOf(object)) };
}

/** The object without its status and the metadata the API server maintains, as JSON. */
function contentOf(o: KubernetesObject): string {
  const { status: _status, ...rest } = o as KubernetesObject & { status?: unknown };
  const { resourceVersion: _rv, managedFields: _mf, ...metadata } = o.metadata ?? {};
  return JSON.stringify({ ...rest, metadata });
}

/** The object named by `ref` (apiVersion, kind, namespace, name), or undefined when it does not exist. */
export async function readObject<T extends KubernetesObject>(client: ObjectClient, ref: T): Promise<T | undefined> {
  try {
    return await client.read<T>(header(ref));
  } catch (err) {
    const e = apiError(err, 'read', ref);
    if (e.context.reason === ApiErrorReason.NotFound) return undefined;
    throw e;
  }
}

/**
 * Deletes the object named by `ref` if it exists; true when a delete was issued, false
 * when it was already gone. Dependents are removed by garbage collection in the background.
 */
export async function deleteIfExists(client: ObjectClient, ref: KubernetesObject): Promise<boolean> {
  try {
    await client.delete(header(ref), undefined, undefined, undefined, undefined, 'Background');
    return true;
  } catch (err) {
    const e = apiError(err, 'delete', ref);
    if (e.context.reason === ApiErrorReason.NotFound) return false;
    throw e;
  }
}

function header<T extends KubernetesObject>(ref: T): T & { metadata: { name: string } } {
  const name = ref.metadata?.name;
  if (name === undefined) throw new KmqError(ErrorCode.InvalidRequest, `${ref.kind ?? 'object'} without metadata.name`, {}, { retriable: false });
  const metadata = ref.metadata?.namespace === undefined ? { name } : { name, namespace: ref.metadata.namespace };
  return { apiVersion: ref.apiVersion, kind: ref.kind, metadata } as T & { metadata: { name: string } };
}

/** The HTTP status and the API server's own message of a failed request, as far as they are known. */
function failureOf(err: unknown): { status: number | undefined; message: string } {
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown; message?: unknown } | null;
  const status = typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  let message = err instanceof Error ? err.message : String(err);
  let body = e?.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body) as unknown;
    } catch {
      if (body !== '') message = body as string;
    }
  }
  if (body !== null && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') {
    message = (body as { message: string }).message;
  }
  return { status, message };
}

function reasonOf(status: number | undefined): ApiErrorReason {
  switch (status) {
    case 404:
      return ApiErrorReason.NotFound;
    case 409:
      return ApiErrorReason.Conflict;
    case 401:
    case 403:
      return ApiErrorReason.Forbidden;
    case 400:
    case 422:
      return ApiErrorReason.Invalid;
    default:
      return ApiErrorReason.ApiUnavailable;
  }
}

/**
 * Turns a failed API request into a KmqError whose `context.reason` is an
 * ApiErrorReason and whose message is the API server's. Invalid is a TerminalError
 * (not retried: the same object is refused again); every other reason is retriable.
 */
export function apiError(err: unknown, verb: string, obj: KubernetesObject): KmqError {
  if (err instanceof KmqError) return err;
  const { status, message } = failureOf(err);
  const reason = reasonOf(status);
  const context: ErrorContext = {
    reason,
    verb,
    kind: obj.kind,
    ...(obj.metadata?.namespace === undefined ? {} : { namespace: obj.metadata.namespace }),
    name: obj.metadata?.name,
    ...(status === undefined ? {} : { statusCode: status }),
  };
  const text = `${verb} ${obj.kind ?? 'object'} ${obj.metadata?.namespace === undefined ? '' : `${obj.metadata.namespace}/`}${obj.metadata?.name ?? ''}: ${message}`;
  if (reason === ApiErrorReason.Invalid) return new TerminalError(text, context, { cause: err, code: ErrorCode.InvalidRequest });
  const code = reason === ApiErrorReason.ApiUnavailable && status === undefined ? ErrorCode.ConnectionClosed : reason === ApiErrorReason.NotFound ? ErrorCode.InvalidRequest : ErrorCode.Unknown;
  return new KmqError(code, text, context, { cause: err, retriable: reason !== ApiErrorReason.NotFound });
}
