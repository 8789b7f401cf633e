import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// protocol/gen is generated from proto/: a changed .proto without `npm run gen` fails here.
describe('generated protocol code', () => {
  it('matches what buf + ts-proto generate from proto/', () => {
    const root = path.resolve(import.meta.dirname, '..');
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-gen-'));
    try {
      const template = fs.readFileSync(path.join(root, 'buf.gen.yaml'), 'utf8').replace('out: protocol/gen', `out: ${out}`);
      execFileSync(path.join(root, 'node_modules', '.bin', 'buf'), ['generate', '--template', template], { cwd: root, stdio: 'pipe' });
      const files = (dir: string): string[] =>
        fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
      const expected = files(out);
      expect(files(path.join(root, 'protocol', 'gen'))).toEqual(expected);
      for (const f of expected) {
        expect(fs.readFileSync(path.join(root, 'protocol', 'gen', f), 'utf8'), f).toBe(fs.readFileSync(path.join(out, f), 'utf8'));
      }
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
