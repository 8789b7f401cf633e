import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { crdFileName, crdFiles, crdYaml, customResourceDefinition } from './crd-gen.js';
import { KINDS } from './v1alpha1/index.js';
import type { JsonSchema } from './v1alpha1/index.js';

const crdsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'crds');

// Short names of the built-in resources of Kubernetes 1.34 (kubectl api-resources).
const BUILT_IN_SHORT_NAMES = ['cs', 'cm', 'ep', 'ev', 'limits', 'ns', 'no', 'pvc', 'pv', 'po', 'rc', 'quota', 'sa', 'svc', 'crd', 'crds', 'ds', 'deploy', 'rs', 'sts', 'hpa', 'cj', 'csr', 'ing', 'netpol', 'pdb', 'pc', 'sc', 'ingclass', 'vac', 'eps'];

/** Every schema node under `s` with its path. */
function* nodes(s: JsonSchema, at: string): Generator<[string, JsonSchema]> {
  yield [at, s];
  for (const [k, v] of Object.entries(s.properties ?? {})) yield* nodes(v, `${at}.${k}`);
  if (s.items) yield* nodes(s.items, `${at}[]`);
  if (s.additionalProperties) yield* nodes(s.additionalProperties, `${at}{}`);
}

describe('CRD generator', () => {
  it('crds/ holds exactly what operator/api/v1alpha1 generates, byte for byte', () => {
    const files = crdFiles();
    const onDisk = fs.readdirSync(crdsDir).filter((f) => f.endsWith('.yaml'));
    expect(onDisk.sort(), 'the files of crds/ differ from the kinds: run scripts/gen-crds.sh').toEqual([...files.keys()].sort());
    for (const [name, text] of files) {
      expect(fs.readFileSync(path.join(crdsDir, name), 'utf8') === text, `crds/${name} is out of step with operator/api/v1alpha1: run scripts/gen-crds.sh`).toBe(true);
    }
  });

  it('writes YAML that reads back as the CRD object', () => {
    for (const def of KINDS) expect(parse(crdYaml(def))).toEqual(customResourceDefinition(def));
    expect(crdFileName(KINDS[0]!)).toBe('kmq.dev_brokerclusters.yaml');
  });

  it('gives every kind the kmq category, a status subresource and short names no other resource uses', () => {
    const seen = new Set<string>(BUILT_IN_SHORT_NAMES);
    for (const def of KINDS) {
      const crd = customResourceDefinition(def) as { spec: { names: { categories: string[]; shortNames: string[] }; versions: Array<{ subresources: unknown }> } };
      expect(crd.spec.names.categories).toEqual(['kmq']);
      expect(crd.spec.versions[0]!.subresources).toEqual({ status: {} });
      expect(def.shortNames.length).toBeGreaterThan(0);
      for (const s of def.shortNames) {
        expect(seen.has(s), `short name ${s} of ${def.kind} is taken`).toBe(false);
        seen.add(s);
      }
      expect(def.printerColumns.map((c) => c.name)).toContain('Ready');
      expect(def.printerColumns.at(-1)!.name).toBe('Age');
    }
  });

  it('gives every spec but BrokerCluster and DLQPolicy a brokerCluster and a deletionPolicy that defaults to Retain', () => {
    for (const def of KINDS) {
      const props = def.spec.properties ?? {};
      if (def.kind === 'BrokerCluster' || def.kind === 'DLQPolicy') {
        expect(props.deletionPolicy).toBeUndefined();
        continue;
      }
      expect(props.brokerCluster?.type, def.kind).toBe('string');
      expect(props.deletionPolicy?.default, def.kind).toBe('Retain');
      expect(props.deletionPolicy?.enum, def.kind).toEqual(['Retain', 'Delete', 'DeleteIfEmpty']);
    }
  });

  it('keeps the schemas structural and their CEL rules bounded: every node has a type, every string with a rule a maxLength or an enum', () => {
    for (const def of KINDS) {
      for (const [at, s] of [...nodes(def.spec, 'spec'), ...nodes(def.status, 'status')]) {
        if (s['x-kubernetes-int-or-string']) expect(s.anyOf, at).toEqual([{ type: 'integer' }, { type: 'string' }]);
        else expect(s.type, `${def.kind} ${at} has no type`).toBeDefined();
        if (s.type === 'string' && s['x-kubernetes-validations']) expect(s.maxLength ?? s.enum, `${def.kind} ${at}`).toBeDefined();
        if (s.type === 'array') expect(s.maxItems, `${def.kind} ${at}`).toBeDefined();
        if (s.type === 'object' && s.additionalProperties) expect(s.maxProperties, `${def.kind} ${at}`).toBeDefined();
        if (s.required) for (const r of s.required) expect(s.properties?.[r], `${def.kind} ${at} requires ${r}`).toBeDefined();
      }
    }
  });
});
