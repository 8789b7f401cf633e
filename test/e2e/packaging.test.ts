import { execFile } from 'node:child_process';
import { builtinModules } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// What can be checked here of the parts that need a Docker engine: the Dockerfile
// (multi-stage, pinned Node 20 bases, non-root, only dist and production
// dependencies), .dockerignore, and test/e2e/kind.sh (bash -n).

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Instruction {
  op: string;
  args: string;
}

interface Stage {
  name: string;
  /** The image or earlier stage it starts from, ARGs resolved. */
  from: string;
  instructions: Instruction[];
}

/** The Dockerfile as stages of instructions: continuation lines joined, comments dropped, global ARG defaults substituted in FROM. */
function dockerfileStages(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile: cannot read line "${line}"`);
    const op = m[1]!.toUpperCase();
    const rest = m[2]!.trim();
    if (op === 'ARG' && stages.length === 0) {
      const [name, value] = rest.split('=');
      if (value !== undefined) args.set(name!, value);
      continue;
    }
    if (op === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (!from) throw new Error(`Dockerfile: cannot read FROM ${rest}`);
      const image = from[1]!.replace(/\$\{(\w+)\}/g, (_, k: string) => {
        const v = args.get(k);
        if (v === undefined) throw new Error(`Dockerfile: ARG ${k} has no default`);
        return v;
      });
      stages.push({ name: from[2] ?? String(stages.length), from: image, instructions: [] });
      continue;
    }
    if (stages.length === 0) throw new Error(`Dockerfile: ${op} before the first FROM`);
    stages[stages.length - 1]!.instructions.push({ op, args: rest });
  }
  return stages;
}

function stage(stages: Stage[], name: string): Stage {
  const s = stages.find((x) => x.name === name);
  if (!s) throw new Error(`Dockerfile has no stage ${name}`);
  return s;
}

/** The stages a stage is built on, itself first. */
function lineage(stages: Stage[], s: Stage): Stage[] {
  const parent = stages.find((x) => x.name === s.from);
  return parent ? [s, ...lineage(stages, parent)] : [s];
}

/** Bare import specifiers (packages) reachable from a TypeScript entry file through relative imports, type-only imports left out. */
function packagesImportedFrom(entry: string): Map<string, string> {
  const found = new Map<string, string>();
  const seen = new Set<string>();
  const queue = [entry];
  const importRe = /^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(importRe)) {
      const spec = m[1] ?? m[2]!;
      if (spec.startsWith('.')) {
        const base = path.resolve(path.dirname(file), spec);
        const candidates = [base.replace(/\.js$/, '.ts'), `${base}.ts`, path.join(base, 'index.ts')];
        const next = candidates.find((c) => fs.existsSync(c) && fs.statSync(c).isFile());
        if (!next) throw new Error(`${path.relative(root, file)} imports ${spec}, which has no .ts file`);
        queue.push(next);
      } else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) {
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!found.has(name)) found.set(name, path.relative(root, file));
      }
    }
  }
  return found;
}

describe('Dockerfile', () => {
  const text = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
  const stages = dockerfileStages(text);

  it('builds on pinned Node 20 images, never latest, in several stages', () => {
    const external = stages.filter((s) => !stages.some((x) => x.name === s.from));
    expect(external.length).toBeGreaterThanOrEqual(2);
    for (const s of external) {
      expect(s.from, `stage ${s.name}`).toMatch(/^node:20(\.\d+)*-\S+$/);
      expect(s.from, `stage ${s.name}`).not.toMatch(/:latest$|^[^:]+$/);
    }
    expect(stage(stages, 'runtime').from).toMatch(/-slim$|^gcr\.io\/distroless\/nodejs20/);
  });

  it('compiles with npm ci and npm run build, and ships production dependencies only', () => {
    const runs = (s: Stage): string => s.instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    expect(runs(stage(stages, 'build'))).toMatch(/npm ci(?! --omit)[\s\S]*npm run build/);
    expect(runs(stage(stages, 'deps'))).toMatch(/npm ci --omit=dev/);
    const copies = stage(stages, 'runtime').instructions.filter((i) => i.op === 'COPY').map((i) => i.args.replace(/\s+/g, ' '));
    expect(copies.sort()).toEqual(['--from=build /src/dist ./dist', '--from=deps /src/node_modules ./node_modules', 'package.json ./'].sort());
  });

  it('runs as a non-root user, with kmq as the entrypoint, in every target', () => {
    const targets = ['operator', 'broker', 'sidecar', 'kmq'];
    // `docker build .` builds the last stage: the runtime image, not a build stage.
    expect(stages[stages.length - 1]!.name).toBe('kmq');
    for (const name of targets) {
      const chain = lineage(stages, stage(stages, name));
      expect(chain.map((s) => s.name), `target ${name}`).toContain('runtime');
      // The nearest USER wins.
      const user = chain.flatMap((s) => s.instructions.filter((i) => i.op === 'USER').reverse())[0];
      expect(user?.args, `USER of target ${name}`).toMatch(/^[1-9]\d*(:[1-9]\d*)?$/);
      const entrypoint = chain.flatMap((s) => s.instructions.filter((i) => i.op === 'ENTRYPOINT').reverse())[0];
      expect(entrypoint?.args, `ENTRYPOINT of target ${name}`).toBe('["kmq"]');
    }
  });

  it('exposes the ports the chart configures for the operator', () => {
    const values = parse(fs.readFileSync(path.join(root, 'charts', 'kmq', 'values.yaml'), 'utf8')) as { healthPort: number; webhook: { port: number } };
    const expose = stage(stages, 'operator').instructions.find((i) => i.op === 'EXPOSE')!.args.split(/\s+/).map(Number);
    expect(expose.sort()).toEqual([values.healthPort, values.webhook.port].sort());
  });

  it('leaves installed modules, build output and git out of the build context', () => {
    const ignored = fs
      .readFileSync(path.join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const entry of ['node_modules', 'dist', '.git']) expect(ignored).toContain(entry);
  });

  it('has every package the kmq command imports among the production dependencies', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const imported = packagesImportedFrom(path.join(root, 'cli', 'main.ts'));
    // The traversal reaches the broker, the sidecar and their libraries.
    expect([...imported.keys()]).toEqual(expect.arrayContaining(['commander', 'pino', '@grpc/grpc-js']));
    for (const [name, file] of imported) expect(pkg.dependencies, `${name} (imported by ${file}) is not in dependencies: the image has only those`).toHaveProperty([name]);
  });
});

describe('test/e2e/kind.sh', () => {
  const script = path.join(root, 'test', 'e2e', 'kind.sh');

  it('parses with bash -n and is executable', async () => {
    await expect(run('bash', ['-n', script])).resolves.toBeDefined();
    expect(fs.statSync(script).mode & 0o111).not.toBe(0);
  });

  it('stops at the first failure and always deletes its cluster', () => {
    const text = fs.readFileSync(script, 'utf8');
    expect(text).toMatch(/^set -euo pipefail$/m);
    expect(text).toMatch(/^trap on_exit EXIT$/m);
    expect(text).toMatch(/kind delete cluster --name "\$CLUSTER"/);
    // The chart and the examples it installs are the repository's own.
    expect(text).toContain('helm install kmq charts/kmq');
    expect(text).toContain('kubectl apply -f examples/kubernetes/');
  });
});
