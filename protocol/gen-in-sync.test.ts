import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// Generated code must match proto/: a changed .proto without `npm run gen` fails here.
// Each buf template and the folder it writes (as scripts/gen-proto.sh runs them).
const targets: ReadonlyArray<readonly [template: string, out: string]> = [
  ['buf.gen.yaml', 'protocol/gen'],
  ['buf.gen.sidecar.yaml', 'sidecar/gen'],
];

describe('generated code', () => {
  const root = path.resolve(import.meta.dirname, '..');
  const files = (dir: string): string[] =>
    fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();

  for (const [templateFile, outDir] of targets) {
    it(`${outDir} matches what buf + ts-proto generate with ${templateFile}`, () => {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-gen-'));
      try {
        const template = fs.readFileSync(path.join(root, templateFile), 'utf8');
        expect(template, `${templateFile} writes to ${outDir}`).toContain(`out: ${outDir}\n`);
        execFileSync(path.join(root, 'node_modules', '.bin', 'buf'), ['generate', '--template', template.replaceAll(`out: ${outDir}\n`, `out: ${out}\n`)], { cwd: root, stdio: 'pipe' });
        const expected = files(out);
        expect(expected.length).toBeGreaterThan(0);
        expect(files(path.join(root, outDir))).toEqual(expected);
        for (const f of expected) {
          expect(fs.readFileSync(path.join(root, outDir, f), 'utf8'), f).toBe(fs.readFileSync(path.join(out, f), 'utf8'));
        }
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    });
  }
});
