import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import type { SidecarOptions } from '../../sidecar/config.js';
import { CLI } from './broker-process.js';

export interface SidecarProcessOptions {
  /** Broker address (host:port). */
  broker: string;
  /** Written to a temp YAML file passed with --config; the port defaults to 0 (any free port). */
  config?: SidecarOptions;
  args?: string[];
  env?: Record<string, string>;
}

/**
 * A real sidecar process (`kmq sidecar`) on a free loopback port, with its JSON log
 * lines collected. Stop it with stop() (SIGTERM) or kill() (SIGKILL).
 */
export class SidecarProcess {
  readonly lines: string[] = [];
  port = 0;
  private readonly exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    private readonly configDir: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** host:port for a gRPC client. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(opts: SidecarProcessOptions): Promise<SidecarProcess> {
    const configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-sidecar-'));
    const configFile = path.join(configDir, 'sidecar.yaml');
    fs.writeFileSync(configFile, YAML.stringify({ port: 0, ...opts.config }));
    const child = spawn(process.execPath, [CLI, 'sidecar', '--config', configFile, '--broker', opts.broker, ...(opts.args ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KMQ_LOG_LEVEL: 'info', ...opts.env },
    });
    const sp = new SidecarProcess(child, configDir);
    try {
      await new Promise<void>((resolve, reject) => {
        let buf = '';
        const timer = setTimeout(() => reject(new Error(`sidecar did not start in 20 s:\n${sp.lines.join('\n')}`)), 20_000);
        child.stdout!.on('data', (chunk: Buffer) => {
          buf += chunk.toString();
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            sp.lines.push(line);
            if (line.includes('"Sidecar started"')) {
              sp.port = (JSON.parse(line) as { port: number }).port;
              clearTimeout(timer);
              resolve();
            }
          }
        });
        child.stderr!.on('data', (chunk: Buffer) => sp.lines.push(chunk.toString()));
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`sidecar exited with ${code}:\n${sp.lines.join('\n')}`));
        });
      });
    } catch (err) {
      await sp.cleanup();
      throw err;
    }
    return sp;
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

  /** Kills the process and removes its config folder. */
  async cleanup(): Promise<void> {
    await this.kill();
    fs.rmSync(this.configDir, { recursive: true, force: true });
  }
}
