import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  PREVIOUS_REVISION_ANNOTATION,
  REVISION_ANNOTATION,
  configMapNameFor,
  dataKeyOf,
  decodeEntry,
  encodeEntry,
  eventsBetween,
  isDnsSubdomain,
  stateOf,
  storeLabelValue,
} from './kubernetes-store-layout.js';
import type { StoredEntry } from './kubernetes-store-layout.js';

const CONFIG_MAP_KEY = /^[-._a-zA-Z0-9]+$/;

/** A ConfigMap holding `entries` after a write that took the counter from `previous` to `revision`. */
function configMap(previous: number, revision: number, entries: StoredEntry[], extra: Record<string, string> = {}) {
  const data: Record<string, string> = { ...extra };
  for (const e of entries) data[dataKeyOf(e.key)] = encodeEntry(e);
  return stateOf({ metadata: { resourceVersion: String(revision), annotations: { [REVISION_ANNOTATION]: String(revision), [PREVIOUS_REVISION_ANNOTATION]: String(previous) } }, data });
}

describe('data keys', () => {
  it('keep keys readable: / becomes ., other bytes _hh', () => {
    expect(dataKeyOf('brokers/1')).toBe('brokers.1');
    expect(dataKeyOf('controller-epoch')).toBe('controller-epoch');
    expect(dataKeyOf('topics/a.b_c')).toBe('topics.a_2eb_5fc');
    expect(dataKeyOf('ü')).toBe('_c3_bc');
  });

  it('hash keys that would not be valid ConfigMap keys', () => {
    for (const key of ['', '/', '//', 'x'.repeat(254)]) expect(dataKeyOf(key)).toMatch(/^_x[0-9a-f]{64}$/);
  });

  it('are valid ConfigMap keys and distinct for distinct store keys', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }), (a, b) => {
        const [ka, kb] = [dataKeyOf(a), dataKeyOf(b)];
        expect(ka).toMatch(CONFIG_MAP_KEY);
        expect(ka.length).toBeLessThanOrEqual(253);
        expect(ka).not.toMatch(/^\.\.?$/);
        if (a !== b) expect(ka).not.toBe(kb);
      }),
    );
  });
});

describe('entries', () => {
  it('round-trip, and are refused under a data key that is not their own', () => {
    const e: StoredEntry = { key: 'brokers/1', value: '{"id":1}', version: 7, lease: 'kmq-lease-1' };
    expect(decodeEntry('brokers.1', encodeEntry(e))).toEqual(e);
    expect(decodeEntry('brokers.2', encodeEntry(e))).toBeUndefined();
    expect(decodeEntry('x', 'not json')).toBeUndefined();
    expect(decodeEntry('a', JSON.stringify({ k: 'a', v: 'x', ver: 0 }))).toBeUndefined();
  });
});

describe('names', () => {
  it('derive a DNS-1123 ConfigMap name of at most 63 characters, distinct per prefix', () => {
    expect(configMapNameFor('prod')).toBe('kmq-cluster-prod');
    expect(configMapNameFor('/kmq/abc/')).toMatch(/^kmq-cluster-kmq-abc-[0-9a-f]{8}$/);
    expect(configMapNameFor('Prod')).not.toBe(configMapNameFor('prod'));
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (prefix) => {
        const name = configMapNameFor(prefix);
        expect(isDnsSubdomain(name)).toBe(true);
        expect(name.length).toBeLessThanOrEqual(63);
        expect(storeLabelValue(name)).toBe(name);
      }),
    );
    expect(storeLabelValue('a'.repeat(100))).toMatch(/^a{46}-[0-9a-f]{16}$/);
  });
});

describe('eventsBetween', () => {
  const a1: StoredEntry = { key: 'w/a', value: '1', version: 101 };
  const b2: StoredEntry = { key: 'w/b', value: '2', version: 102, lease: 'l1' };
  const c3: StoredEntry = { key: 'w/c', value: '3', version: 103, lease: 'l1' };

  it('turns one write into its events, with versions', () => {
    const before = configMap(102, 103, [a1, b2, c3]);
    expect(eventsBetween(before, configMap(103, 104, [{ ...a1, value: 'x', version: 104 }, b2, c3]))).toEqual([{ type: 'put', key: 'w/a', value: 'x', version: 104 }]);
    expect(eventsBetween(before, configMap(103, 104, [a1, c3]))).toEqual([{ type: 'delete', key: 'w/b', version: 104 }]);
    expect(eventsBetween(before, before)).toEqual([]);
  });

  it('gives the keys deleted together the versions of their write in key order', () => {
    const before = configMap(102, 103, [a1, c3, b2]);
    expect(eventsBetween(before, configMap(103, 105, [a1]))).toEqual([
      { type: 'delete', key: 'w/b', version: 104 },
      { type: 'delete', key: 'w/c', version: 105 },
    ]);
  });

  it('reports a state that is not one write after the known one (missed write, hand edit)', () => {
    const before = configMap(102, 103, [a1, b2]);
    expect(eventsBetween(before, configMap(104, 105, [a1]))).toBeUndefined();
    expect(eventsBetween(before, configMap(103, 104, [a1, b2], { junk: 'x' }))).toBeUndefined();
    expect(eventsBetween(before, configMap(103, 105, [a1]))).toBeUndefined();
  });
});
