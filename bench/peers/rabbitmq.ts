/**
 * RabbitMQ (Debian's rabbitmq-server) as one node with its own node name, ports,
 * database and log folders in a temp folder, and its own epmd on a free port so
 * nothing outlives the run. No plugins.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import amqp from 'amqplib';
import { ProcessGroup, freePort, peerTempDir, portOpen, stopAndRemove, waitReady } from './peer-process.js';
import type { RunningPeer } from './peer-process.js';

const SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';

/** rabbitmq.conf beyond the listener; each stated in the report. */
const PINNED: Record<string, string> = {
  'loopback_users.guest': 'false',
  // Far from this machine's limits, so no alarm blocks publishers mid-run.
  'vm_memory_high_watermark.relative': '0.6',
  'disk_free_limit.absolute': '50MB',
};
/** Schedulers sleep instead of busy-waiting, so an idle node takes no CPU from the system being measured. */
const ERL_ARGS = '+sbwt none +sbwtdcpu none +sbwtdio none';

/** Why RabbitMQ cannot run here, or undefined when it is installed. */
export function rabbitmqMissing(): string | undefined {
  if (!fs.existsSync(SERVER)) return `${SERVER} not found (run bench/peers/install-rabbitmq.sh)`;
  if (!fs.existsSync('/usr/bin/epmd')) return 'epmd not found (erlang-base)';
  return undefined;
}

function rabbitVersion(): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Version}', 'rabbitmq-server'], { encoding: 'utf8' });
  } catch {
    return '?';
  }
}

export async function startRabbitmq(): Promise<RunningPeer> {
  const dir = peerTempDir('rabbitmq');
  const [port, distPort, epmdPort] = [await freePort(), await freePort(), await freePort()];
  const conf = path.join(dir, 'rabbitmq.conf');
  fs.writeFileSync(conf, [`listeners.tcp.default = 127.0.0.1:${port}`, ...Object.entries(PINNED).map(([k, v]) => `${k} = ${v}`)].join('\n') + '\n');
  const plugins = path.join(dir, 'enabled_plugins');
  fs.writeFileSync(plugins, '[].\n');
  const node = `kmqbench${port}@localhost`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: dir,
    ERL_EPMD_PORT: String(epmdPort),
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: conf.replace(/\.conf$/, ''),
    RABBITMQ_ENABLED_PLUGINS_FILE: plugins,
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_LOGS: '-',
    RABBITMQ_PID_FILE: path.join(dir, 'rabbit.pid'),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: ERL_ARGS,
  };
  const epmd = ProcessGroup.spawn('epmd', '/usr/bin/epmd', ['-port', String(epmdPort), '-address', '127.0.0.1'], path.join(dir, 'epmd.log'), { env });
  const group = ProcessGroup.spawn('rabbitmq', SERVER, [], path.join(dir, 'rabbitmq.log'), { env, cwd: dir });
  group.attach(epmd);
  try {
    await waitReady(group, 90_000, async () => {
      if (!(await portOpen(port))) return false;
      const c = await amqp.connect(`amqp://guest:guest@127.0.0.1:${port}`);
      await c.close();
      return true;
    });
  } catch (err) {
    await stopAndRemove(group, dir);
    throw err;
  }
  return {
    address: `127.0.0.1:${port}`,
    pids: () => group.pids(),
    version: `RabbitMQ ${rabbitVersion()} (Debian)`,
    settings: [...Object.entries(PINNED).map(([k, v]) => `${k} = ${v}`), `Erlang VM: ${ERL_ARGS}`, 'plugins: none'],
    stop: () => stopAndRemove(group, dir),
  };
}
