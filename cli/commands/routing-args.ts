import type { DestinationRef } from '../../client/index.js';
import { CliError } from '../output.js';

/** Commander accumulator for repeatable flags (--header a=1 --header b=2). */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `k=v` pairs into a map; the value may hold '=' and be empty, the key may not. */
export function parseHeaderFlags(flag: string, pairs: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs ?? []) {
    const at = p.indexOf('=');
    if (at <= 0) throw new CliError(`${flag} must be key=value, got "${p}"`);
    const key = p.slice(0, at);
    if (Object.prototype.hasOwnProperty.call(out, key)) throw new CliError(`${flag} ${key} given twice`);
    out[key] = p.slice(at + 1);
  }
  return out;
}

/** `queue:NAME` or `topic:NAME`; a bare NAME is a queue. */
export function parseDestination(flag: string, value: string): DestinationRef {
  const at = value.indexOf(':');
  if (at < 0) {
    if (value === '') throw new CliError(`${flag} must be queue:NAME or topic:NAME, got ""`);
    return { kind: 'queue', name: value };
  }
  const kind = value.slice(0, at);
  const name = value.slice(at + 1);
  if ((kind !== 'queue' && kind !== 'topic') || name === '') throw new CliError(`${flag} must be queue:NAME or topic:NAME, got "${value}"`);
  return { kind, name };
}

/** An ISO time (2026-01-31T12:00:00Z) or ms since the epoch. */
export function parseTime(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  const ms = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(ms)) throw new CliError(`${flag} must be an ISO time (e.g. 2026-01-31T12:00:00Z) or ms since the epoch, got "${value}"`);
  return ms;
}

/** Record headers as printable strings. */
export function headersToStrings(headers: ReadonlyArray<{ key: string; value: Buffer | null }>): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const h of headers) out[h.key] = h.value === null ? null : h.value.toString('utf8');
  return out;
}
