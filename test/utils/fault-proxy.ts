import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy on loopback in front of one broker, to cut its links: `cut()`
 * turns it into a black hole (connections stay open, bytes are dropped both
 * ways, as in a network partition, so peers find out by timeouts), `heal()`
 * closes the black-holed connections and forwards again. The target can be set
 * after the proxy starts (a broker on port 0 is known once it runs) and changed
 * (a restarted broker).
 */
export class FaultProxy {
  private target: number | undefined;
  private blackhole = false;
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket | undefined }>();
  private readonly waiting = new Set<() => void>();

  private constructor(private readonly server: net.Server) {}

  static async start(): Promise<FaultProxy> {
    const server = net.createServer();
    const proxy = new FaultProxy(server);
    server.on('connection', (s) => proxy.accept(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get isCut(): boolean {
    return this.blackhole;
  }

  /** Forwards to 127.0.0.1:`port` from now on. */
  setTarget(port: number): void {
    this.target = port;
    for (const w of [...this.waiting]) w();
  }

  cut(): void {
    this.blackhole = true;
  }

  heal(): void {
    this.blackhole = false;
    for (const p of [...this.pairs]) {
      p.client.destroy();
      p.upstream?.destroy();
    }
  }

  async stop(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    for (const w of [...this.waiting]) w();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    const pair: { client: net.Socket; upstream: net.Socket | undefined } = { client, upstream: undefined };
    this.pairs.add(pair);
    const end = (): void => {
      this.pairs.delete(pair);
      client.destroy();
      pair.upstream?.destroy();
    };
    client.on('error', end);
    client.on('close', end);
    const connect = (): void => {
      if (client.destroyed) return;
      if (this.target === undefined) {
        const go = (): void => {
          this.waiting.delete(go);
          connect();
        };
        this.waiting.add(go);
        return;
      }
      const upstream = net.connect(this.target, '127.0.0.1');
      pair.upstream = upstream;
      upstream.on('error', end);
      upstream.on('close', end);
      client.on('data', (b: Buffer) => {
        if (!this.blackhole) upstream.write(b);
      });
      upstream.on('data', (b: Buffer) => {
        if (!this.blackhole) client.write(b);
      });
    };
    connect();
  }
}
