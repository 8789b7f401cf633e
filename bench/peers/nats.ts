/**
 * NATS server with JetStream, one node on a free loopback port with its store in a
 * temp folder; the binary install-nats.sh built, else Debian's nats-server.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ProcessGroup, freePort, peerTempDir, peersHome, portOpen, stopAndRemove, waitReady } from './peer-process.js';
import type { RunningPeer } from './peer-process.js';

/** The version install-nats.sh builds by default (NATS_VERSION overrides both). */
export const NATS_VERSION = process.env.NATS_VERSION ?? 'v2.15.3';

/** JetStream settings beyond the store folder; stated in the report. */
const PINNED: Record<string, string> = {
  // Durability row "acknowledged from the page cache, fsync about every second" (default 2 min).
  sync_interval: '"1s"',
  max_memory_store: '1GB',
  max_file_store: '20GB',
};

function binary(): string | undefined {
  const built = path.join(peersHome(), `nats-${NATS_VERSION}`, 'nats-server');
  if (fs.existsSync(built)) return built;
  for (const p of ['/usr/bin/nats-server', '/usr/sbin/nats-server']) if (fs.existsSync(p)) return p;
  return undefined;
}

/** Why NATS cannot run here, or undefined when a nats-server binary is there. */
export function natsMissing(): string | undefined {
  return binary() === undefined ? `nats-server not found (run bench/peers/install-nats.sh)` : undefined;
}

export async function startNats(): Promise<RunningPeer> {
  const bin = binary();
  if (bin === undefined) throw new Error(natsMissing());
  const dir = peerTempDir('nats');
  const port = await freePort();
  const conf = path.join(dir, 'nats.conf');
  const js = Object.entries(PINNED).map(([k, v]) => `  ${k}: ${v}`);
  fs.writeFileSync(conf, [`listen: "127.0.0.1:${port}"`, 'max_payload: 2MB', 'jetstream {', `  store_dir: "${path.join(dir, 'store')}"`, ...js, '}'].join('\n') + '\n');
  const group = ProcessGroup.spawn('nats', bin, ['-c', conf], path.join(dir, 'nats.log'));
  try {
    await waitReady(group, 30_000, () => portOpen(port));
  } catch (err) {
    await stopAndRemove(group, dir);
    throw err;
  }
  const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
  return {
    address: `127.0.0.1:${port}`,
    pids: () => group.pids(),
    version: `${version} (JetStream, file storage)`,
    settings: ['max_payload: 2MB', ...Object.entries(PINNED).map(([k, v]) => `jetstream.${k}: ${v}`)],
    stop: () => stopAndRemove(group, dir),
  };
}
