import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The built CLI; `npm test` builds first. */
export const CLI = path.join(root, 'dist', 'cli', 'main.js');

export interface BrokerProcessOptions {
  dataDir?: string;
  args?: string[];
  env?: Record<string, string>;
}

/**
 * A real broker process (`kmq broker`) on a free loopback port, with its JSON log
 * lines collected. Stop it with stop() (SIGTERM) or kill() (SIGKILL).
 */
export class BrokerProcess {
  readonly lines: string[] = [];
  port = 0;
  httpPort = 0;
  private exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess, readonly dataDir: string, readonly ownsDataDir: boolean) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(opts: BrokerProcessOptions = {}): Promise<BrokerProcess> {
    const owns = opts.dataDir === undefined;
    const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-broker-'));
    const child = spawn(process.execPath, [CLI, 'broker', '--data', dataDir, '--port', '0', '--host', '127.0.0.1', ...(opts.args ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KMQ_LOG_LEVEL: 'info', ...opts.env },
    });
    const bp = new BrokerProcess(child, dataDir, owns);
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`broker did not start in 20 s:\n${bp.lines.join('\n')}`)), 20_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          bp.lines.push(line);
          if (line.includes('"Broker started"')) {
            const parsed = JSON.parse(line) as { port: number; httpPort: number };
            bp.port = parsed.port;
            bp.httpPort = parsed.httpPort;
            clearTimeout(timer);
            resolve();
          }
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => bp.lines.push(chunk.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`broker exited with ${code}:\n${bp.lines.join('\n')}`));
      });
    });
    return bp;
  }

  /** Log lines parsed as JSON (non-JSON lines skipped). */
  logs(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const l of this.lines) {
      try {
        out.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // stderr text
      }
    }
    return out;
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** Stops the process and removes its data folder if this launcher created it. */
  async cleanup(): Promise<void> {
    await this.kill();
    if (this.ownsDataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export function tempDir(prefix = 'kmq-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
