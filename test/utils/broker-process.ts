import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { KmqProcess } from './kmq-process.js';

export { CLI } from './kmq-process.js';

export interface BrokerProcessOptions {
  dataDir?: string;
  args?: string[];
  env?: Record<string, string>;
}

/**
 * A real broker process (`kmq broker`) on a free loopback port, with its JSON log
 * lines collected. Stop it with stop() (SIGTERM) or kill() (SIGKILL).
 */
export class BrokerProcess extends KmqProcess {
  port = 0;
  httpPort = 0;

  private constructor(child: ChildProcess, readonly dataDir: string, readonly ownsDataDir: boolean) {
    super(child);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(opts: BrokerProcessOptions = {}): Promise<BrokerProcess> {
    const owns = opts.dataDir === undefined;
    const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-broker-'));
    const child = KmqProcess.spawnCli(['broker', '--data', dataDir, '--port', '0', '--host', '127.0.0.1', ...(opts.args ?? [])], opts.env);
    const bp = new BrokerProcess(child, dataDir, owns);
    try {
      const started = (await bp.waitFor('Broker started', 'broker')) as { port: number; httpPort: number };
      bp.port = started.port;
      bp.httpPort = started.httpPort;
    } catch (err) {
      await bp.cleanup();
      throw err;
    }
    return bp;
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
