import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { BrokerProcess } from './broker-process.js';
import { EtcdProcess } from './etcd-process.js';
import { FaultProxy } from './fault-proxy.js';

export interface TestClusterOptions {
  brokers: number;
  /** Broker lease TTL, ms (how soon a dead broker's partitions move). Default 3000. */
  leaseMs?: number;
  /** Replica lag time, ms. Default 3000. */
  replicaLagMs?: number;
  /** More `kmq broker` flags for every broker. */
  args?: string[];
  /**
   * The coordination store's flags (`--cluster-store ...` and its settings), for a store
   * other than etcd; then no etcd is started. Default: a new etcd and `--cluster-store etcd`.
   */
  storeArgs?: string[];
  /**
   * Put a FaultProxy in front of every broker and advertise it, so that every link to a
   * broker (clients' and other brokers') goes through it and cut() can isolate it.
   */
  proxied?: boolean;
}

/**
 * A real cluster on loopback: one etcd (or the store of storeArgs) and N `kmq broker` processes (ids 1..N)
 * with their own data folders, which survive kill() so restart() brings a broker
 * back with its log. stop() ends every process and removes every folder.
 */
export class TestCluster {
  private readonly procs = new Map<number, BrokerProcess>();
  private readonly dirs = new Map<number, string>();
  private readonly paused = new Set<number>();
  private readonly proxies = new Map<number, FaultProxy>();
  readonly name = `c-${randomUUID().slice(0, 8)}`;

  private constructor(
    /** The etcd of the cluster; undefined with storeArgs. */
    readonly etcd: EtcdProcess | undefined,
    private readonly options: Required<Omit<TestClusterOptions, 'storeArgs'>> & Pick<TestClusterOptions, 'storeArgs'>,
    private readonly root: string,
  ) {}

  static async start(options: TestClusterOptions): Promise<TestCluster> {
    const etcd = options.storeArgs === undefined ? await EtcdProcess.start() : undefined;
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-cluster-'));
    const c = new TestCluster(etcd, { leaseMs: 3000, replicaLagMs: 3000, args: [], proxied: false, ...options }, root);
    try {
      await Promise.all(Array.from({ length: options.brokers }, (_, i) => c.startBroker(i + 1)));
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  get ids(): number[] {
    return [...this.dirs.keys()].sort((a, b) => a - b);
  }

  /** Addresses of the brokers running now. */
  bootstrap(): string[] {
    return [...this.procs.entries()]
      .filter(([id]) => !this.paused.has(id) && this.proxies.get(id)?.isCut !== true)
      .map(([id, p]) => {
        const proxy = this.proxies.get(id);
        return proxy === undefined ? p.address : `127.0.0.1:${proxy.port}`;
      });
  }

  broker(id: number): BrokerProcess | undefined {
    return this.procs.get(id);
  }

  isRunning(id: number): boolean {
    return this.procs.has(id);
  }

  async startBroker(id: number): Promise<BrokerProcess> {
    if (this.procs.has(id)) throw new Error(`broker ${id} is running`);
    let dir = this.dirs.get(id);
    if (dir === undefined) {
      dir = path.join(this.root, `broker-${id}`);
      fs.mkdirSync(dir);
      this.dirs.set(id, dir);
    }
    let proxy = this.proxies.get(id);
    if (this.options.proxied && proxy === undefined) {
      proxy = await FaultProxy.start();
      this.proxies.set(id, proxy);
    }
    const p = await BrokerProcess.start({
      dataDir: dir,
      args: [
        '--node-id', String(id),
        ...(proxy === undefined ? [] : ['--advertised-port', String(proxy.port)]),
        ...(this.options.storeArgs ?? ['--cluster-store', 'etcd', '--etcd-endpoints', this.etcd!.clientUrl]),
        '--cluster-name', this.name,
        '--broker-lease-ms', String(this.options.leaseMs),
        '--replica-lag-time-ms', String(this.options.replicaLagMs),
        ...this.options.args,
      ],
    });
    proxy?.setTarget(p.port);
    this.procs.set(id, p);
    return p;
  }

  /** Isolates broker `id` from clients and other brokers (not from the coordination store): its links become a black hole. */
  cutLinks(id: number): void {
    const proxy = this.proxies.get(id);
    if (proxy === undefined) throw new Error('cutLinks needs a cluster started with proxied: true');
    proxy.cut();
  }

  healLinks(id: number): void {
    this.proxies.get(id)?.heal();
  }

  /** SIGKILL: the broker's log stays for restart(). */
  async kill(id: number): Promise<void> {
    const p = this.procs.get(id);
    if (p === undefined) return;
    this.procs.delete(id);
    this.paused.delete(id);
    await p.kill();
  }

  /** SIGTERM: a clean shutdown; the broker's log stays for restart(). */
  async stopBroker(id: number): Promise<void> {
    const p = this.procs.get(id);
    if (p === undefined) return;
    this.procs.delete(id);
    this.paused.delete(id);
    await p.stop();
  }

  restart(id: number): Promise<BrokerProcess> {
    return this.startBroker(id);
  }

  /** SIGSTOP: the process stays, frozen, until resume(). */
  pause(id: number): void {
    const p = this.procs.get(id);
    if (p === undefined || this.paused.has(id)) return;
    p.child.kill('SIGSTOP');
    this.paused.add(id);
  }

  resume(id: number): void {
    const p = this.procs.get(id);
    if (p === undefined || !this.paused.has(id)) return;
    p.child.kill('SIGCONT');
    this.paused.delete(id);
  }

  async stop(): Promise<void> {
    for (const id of [...this.paused]) this.resume(id);
    await Promise.all([...this.procs.values()].map((p) => p.kill()));
    this.procs.clear();
    await Promise.all([...this.proxies.values()].map((p) => p.stop()));
    await this.etcd?.stop();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

export { until } from '../../testkit/until.js';
