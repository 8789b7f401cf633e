import { ErrorCode, KmqError } from '../../lib/errors.js';

/** The HTTP status of a client-node error (ApiException.code, or statusCode of a failed watch), if any. */
export function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

/** The message of a Status body of an ApiException, else the error's own message. */
function messageOf(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  if (typeof body === 'string') {
    try {
      const status = JSON.parse(body) as { message?: unknown };
      if (typeof status.message === 'string') return status.message;
    } catch {
      // not a Status
    }
  }
  if (typeof (body as { message?: unknown } | undefined)?.message === 'string') return (body as { message: string }).message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Turns a client-node error into a KmqError: 403 / 401 are InvalidConfig (not retriable),
 * naming the verb and resource; 408 / 504 and calls past their deadline RequestTimedOut;
 * 429, 5xx and transport failures BrokerNotAvailable; other statuses InvalidRequest.
 */
export function toStoreError(err: unknown, call: { verb: string; resource: string; namespace: string; timeoutMs: number }): KmqError {
  if (err instanceof KmqError) return err;
  const { verb, resource, namespace } = call;
  const context = { verb, resource, namespace };
  const status = statusOf(err);
  const message = messageOf(err);
  if (status === 403) {
    return new KmqError(
      ErrorCode.InvalidConfig,
      `Kubernetes API: forbidden to ${verb} ${resource} in namespace ${namespace}; the coordination store needs RBAC verb '${verb}' on '${resource}' (${message})`,
      context,
      { cause: err, retriable: false },
    );
  }
  if (status === 401) return new KmqError(ErrorCode.InvalidConfig, `Kubernetes API: unauthorized to ${verb} ${resource} (${message})`, context, { cause: err, retriable: false });
  if (status === 408 || status === 504) return new KmqError(ErrorCode.RequestTimedOut, `Kubernetes API: ${verb} ${resource} timed out (${message})`, context, { cause: err });
  if (status === 429 || (status !== undefined && status >= 500)) return new KmqError(ErrorCode.BrokerNotAvailable, `Kubernetes API: ${verb} ${resource}: ${status} ${message}`, context, { cause: err });
  if (status !== undefined) return new KmqError(ErrorCode.InvalidRequest, `Kubernetes API: ${verb} ${resource}: ${status} ${message}`, context, { cause: err, retriable: false });
  if ((err as { name?: unknown } | null)?.name === 'AbortError') {
    return new KmqError(ErrorCode.RequestTimedOut, `Kubernetes API: ${verb} ${resource}: no answer within ${call.timeoutMs} ms`, context, { cause: err });
  }
  // Refused or reset connections, DNS, TLS: the API server is not reachable now.
  return new KmqError(ErrorCode.BrokerNotAvailable, `Kubernetes API: ${verb} ${resource}: ${message}`, context, { cause: err });
}
