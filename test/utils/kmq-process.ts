import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The built CLI; `npm test` builds first. */
export const CLI = path.join(root, 'dist', 'cli', 'main.js');

/**
 * A real `kmq` process whose JSON log lines are collected. launch() resolves once
 * the line with the given message appears (its fields are returned), and rejects
 * with the output so far if the process exits first or takes over 20 s.
 */
export class KmqProcess {
  readonly lines: string[] = [];
  private readonly exited: Promise<number | null>;

  protected constructor(readonly child: ChildProcess) {
    // 'close', not 'exit': it comes once stdout and stderr are drained, so every log line is in by then.
    this.exited = new Promise((resolve) => child.once('close', (code) => resolve(code)));
  }

  protected static spawnCli(args: string[], env: Record<string, string> | undefined): ChildProcess {
    return spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KMQ_LOG_LEVEL: 'info', ...env } });
  }

  /** Waits for the log line whose msg is `started`; returns its fields. */
  protected waitFor(started: string, what: string): Promise<Record<string, unknown>> {
    const child = this.child;
    return new Promise((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`${what} did not start in 20 s:\n${this.lines.join('\n')}`)), 20_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.lines.push(line);
          if (line.includes(`"${started}"`)) {
            clearTimeout(timer);
            resolve(JSON.parse(line) as Record<string, unknown>);
          }
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => this.lines.push(chunk.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${what} exited with ${code}:\n${this.lines.join('\n')}`));
      });
    });
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

  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}
