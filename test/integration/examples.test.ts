import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmqClient } from '../../client/index.js';
import { BrokerProcess, tempDir } from '../utils/broker-process.js';
import { SidecarProcess } from '../utils/sidecar-process.js';

// The example apps of examples/ run as real processes against a real broker and sidecar,
// talking only to the sidecar's gRPC API.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = randomUUID().slice(0, 8);
const tsTopic = `ts-greetings-${run}`;
const pyTopic = `py-greetings-${run}`;
/** Where .ci/run installs grpcurl (override with GRPCURL). */
const GRPCURL = process.env.GRPCURL ?? path.join(os.homedir(), '.cache', 'kmq', 'bin', 'grpcurl');
const PIP_HINT = 'install them with: python3 -m pip install -r examples/python/requirements.txt (.ci/run does)';

let broker: BrokerProcess;
let sidecar: SidecarProcess;
let stubs: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end; a missing program is an error naming it, not a skip. */
function exec(file: string, args: string[], env: Record<string, string> = {}, timeoutMs = 40_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: root, env: { ...process.env, ...env }, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err !== null && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error(`${file} was not found: ${err.message}`));
        return;
      }
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

function lines(r: Run): string[] {
  return r.stdout.split('\n').filter((l) => l !== '');
}

beforeAll(async () => {
  broker = await BrokerProcess.start();
  const admin = new KmqClient({ brokers: [broker.address] });
  await admin.admin().createTopic(tsTopic, { partitions: 1 });
  await admin.admin().createTopic(pyTopic, { partitions: 1 });
  await admin.close();
  sidecar = await SidecarProcess.start({
    broker: broker.address,
    config: {
      subscriptions: [
        { name: `ts-greeter-${run}`, topic: tsTopic },
        { name: `py-greeter-${run}`, topic: pyTopic },
      ],
    },
  });
  stubs = tempDir('kmq-py-stubs-');
});

afterAll(async () => {
  await sidecar?.cleanup();
  await broker?.cleanup();
  if (stubs !== undefined) fs.rmSync(stubs, { recursive: true, force: true });
});

describe('examples/typescript', () => {
  const js = (name: string): string => path.join(root, 'dist', 'examples', 'typescript', `${name}.js`);

  it('publishes through the sidecar, then consumes and acks every message over a Consume stream', async () => {
    const pub = await exec(process.execPath, [js('publisher'), '--sidecar', sidecar.address, '--topic', tsTopic, '--count', '3']);
    expect(pub.stderr).toBe('');
    expect(pub.code).toBe(0);
    expect(lines(pub)).toHaveLength(3);
    lines(pub).forEach((l, i) => expect(l).toMatch(new RegExp(`^published "hello ${i + 1}" to ${tsTopic} partition 0 offset ${i} \\(idempotency key [0-9a-f-]{36}\\)$`)));

    const sub = `ts-greeter-${run}`;
    const con = await exec(process.execPath, [js('consumer'), '--sidecar', sidecar.address, '--subscription', sub, '--count', '3']);
    expect(con.stderr).toBe('');
    expect(con.code).toBe(0);
    expect(lines(con)).toEqual([
      `consuming ${sub} (max in flight 100)`,
      `received "hello 1" from ${tsTopic} partition 0 offset 0 attempt 1`,
      `received "hello 2" from ${tsTopic} partition 0 offset 1 attempt 1`,
      `received "hello 3" from ${tsTopic} partition 0 offset 2 attempt 1`,
      'done: 3 messages acknowledged',
    ]);

    // The acks were committed: a new stream gets nothing more.
    const again = await exec(process.execPath, [js('consumer'), '--sidecar', sidecar.address, '--subscription', sub, '--count', '1', '--timeout-ms', '1500']);
    expect(again.code).toBe(1);
    expect(lines(again)).toEqual([`consuming ${sub} (max in flight 100)`]);
    expect(again.stderr).toContain('timed out after 1500 ms with 0 of 1 messages');
  });
});

describe('examples/python', () => {
  it('generates its stubs with grpc_tools.protoc, publishes, then consumes and acks every message', async () => {
    const check = await exec('python3', ['-c', 'import grpc, grpc_tools.protoc, google.protobuf']).catch((err: Error) => {
      throw new Error(`The Python example needs python3 with grpcio, grpcio-tools and protobuf; ${err.message}`);
    });
    if (check.code !== 0) throw new Error(`The Python example needs grpcio, grpcio-tools and protobuf; ${PIP_HINT}.\n${check.stderr}`);

    const gen = await exec('python3', ['-m', 'grpc_tools.protoc', '-I', path.join(root, 'proto'), `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, 'kmq/sidecar/v1/sidecar.proto']);
    expect(gen.stderr).toBe('');
    expect(gen.code).toBe(0);
    expect(fs.readdirSync(path.join(stubs, 'kmq', 'sidecar', 'v1')).sort()).toEqual(['sidecar_pb2.py', 'sidecar_pb2_grpc.py']);

    const env = { PYTHONPATH: stubs, PYTHONDONTWRITEBYTECODE: '1' };
    const py = (name: string): string => path.join(root, 'examples', 'python', `${name}.py`);
    const pub = await exec('python3', [py('publisher'), '--sidecar', sidecar.address, '--topic', pyTopic, '--count', '3'], env);
    expect(pub.stderr).toBe('');
    expect(pub.code).toBe(0);
    expect(lines(pub)).toHaveLength(3);
    lines(pub).forEach((l, i) => expect(l).toMatch(new RegExp(`^published "hello ${i + 1} from python" to ${pyTopic} partition 0 offset ${i} \\(idempotency key [0-9a-f-]{36}\\)$`)));

    const sub = `py-greeter-${run}`;
    const con = await exec('python3', [py('consumer'), '--sidecar', sidecar.address, '--subscription', sub, '--count', '3'], env);
    expect(con.stderr).toBe('');
    expect(con.code).toBe(0);
    expect(lines(con)).toEqual([
      `consuming ${sub} (max in flight 100)`,
      `received "hello 1 from python" from ${pyTopic} partition 0 offset 0 attempt 1`,
      `received "hello 2 from python" from ${pyTopic} partition 0 offset 1 attempt 1`,
      `received "hello 3 from python" from ${pyTopic} partition 0 offset 2 attempt 1`,
      'done: 3 messages acknowledged',
    ]);

    // The acks were committed: a new stream gets nothing more before its deadline.
    const again = await exec('python3', [py('consumer'), '--sidecar', sidecar.address, '--subscription', sub, '--count', '1', '--timeout', '1.5'], env);
    expect(again.code).toBe(1);
    expect(lines(again)).toEqual([`consuming ${sub} (max in flight 100)`]);
    expect(again.stderr).toContain('Consume ended with DEADLINE_EXCEEDED');
    expect(again.stderr).toContain('after 0 of 1 messages');
  });
});

describe('grpcurl against the sidecar', () => {
  it('lists kmq.sidecar.v1.Sidecar through server reflection', async () => {
    if (!fs.existsSync(GRPCURL)) throw new Error(`grpcurl not found at ${GRPCURL}; .ci/run installs it there (go install github.com/fullstorydev/grpcurl/cmd/grpcurl)`);
    const list = await exec(GRPCURL, ['-plaintext', sidecar.address, 'list']);
    expect(list.stderr).toBe('');
    expect(list.code).toBe(0);
    expect(lines(list)).toContain('kmq.sidecar.v1.Sidecar');
    const methods = await exec(GRPCURL, ['-plaintext', sidecar.address, 'list', 'kmq.sidecar.v1.Sidecar']);
    expect(lines(methods)).toEqual(['kmq.sidecar.v1.Sidecar.Consume', 'kmq.sidecar.v1.Sidecar.Publish', 'kmq.sidecar.v1.Sidecar.PublishStream']);
  });
});
