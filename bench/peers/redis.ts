/**
 * Redis (Debian's redis-server) on a free loopback port, with its append-only file
 * in a temp folder.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { ProcessGroup, freePort, peerTempDir, stopAndRemove, waitReady } from './peer-process.js';
import type { RunningPeer } from './peer-process.js';

const SERVER = '/usr/bin/redis-server';

/** Server settings beyond port and folder; stated in the report. */
const PINNED: Array<[string, string]> = [
  // Durability row "acknowledged from the page cache, fsync about every second".
  ['appendonly', 'yes'],
  ['appendfsync', 'everysec'],
  // No RDB snapshots: the AOF is the only persistence.
  ['save', ''],
  ['maxmemory', '0'],
  ['protected-mode', 'no'],
];

/** Why Redis cannot run here, or undefined when it is installed. */
export function redisMissing(): string | undefined {
  return fs.existsSync(SERVER) ? undefined : `${SERVER} not found (run bench/peers/install-redis.sh)`;
}

export async function startRedis(): Promise<RunningPeer> {
  const dir = peerTempDir('redis');
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no', ...PINNED.flatMap(([k, v]) => [`--${k}`, v])];
  const group = ProcessGroup.spawn('redis', SERVER, args, path.join(dir, 'redis.log'));
  try {
    await waitReady(group, 30_000, async () => {
      const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.on('error', () => undefined);
      try {
        await r.connect();
        return (await r.ping()) === 'PONG';
      } finally {
        r.disconnect();
      }
    });
  } catch (err) {
    await stopAndRemove(group, dir);
    throw err;
  }
  const version = /v=(\S+)/.exec(execFileSync(SERVER, ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  return {
    address: `127.0.0.1:${port}`,
    pids: () => group.pids(),
    version: `Redis ${version} (Debian)`,
    settings: PINNED.map(([k, v]) => `${k} ${v === '' ? '""' : v}`),
    stop: () => stopAndRemove(group, dir),
  };
}
