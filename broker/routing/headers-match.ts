/**
 * Headers-exchange bindings: validation and matching against a message's headers.
 *
 * `all`: every binding header is present in the message with an equal value (so
 * an empty set matches every message). `any`: at least one is (so an empty set
 * matches none). Values compare as exact strings. Unlike RabbitMQ there is no
 * `x-match` entry: the match mode is a field of its own, and no header name is
 * treated specially.
 */

/** Limits on one binding's headers, so a binding cannot make routing expensive. */
export const MAX_BINDING_HEADERS = 64;
export const MAX_HEADER_NAME_BYTES = 255;
export const MAX_HEADER_VALUE_BYTES = 1024;

export type HeadersMatchMode = 'all' | 'any';

/** A binding's headers, compiled once for matching. */
export interface CompiledHeaders {
  readonly names: readonly string[];
  readonly values: readonly string[];
  readonly all: boolean;
}

/** Why `headers` / `match` are not valid binding arguments, or undefined when they are. */
export function headersProblem(headers: unknown, match: unknown): string | undefined {
  if (match !== undefined && match !== 'all' && match !== 'any') return `match must be "all" or "any", not ${JSON.stringify(match)}`;
  if (headers === undefined) return undefined;
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) return 'headers must be an object of string values';
  const entries = Object.entries(headers);
  if (entries.length > MAX_BINDING_HEADERS) return `${entries.length} headers (at most ${MAX_BINDING_HEADERS})`;
  for (const [name, value] of entries) {
    if (typeof value !== 'string') return `header "${name}" has a ${value === null ? 'null' : typeof value} value (values are strings)`;
    if (Buffer.byteLength(name) > MAX_HEADER_NAME_BYTES) return `header name "${name.slice(0, 40)}..." is longer than ${MAX_HEADER_NAME_BYTES} bytes`;
    if (Buffer.byteLength(value) > MAX_HEADER_VALUE_BYTES) return `header "${name}" has a value longer than ${MAX_HEADER_VALUE_BYTES} bytes`;
  }
  return undefined;
}

/** Compiles valid binding arguments (see headersProblem); `match` defaults to `all`. */
export function compileHeaders(headers: Record<string, string> | undefined, match: HeadersMatchMode | undefined): CompiledHeaders {
  const entries = Object.entries(headers ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { names: entries.map(([n]) => n), values: entries.map(([, v]) => v), all: (match ?? 'all') === 'all' };
}

/** Whether a message with `headers` matches the compiled binding. */
export function headersMatch(binding: CompiledHeaders, headers: Readonly<Record<string, string>> | undefined): boolean {
  const { names, values, all } = binding;
  if (headers === undefined) return all && names.length === 0;
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    // Own properties only: a message header named like an Object.prototype member is an ordinary header.
    const equal = Object.prototype.hasOwnProperty.call(headers, name) && headers[name] === values[i];
    if (all ? !equal : equal) return !all;
  }
  return all;
}
