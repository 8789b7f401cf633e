import { createHash } from 'node:crypto';
import type { WatchEvent } from './coordination-store.js';

/**
 * How the kubernetes coordination store lays its keys out in one ConfigMap
 * (see kubernetes-coordination-store.ts for the protocol). Pure functions only:
 * names, the data-key encoding, the entry codec, and the diff of two states of
 * the ConfigMap into watch events.
 *
 * Format:
 * - `data[<dataKey(key)>]` = JSON `{"k": key, "v": value, "ver": version, "lease"?: leaseName}`.
 *   The data key is the store key with `[A-Za-z0-9-]` kept, `/` written as `.` and every
 *   other UTF-8 byte as `_` and two lowercase hex digits (readable in `kubectl get -o yaml`,
 *   and injective); a key whose encoding is not a valid ConfigMap key (empty, `.`, `..`,
 *   longer than 253 characters) is stored under `_x<sha256 hex>` instead. `k` is authoritative.
 * - annotation `kmq.dev/revision`: the store-wide version counter, raised by every write by the
 *   number of keys it puts or deletes; `kmq.dev/previous-revision`: the counter before the last
 *   write. A write's puts carry their versions in `ver`; its deleted keys take the remaining
 *   versions of (previous, revision], in key order. So any two consecutive states of the object
 *   give the exact events between them, with versions.
 * Invariants: every entry's `ver` ≤ revision; entries changed by the last write have
 * `ver` in (previous, revision]; the counter starts at the object's creation time in ms, so a
 * ConfigMap deleted and created again still hands out versions above the old ones.
 */

/** Annotation holding the store-wide version counter. */
export const REVISION_ANNOTATION = 'kmq.dev/revision';
/** Annotation holding the counter as it was before the last write. */
export const PREVIOUS_REVISION_ANNOTATION = 'kmq.dev/previous-revision';
/** Label on the ConfigMap and on every Lease of one store: the store's label value. */
export const STORE_LABEL = 'kmq.dev/coordination-store';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';

/** The apiserver's limit on a ConfigMap's data (keys plus values), bytes. */
export const CONFIG_MAP_DATA_LIMIT = 1024 * 1024;

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const LABEL_VALUE = /^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$/;
const CONFIG_MAP_KEY = /^[-._a-zA-Z0-9]+$/;

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function isDnsSubdomain(name: string): boolean {
  return name.length <= 253 && DNS_SUBDOMAIN.test(name);
}

/**
 * The ConfigMap name for a key prefix: `kmq-cluster-<prefix, sanitised>`, at most 63
 * characters; when sanitising loses anything (case, `/`, length), a hash of the
 * prefix is appended so that different prefixes never share a ConfigMap.
 */
export function configMapNameFor(prefix: string): string {
  const sanitised = prefix.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  const plain = sanitised === '' ? 'kmq-cluster' : `kmq-cluster-${sanitised}`;
  if (sanitised === prefix && plain.length <= 63) return plain;
  return `${plain.slice(0, 54).replace(/-+$/, '')}-${sha256(prefix).slice(0, 8)}`;
}

/** The value of STORE_LABEL for a ConfigMap name (label values are at most 63 characters). */
export function storeLabelValue(configMapName: string): string {
  if (configMapName.length <= 63 && LABEL_VALUE.test(configMapName)) return configMapName;
  return `${configMapName.slice(0, 46).replace(/[-.]+$/, '')}-${sha256(configMapName).slice(0, 16)}`;
}

/** The ConfigMap data key that holds a store key. */
export function dataKeyOf(key: string): string {
  let out = '';
  for (const byte of Buffer.from(key, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9-]/.test(c)) out += c;
    else if (c === '/') out += '.';
    else out += `_${byte.toString(16).padStart(2, '0')}`;
  }
  if (out === '' || out === '.' || out === '..' || out.length > 253 || !CONFIG_MAP_KEY.test(out)) return `_x${sha256(key)}`;
  return out;
}

/** One key as stored. */
export interface StoredEntry {
  key: string;
  value: string;
  version: number;
  /** The name of the Lease the key is bound to. */
  lease?: string;
}

export function encodeEntry(entry: StoredEntry): string {
  return JSON.stringify(entry.lease === undefined ? { k: entry.key, v: entry.value, ver: entry.version } : { k: entry.key, v: entry.value, ver: entry.version, lease: entry.lease });
}

/** The entry of a data value, or undefined when it is not one (hand-edited, foreign). */
export function decodeEntry(dataKey: string, raw: string): StoredEntry | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const o = parsed as { k?: unknown; v?: unknown; ver?: unknown; lease?: unknown } | null;
  if (typeof o?.k !== 'string' || typeof o.v !== 'string' || typeof o.ver !== 'number' || !Number.isSafeInteger(o.ver) || o.ver <= 0) return undefined;
  if (o.lease !== undefined && typeof o.lease !== 'string') return undefined;
  if (dataKeyOf(o.k) !== dataKey) return undefined;
  return o.lease === undefined ? { key: o.k, value: o.v, version: o.ver } : { key: o.k, value: o.v, version: o.ver, lease: o.lease };
}

/** The store as one state of its ConfigMap holds it. */
export interface StoreState {
  /** The ConfigMap's resourceVersion. */
  resourceVersion: string;
  revision: number;
  previousRevision: number;
  /** Data values as stored, by data key. */
  raw: Record<string, string>;
  /** Decoded entries, by data key. */
  entries: Map<string, StoredEntry>;
}

function counter(annotations: Record<string, string> | undefined, name: string): number {
  const n = Number(annotations?.[name]);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

/**
 * The state a ConfigMap holds (data and annotations as the API serves them). Entries
 * unchanged since `previous` are taken from it rather than decoded again.
 */
export function stateOf(
  object: { metadata?: { resourceVersion?: string; annotations?: Record<string, string> }; data?: Record<string, string> },
  previous?: StoreState,
): StoreState {
  const raw = { ...(object.data ?? {}) };
  const entries = new Map<string, StoredEntry>();
  for (const [dataKey, value] of Object.entries(raw)) {
    const entry = previous?.raw[dataKey] === value ? previous.entries.get(dataKey) : decodeEntry(dataKey, value);
    if (entry) entries.set(dataKey, entry);
  }
  return {
    resourceVersion: object.metadata?.resourceVersion ?? '',
    revision: counter(object.metadata?.annotations, REVISION_ANNOTATION),
    previousRevision: counter(object.metadata?.annotations, PREVIOUS_REVISION_ANNOTATION),
    raw,
    entries,
  };
}

/** The size the apiserver counts against CONFIG_MAP_DATA_LIMIT. */
export function dataSize(data: Record<string, string>): number {
  let size = 0;
  for (const [k, v] of Object.entries(data)) size += k.length + Buffer.byteLength(v, 'utf8');
  return size;
}

/** A watch event of one key. */
export type KeyEvent = Exclude<WatchEvent, { type: 'resync' }>;

/**
 * The events between two consecutive states of the store, in version order, or
 * undefined when `next` is not the result of exactly one write applied to `prev`
 * (a write was missed, or the object was edited by hand): the watcher must resync.
 */
export function eventsBetween(prev: StoreState, next: StoreState): KeyEvent[] | undefined {
  if (next.revision === prev.revision) return [];
  if (next.previousRevision !== prev.revision || next.revision < prev.revision) return undefined;
  const puts: (WatchEvent & { type: 'put' })[] = [];
  const deleted: string[] = [];
  for (const [dataKey, raw] of Object.entries(next.raw)) {
    if (prev.raw[dataKey] === raw) continue;
    const entry = next.entries.get(dataKey);
    if (!entry || entry.version <= next.previousRevision || entry.version > next.revision) return undefined;
    puts.push({ type: 'put', key: entry.key, value: entry.value, version: entry.version });
  }
  for (const dataKey of Object.keys(prev.raw)) {
    if (dataKey in next.raw) continue;
    const entry = prev.entries.get(dataKey);
    if (!entry) return undefined;
    deleted.push(entry.key);
  }
  if (puts.length + deleted.length !== next.revision - next.previousRevision) return undefined;
  const taken = new Set(puts.map((p) => p.version));
  if (taken.size !== puts.length) return undefined;
  const free: number[] = [];
  for (let v = next.previousRevision + 1; v <= next.revision; v++) if (!taken.has(v)) free.push(v);
  deleted.sort(compareKeys);
  const events: KeyEvent[] = [...puts, ...deleted.map((key, i) => ({ type: 'delete' as const, key, version: free[i]! }))];
  return events.sort((a, b) => a.version - b.version);
}

/** Key order of `list`: by UTF-16 code units, as the other stores sort. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
