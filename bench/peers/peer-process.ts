/**
 * A peer server process of the comparison benchmark (Kafka, RabbitMQ, NATS, Redis),
 * started in its own process group so that stop() ends the whole tree (JVM, Erlang
 * VM and helpers such as epmd), and its temp folder removed afterwards.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A started peer: where its clients connect and what it was configured with. */
export interface RunningPeer {
  /** host:port of the client listener. */
  address: string;
  /** Every process of the peer (for CPU sampling): the group leader's pid first. */
  pids(): number[];
  /** The settings the peer runs with, as lines for the report. */
  settings: string[];
  version: string;
  stop(): Promise<void>;
}

const groups = new Set<ProcessGroup>();

/** SIGKILLs every peer process group still running (synchronous: usable from exit handlers). */
export function killAllPeers(): void {
  for (const g of groups) g.kill('SIGKILL');
}

export { freePort } from '../../testkit/ports.js';

/** A temp folder for one peer: `<tmp>/kmq-peer-<name>-XXXX`. */
export function peerTempDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `kmq-peer-${name}-`));
}

/** Children of `pid`, recursively (from /proc/<pid>/task/<tid>/children). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number): void => {
    let tids: string[] = [];
    try {
      tids = fs.readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const t of tids) {
      let kids = '';
      try {
        kids = fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const k of kids.split(' ').filter((x) => x !== '')) {
        out.push(Number(k));
        walk(Number(k));
      }
    }
  };
  walk(pid);
  return out;
}

/** One spawned process group with a log file and the last lines of its output. */
export class ProcessGroup {
  private readonly tail: string[] = [];
  readonly exited: Promise<number | null>;
  private readonly extra: ProcessGroup[] = [];

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    logFile: string,
  ) {
    groups.add(this);
    const log = fs.createWriteStream(logFile, { flags: 'a' });
    const keep = (d: Buffer): void => {
      log.write(d);
      for (const line of d.toString().split('\n')) {
        if (line.trim() === '') continue;
        this.tail.push(line);
        if (this.tail.length > 40) this.tail.shift();
      }
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        groups.delete(this);
        log.end();
        resolve(code);
      }),
    );
  }

  /** Spawns `cmd args` as the leader of a new process group; output goes to `logFile`. */
  static spawn(name: string, cmd: string, args: string[], logFile: string, options: SpawnOptions = {}): ProcessGroup {
    const child = spawn(cmd, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    return new ProcessGroup(name, child, logFile);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The leader and every descendant still alive. */
  pids(): number[] {
    const pid = this.child.pid;
    return pid === undefined || !this.running ? [] : [pid, ...descendants(pid)];
  }

  /** The last lines of output, for error messages. */
  lastLines(): string {
    return this.tail.join('\n');
  }

  /** Another process group that stops with this one (e.g. RabbitMQ's epmd). */
  attach(other: ProcessGroup): void {
    this.extra.push(other);
  }

  /** Signals every process of the group, also after the leader has exited (its children may outlive it). */
  kill(sig: NodeJS.Signals): void {
    for (const e of this.extra) e.kill(sig);
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // Already gone.
    }
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    // Processes of the group that outlived the leader (orphans: nothing waits for them).
    this.kill('SIGKILL');
    for (const e of this.extra) await e.stop(graceMs);
  }
}

/**
 * Calls `probe` every 250 ms until it resolves true, the group exits, or `timeoutMs`
 * passes; rejects with the peer's last output otherwise.
 */
export async function waitReady(group: ProcessGroup, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (!group.running) throw new Error(`${group.name} exited during start (code ${group.child.exitCode ?? group.child.signalCode}):\n${group.lastLines()}`);
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${group.name} not ready after ${timeoutMs / 1000} s (${lastError}):\n${group.lastLines()}`);
}

/** True when a TCP connection to 127.0.0.1:port succeeds. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Stops the group and removes the peer's temp folder. */
export async function stopAndRemove(group: ProcessGroup, dir: string): Promise<void> {
  try {
    await group.stop();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Home of the installed peers: KMQ_PEERS_DIR or ~/.cache/kmq/peers (as the install scripts). */
export function peersHome(): string {
  return process.env.KMQ_PEERS_DIR ?? path.join(os.homedir(), '.cache', 'kmq', 'peers');
}

/** Folder of the install scripts (the source tree's bench/peers, also when running from dist/). */
export function installScriptsDir(): string {
  const here = path.dirname(new URL(import.meta.url).pathname);
  const fromDist = path.resolve(here, '..', '..', '..', 'bench', 'peers');
  return fs.existsSync(path.join(here, 'install-kafka.sh')) ? here : fromDist;
}
