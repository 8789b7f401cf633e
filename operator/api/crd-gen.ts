// Generates crds/ from the schemas of operator/api/v1alpha1: `node dist/operator/api/crd-gen.js crds`
// (scripts/gen-crds.sh builds and runs it). crd-gen.test.ts checks that crds/ is in step.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { CATEGORY, GROUP, KINDS, VERSION } from './v1alpha1/index.js';
import type { JsonSchema, KindDefinition } from './v1alpha1/index.js';

/** The CustomResourceDefinition (apiextensions.k8s.io/v1) of one kind. */
export function customResourceDefinition(def: KindDefinition): Record<string, unknown> {
  const schema: JsonSchema = {
    type: 'object',
    description: def.description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string', description: 'APIVersion defines the versioned schema of this representation of an object.' },
      kind: { type: 'string', description: 'Kind is a string value representing the REST resource this object represents.' },
      metadata: { type: 'object' },
      spec: def.spec,
      status: def.status,
    },
    ...(def.validations === undefined ? {} : { 'x-kubernetes-validations': def.validations }),
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'kmq' } },
    spec: {
      group: GROUP,
      names: { kind: def.kind, listKind: `${def.kind}List`, plural: def.plural, singular: def.singular, shortNames: def.shortNames, categories: [CATEGORY] },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns,
          schema: { openAPIV3Schema: schema },
        },
      ],
    },
  };
}

/** The file of crds/ that holds the CRD of `def`. */
export function crdFileName(def: KindDefinition): string {
  return `${GROUP}_${def.plural}.yaml`;
}

const HEADER = '# Generated from operator/api/v1alpha1 by scripts/gen-crds.sh; do not edit.\n';

/** The YAML text of the CRD of `def`, as crds/ holds it. */
export function crdYaml(def: KindDefinition): string {
  return HEADER + stringify(customResourceDefinition(def), { lineWidth: 0, aliasDuplicateObjects: false });
}

/** Every CRD file: name → text. */
export function crdFiles(): Map<string, string> {
  return new Map(KINDS.map((def) => [crdFileName(def), crdYaml(def)]));
}

/** Writes every CRD into `dir`, and removes YAML files there that no kind generates. */
export function writeCrds(dir: string): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const files = crdFiles();
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.yaml') && !files.has(f)) fs.rmSync(path.join(dir, f));
  for (const [name, text] of files) fs.writeFileSync(path.join(dir, name), text);
  return [...files.keys()];
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  if (dir === undefined) {
    process.stderr.write('usage: node dist/operator/api/crd-gen.js <dir>\n');
    process.exit(2);
  }
  for (const f of writeCrds(dir)) process.stdout.write(`${path.join(dir, f)}\n`);
}
