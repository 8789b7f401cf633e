import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { credentials } from '@grpc/grpc-js';
import type { StatusObject } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmqClient } from '../../client/index.js';
import { SidecarClient } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import type { ConsumeResponse, PublishRequest, PublishResponse } from '../../sidecar/gen/kmq/sidecar/v1/sidecar.js';
import { CLI, tempDir } from '../utils/broker-process.js';

// `kmq dev` as a real process: one command runs a broker and a sidecar; an app publishes and
// consumes through the sidecar's gRPC API only; SIGTERM stops both.

let dir: string;
let child: ChildProcess;
let stderr = '';
let stdout = '';
let exited: Promise<number | null>;
let brokerAddress = '';
let sidecarAddress = '';

beforeAll(async () => {
  dir = tempDir('kmq-dev-');
  const config = path.join(dir, 'sidecar.yaml');
  fs.writeFileSync(config, 'subscriptions:\n  - name: greeter\n    topic: greetings\n    maxInFlight: 10\n');
  child = spawn(process.execPath, [CLI, 'dev', '--data', path.join(dir, 'data'), '--port', '0', '--sidecar-port', '0', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KMQ_LOG_LEVEL: 'info' },
  });
  exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kmq dev did not start in 20 s:\n${stderr}\n${stdout}`)), 20_000);
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
      const b = /broker on (\S+?:\d+),/.exec(stderr);
      const s = /sidecar \(gRPC, kmq\.sidecar\.v1\.Sidecar\) on (\S+:\d+)\n/.exec(stderr);
      if (b !== null && s !== null) {
        brokerAddress = b[1]!;
        sidecarAddress = s[1]!;
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`kmq dev exited with ${code}:\n${stderr}\n${stdout}`));
    });
  });
});

afterAll(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await exited;
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('kmq dev', () => {
  it('runs a broker and a sidecar: publish and Consume through gRPC, then SIGTERM stops both with exit 0', async () => {
    expect(brokerAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(sidecarAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(brokerAddress).not.toBe('127.0.0.1:0');
    expect(sidecarAddress).not.toBe('127.0.0.1:0');

    const admin = new KmqClient({ brokers: [brokerAddress] });
    await admin.admin().createTopic('greetings', { partitions: 1 });
    await admin.close();

    const app = new SidecarClient(sidecarAddress, credentials.createInsecure());
    try {
      const publish = (payload: string): Promise<PublishResponse> => {
        const req: PublishRequest = { destination: { topic: 'greetings' }, key: Buffer.from('k'), payload: Buffer.from(payload), headers: {} };
        return new Promise((resolve, reject) => app.publish(req, (err, res) => (err === null ? resolve(res) : reject(err))));
      };
      const sent = [await publish('hello'), await publish('world')];
      expect(sent.map((r) => r.placements[0]!.offset)).toEqual([0, 1]);

      const call = app.consume();
      const got: string[] = [];
      let started = false;
      const status = new Promise<StatusObject>((resolve) => call.on('status', resolve));
      call.on('error', () => {});
      const done = new Promise<void>((resolve) => {
        call.on('data', (r: ConsumeResponse) => {
          if (r.started !== undefined) started = true;
          if (r.delivery !== undefined) {
            got.push(r.delivery.payload.toString());
            call.write({ ack: { deliveryId: r.delivery.deliveryId } });
            if (got.length === 2) resolve();
          }
        });
      });
      call.write({ start: { subscription: 'greeter', maxInFlight: 0 } });
      await Promise.race([done, status.then((s) => Promise.reject(new Error(`Consume ended: ${s.code} ${s.details}`)))]);
      expect(started).toBe(true);
      expect(got).toEqual(['hello', 'world']);
      call.end();
      expect((await status).code).toBe(0);
    } finally {
      app.close();
    }

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const msgs = stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { component?: string; msg?: string });
    expect(msgs.some((m) => m.component === 'sidecar' && m.msg === 'Sidecar started')).toBe(true);
    expect(msgs.some((m) => m.component === 'broker' && m.msg === 'Broker started')).toBe(true);
    expect(msgs.some((m) => m.msg === 'Shutting down')).toBe(true);
    expect(msgs.some((m) => m.component === 'broker' && m.msg === 'Broker stopped')).toBe(true);
  });

  it('refuses a bad sidecar setting before starting anything (exit 1, the setting named)', () => {
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, 'subscriptions:\n  - name: q\n    queue: jobs\n    mode: ordered\n');
    const data = path.join(dir, 'never');
    const r = spawnSync(process.execPath, [CLI, 'dev', '--data', data, '--port', '0', '--sidecar-port', '0', '--config', bad], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('subscriptions[0] (q).mode');
    expect(r.stderr).not.toContain('kmq dev: broker on');
    // The broker never started: no data folder was made.
    expect(fs.existsSync(data)).toBe(false);
  });
});
