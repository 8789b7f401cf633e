import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import type { SidecarOptions } from '../../sidecar/config.js';
import { KmqProcess } from './kmq-process.js';

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
export class SidecarProcess extends KmqProcess {
  port = 0;

  private constructor(
    child: ChildProcess,
    private readonly configDir: string,
  ) {
    super(child);
  }

  /** host:port for a gRPC client. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(opts: SidecarProcessOptions): Promise<SidecarProcess> {
    const configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-sidecar-'));
    const configFile = path.join(configDir, 'sidecar.yaml');
    fs.writeFileSync(configFile, YAML.stringify({ port: 0, ...opts.config }));
    const child = KmqProcess.spawnCli(['sidecar', '--config', configFile, '--broker', opts.broker, ...(opts.args ?? [])], opts.env);
    const sp = new SidecarProcess(child, configDir);
    try {
      sp.port = ((await sp.waitFor('Sidecar started', 'sidecar')) as { port: number }).port;
    } catch (err) {
      await sp.cleanup();
      throw err;
    }
    return sp;
  }

  /** Kills the process and removes its config folder. */
  async cleanup(): Promise<void> {
    await this.kill();
    fs.rmSync(this.configDir, { recursive: true, force: true });
  }
}
