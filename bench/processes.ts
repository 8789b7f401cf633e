/**
 * Child processes of a benchmark run: the broker (`kmq broker` from dist/cli), a
 * cluster of brokers with its etcd, the sidecar (`kmq sidecar`) and the workers
 * (dist/bench/worker.js). Every process started here is tracked so that killAll()
 * can end them on Ctrl-C or on an error (etcd is ended by its launcher on exit).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EtcdProcess } from '../testkit/etcd-process.js';
import type { WorkerRole } from './worker.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, '..', 'cli', 'main.js');
const WORKER = path.join(here, 'worker.js');

const live = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** SIGKILLs every child still running (synchronous: usable from signal and exit handlers). */
export function killAll(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** Splits a stream into lines. */
function onLines(stream: NodeJS.ReadableStream, fn: (line: string) => void): void {
  let buf = '';
  stream.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line !== '') fn(line);
    }
  });
}

/** A broker process on a free loopback port. */
export class BenchBroker {
  port = 0;
  httpPort = 0;
  /** Last log lines, for error messages. */
  private readonly tail: string[] = [];
  private readonly exited: Promise<void>;

  private constructor(readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(dataDir: string, extraArgs: string[], nodeArgs: string[] = []): Promise<BenchBroker> {
    const child = track(
      spawn(process.execPath, [...nodeArgs, CLI, 'broker', '--data', dataDir, '--port', '0', '--host', '127.0.0.1', ...extraArgs], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, KMQ_LOG_LEVEL: 'info' },
      }),
    );
    const b = new BenchBroker(child);
    const keep = (line: string): void => {
      b.tail.push(line);
      if (b.tail.length > 50) b.tail.shift();
    };
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Broker did not start in 20 s:\n${b.tail.join('\n')}`)), 20_000);
      onLines(child.stdout!, (line) => {
        keep(line);
        if (!line.includes('"Broker started"')) return;
        const parsed = JSON.parse(line) as { port: number; httpPort: number };
        b.port = parsed.port;
        b.httpPort = parsed.httpPort;
        clearTimeout(timer);
        resolve();
      });
      onLines(child.stderr!, keep);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`Broker exited (${code ?? signal}):\n${b.tail.join('\n')}`));
      });
    });
    child.once('exit', (code, signal) => {
      if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGKILL') process.stderr.write(`bench: broker exited (${code ?? signal}):\n${b.tail.join('\n')}\n`);
    });
    return b;
  }

  /** SIGTERM, SIGKILL after 10 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * A cluster on loopback: one etcd (testkit's launcher, the binary of
 * scripts/setup-control-plane.sh) and N brokers with node ids 1..N, each with its
 * own data folder under `dir`, joined through `--cluster-store etcd` under a cluster
 * name of their own.
 */
export class BenchCluster {
  private constructor(
    readonly etcd: EtcdProcess,
    readonly name: string,
    readonly brokers: BenchBroker[],
  ) {}

  /** Bootstrap list for a worker config: every broker, comma-separated. */
  get bootstrap(): string {
    return this.brokers.map((b) => b.address).join(',');
  }

  static async start(dir: string, brokers: number, extraArgs: string[], nodeArgs: string[] = []): Promise<BenchCluster> {
    fs.mkdirSync(dir, { recursive: true });
    const etcd = await EtcdProcess.start({ parentDir: dir });
    const name = `bench-${randomUUID().slice(0, 8)}`;
    const started = await Promise.allSettled(
      Array.from({ length: brokers }, (_, i) => {
        const dataDir = path.join(dir, `broker-${i + 1}`);
        fs.mkdirSync(dataDir, { recursive: true });
        const cluster = ['--node-id', String(i + 1), '--cluster-store', 'etcd', '--etcd-endpoints', etcd.clientUrl, '--cluster-name', name];
        return BenchBroker.start(dataDir, [...cluster, ...extraArgs], nodeArgs);
      }),
    );
    const ok = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const c = new BenchCluster(etcd, name, ok);
    if (failed !== undefined) {
      await c.stop();
      throw failed.reason;
    }
    return c;
  }

  /** Stops every broker, then etcd (which removes its data folder). */
  async stop(): Promise<void> {
    await Promise.all(this.brokers.map((b) => b.stop()));
    await this.etcd.stop();
  }
}

/** A sidecar process (`kmq sidecar --config FILE --broker host:port`) on a free loopback port. */
export class BenchSidecar {
  port = 0;
  private readonly tail: string[] = [];
  private readonly exited: Promise<void>;

  private constructor(readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** `configFile` must already exist (YAML or JSON, with port 0). */
  static async start(configFile: string, broker: string, nodeArgs: string[] = []): Promise<BenchSidecar> {
    const child = track(
      spawn(process.execPath, [...nodeArgs, CLI, 'sidecar', '--config', configFile, '--broker', broker], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, KMQ_LOG_LEVEL: 'info' },
      }),
    );
    const s = new BenchSidecar(child);
    const keep = (line: string): void => {
      s.tail.push(line);
      if (s.tail.length > 50) s.tail.shift();
    };
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Sidecar did not start in 20 s:\n${s.tail.join('\n')}`)), 20_000);
      onLines(child.stdout!, (line) => {
        keep(line);
        if (!line.includes('"Sidecar started"')) return;
        s.port = (JSON.parse(line) as { port: number }).port;
        clearTimeout(timer);
        resolve();
      });
      onLines(child.stderr!, keep);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`Sidecar exited (${code ?? signal}):\n${s.tail.join('\n')}`));
      });
    });
    return s;
  }

  /** SIGTERM (a clean stop, so a --cpu-prof profile gets written), SIGKILL after 15 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** A running worker: its result line, and progress events on the way. */
export interface WorkerHandle<R> {
  result: Promise<R>;
  /** Resolves with the first `{"event": name}` line. */
  event(name: string): Promise<Record<string, unknown>>;
  /** Calls `fn` with every `{"event": name}` line from now on. */
  onEvent(name: string, fn: (e: Record<string, unknown>) => void): void;
  /** Sends a signal to the worker, if it still runs. */
  signal(sig: NodeJS.Signals): void;
}

/**
 * Stops queue consumers (SIGUSR2) once the acks they report in their `progress`
 * events add up to `messages`: by count, so duplicates are found afterwards.
 */
export function stopWhenAcked(consumers: ReadonlyArray<WorkerHandle<unknown>>, messages: number): void {
  const acked = new Array<number>(consumers.length).fill(0);
  let stopped = false;
  consumers.forEach((c, i) =>
    c.onEvent('progress', (e) => {
      acked[i] = Number(e.acked);
      if (!stopped && acked.reduce((a, b) => a + b, 0) >= messages) {
        stopped = true;
        for (const x of consumers) x.signal('SIGUSR2');
      }
    }),
  );
}

/** Starts `node dist/bench/worker.js <role> <json>`; the result rejects if it exits without one. */
export function startWorker<R>(role: WorkerRole, config: unknown, nodeArgs: string[] = []): WorkerHandle<R> {
  const child = track(spawn(process.execPath, [...nodeArgs, WORKER, role, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const events = new Map<string, Record<string, unknown>>();
  const eventWaiters: Array<{ name: string; resolve: (e: Record<string, unknown>) => void }> = [];
  const listeners: Array<{ name: string; fn: (e: Record<string, unknown>) => void }> = [];
  let stderr = '';
  let result: R | undefined;
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 20_000) stderr = stderr.slice(-20_000);
  });
  onLines(child.stdout!, (line) => {
    let msg: { event?: string; result?: R };
    try {
      msg = JSON.parse(line) as { event?: string; result?: R };
    } catch {
      return;
    }
    if (msg.result !== undefined) result = msg.result;
    if (typeof msg.event === 'string') {
      events.set(msg.event, msg as Record<string, unknown>);
      for (const w of eventWaiters.filter((x) => x.name === msg.event)) w.resolve(msg as Record<string, unknown>);
      for (const l of listeners) if (l.name === msg.event) l.fn(msg as Record<string, unknown>);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const resultPromise = exited.then((code) => {
    if (code === 0 && result !== undefined) return result;
    throw new Error(`Worker ${role} failed (exit ${code}):\n${stderr.trim()}`);
  });
  return {
    result: resultPromise,
    onEvent: (name, fn) => void listeners.push({ name, fn }),
    signal: (sig) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    },
    event: (name) => {
      const seen = events.get(name);
      if (seen !== undefined) return Promise.resolve(seen);
      return Promise.race([
        new Promise<Record<string, unknown>>((resolve) => eventWaiters.push({ name, resolve })),
        resultPromise.then(() => {
          throw new Error(`Worker ${role} ended before "${name}"`);
        }),
      ]);
    },
  };
}

/** Bytes of all files under `dir`. */
export function folderBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += folderBytes(p);
    else if (e.isFile()) total += fs.statSync(p).size;
  }
  return total;
}
