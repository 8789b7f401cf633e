import fs from 'node:fs';
import net from 'node:net';

/**
 * The kernel's range for outgoing connections' local ports. A port picked inside it
 * can be taken by any client connection while its process is down for a restart.
 */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // Not Linux: assume the IANA dynamic range.
  }
  return [49152, 65535];
}

function listenable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A free TCP port on 127.0.0.1 outside the ephemeral range, so a process can be
 * stopped and started again on it (etcd, a broker behind a Service address) without
 * an outgoing connection taking it in between.
 */
export async function freePort(): Promise<number> {
  const [low, high] = ephemeralRange();
  // The widest stretch below or above the ephemeral range, above the well-known ports.
  const below: [number, number] = [10_000, low - 1];
  const above: [number, number] = [high + 1, 65_535];
  const [from, to] = below[1] - below[0] >= above[1] - above[0] ? below : above;
  if (to - from >= 1_000) {
    for (let i = 0; i < 50; i++) {
      const port = from + Math.floor(Math.random() * (to - from + 1));
      if (await listenable(port)) return port;
    }
  }
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
