import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { controlPlaneBinary, freePort } from './control-plane.js';

const LOG_LINES = 200;

// etcd processes not yet stopped, killed if the test process exits first.
const live = new Set<EtcdProcess>();
process.once('exit', () => {
  for (const p of live) p.killNow();
});

/** Options of EtcdProcess.start(). */
export interface EtcdProcessOptions {
  /** How long to wait until it is healthy (default 30 s). */
  readyTimeoutMs?: number;
  /** Where its temp data dir goes (default the OS temp folder). */
  parentDir?: string;
}

/**
 * A single-member etcd on free loopback ports with a temp data dir (the binary
 * of scripts/setup-control-plane.sh). It can be SIGKILLed and started again on
 * the same ports and data dir; `stop()` ends it and removes the data dir.
 */
export class EtcdProcess {
  readonly clientUrl: string;
  private readonly lines: string[] = [];
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly dataDir: string,
    private readonly clientPort: number,
    private readonly peerPort: number,
  ) {
    this.clientUrl = `http://127.0.0.1:${clientPort}`;
  }

  static async start(options: EtcdProcessOptions = {}): Promise<EtcdProcess> {
    const dir = fs.mkdtempSync(path.join(options.parentDir ?? os.tmpdir(), 'kmq-etcd-'));
    const etcd = new EtcdProcess(dir, await freePort(), await freePort());
    live.add(etcd);
    try {
      await etcd.restart(options.readyTimeoutMs);
      return etcd;
    } catch (err) {
      await etcd.stop();
      throw err;
    }
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts etcd (again) on the same ports and data dir and waits until it is healthy. */
  async restart(readyTimeoutMs = 30_000): Promise<void> {
    if (this.running) throw new Error('etcd is already running');
    const peerUrl = `http://127.0.0.1:${this.peerPort}`;
    const child = spawn(
      controlPlaneBinary('etcd'),
      [
        '--name=kmq-test',
        `--data-dir=${path.join(this.dataDir, 'data')}`,
        `--listen-client-urls=${this.clientUrl}`,
        `--advertise-client-urls=${this.clientUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=kmq-test=${peerUrl}`,
        '--log-level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', (err) => {
        this.keep(String(err));
        resolve();
      });
    });
    child.stdout!.on('data', (chunk: Buffer) => this.keep(chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => this.keep(chunk.toString()));
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`etcd exited before it was healthy\n${this.tail()}`);
      try {
        const res = await fetch(`${this.clientUrl}/health`);
        if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`etcd was not healthy within ${readyTimeoutMs} ms\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGKILL, and wait until it is gone. */
  async kill(): Promise<void> {
    this.killNow();
    await this.exited;
  }

  killNow(): void {
    if (this.running) this.child!.kill('SIGKILL');
  }

  /** Ends etcd (SIGTERM, SIGKILL after 3 s) and removes its data dir. */
  async stop(): Promise<void> {
    if (this.running) {
      this.child!.kill('SIGTERM');
      const timer = setTimeout(() => this.killNow(), 3000);
      await this.exited;
      clearTimeout(timer);
    }
    live.delete(this);
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  tail(n = 30): string {
    return `--- last lines of etcd ---\n${this.lines.slice(-n).join('\n')}`;
  }

  private keep(text: string): void {
    for (const line of text.split('\n')) if (line !== '') this.lines.push(line);
    if (this.lines.length > LOG_LINES) this.lines.splice(0, this.lines.length - LOG_LINES);
  }
}
