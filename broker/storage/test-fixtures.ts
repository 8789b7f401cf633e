import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { encodeBatch } from '../../protocol/record-batch.js';
import { createLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
import { defaultLogConfig } from './log-config.js';
import type { LogConfig } from './log-config.js';

// Shared fixtures of the storage tests (imported by *.test.ts only).

/** A unique temp folder; remove it with cleanupDirs(). */
export function tempDir(dirs: string[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-storage-'));
  dirs.push(dir);
  return dir;
}

export function cleanupDirs(dirs: string[]): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** A batch of `count` records with values of `valueBytes` bytes, all stamped `timestamp`. */
export function makeBatch(count: number, timestamp = 1_000, valueBytes = 10, keyOf?: (i: number) => string | null): Buffer {
  const records = [];
  for (let i = 0; i < count; i++) {
    const key = keyOf?.(i);
    records.push({ key: key == null ? null : Buffer.from(key), value: Buffer.alloc(valueBytes, i & 0xff), timestamp });
  }
  return encodeBatch(records);
}

export function config(overrides: Partial<LogConfig> = {}): LogConfig {
  return { ...defaultLogConfig, flush: { mode: 'none', intervalMs: 1000 }, retentionMs: -1, ...overrides };
}

/** A pino logger whose JSON lines are collected in `lines`. */
export function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createLogger({ level: 'debug', destination: stream }), lines };
}
