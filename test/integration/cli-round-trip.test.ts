import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerProcess } from '../utils/broker-process.js';
import { runCli } from '../utils/cli.js';

// The acceptance round trip, through the `kmq` command only.
describe('kmq CLI round trip', () => {
  let broker: BrokerProcess;
  const env = (): Record<string, string> => ({ KMQ_BROKER: broker.address });

  beforeAll(async () => {
    broker = await BrokerProcess.start();
  });
  afterAll(async () => {
    await broker?.cleanup();
  });

  it('10,000 keyed lines come back exactly once, per-key in one partition and in order', async () => {
    const created = await runCli(['topic', 'create', 'round-trip', '--partitions', '3'], { env: env() });
    expect(created.code, created.stderr).toBe(0);

    const lines: string[] = [];
    for (let i = 0; i < 10_000; i++) lines.push(`key-${i % 101}:value-${i}`);
    const produced = await runCli(['produce', 'round-trip', '--key-separator', ':'], { env: env(), stdin: `${lines.join('\n')}\n` });
    expect(produced.code, produced.stderr).toBe(0);
    expect(produced.stderr).toContain('Produced 10000 records');

    const consumed = await runCli(['consume', 'round-trip', '--group', 'rt-group', '--from', 'earliest', '--idle-timeout', '2000', '--output', 'json'], { env: env() });
    expect(consumed.code, consumed.stderr).toBe(0);
    const records = consumed.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { partition: number; offset: number; key: string; value: string });
    expect(records).toHaveLength(10_000);
    expect(new Set(records.map((r) => r.value)).size).toBe(10_000);

    const partitionOfKey = new Map<string, number>();
    const lastIndexOfKey = new Map<string, number>();
    const sorted = [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    for (const r of sorted) {
      const p = partitionOfKey.get(r.key);
      if (p === undefined) partitionOfKey.set(r.key, r.partition);
      else expect(r.partition).toBe(p);
      // Within its partition, a key's values keep the order they were produced in.
      const index = Number(r.value.slice('value-'.length));
      expect(index).toBeGreaterThan(lastIndexOfKey.get(r.key) ?? -1);
      lastIndexOfKey.set(r.key, index);
    }
    expect(new Set(partitionOfKey.values()).size).toBe(3);

    const again = await runCli(['consume', 'round-trip', '--group', 'rt-group', '--idle-timeout', '1500'], { env: env() });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe('');
    expect(again.stderr).toContain('Consumed 0 records');

    const described = await runCli(['group', 'describe', 'rt-group', '--output', 'json'], { env: env() });
    const d = JSON.parse(described.stdout) as { offsets: Array<{ committed: number; logEndOffset: number; lag: number }> };
    expect(d.offsets).toHaveLength(3);
    expect(d.offsets.reduce((s, o) => s + o.committed, 0)).toBe(10_000);
    expect(d.offsets.every((o) => o.lag === 0)).toBe(true);
  });

  it('--max stops mid-batch and commits only what was printed; reset replays', async () => {
    expect((await runCli(['topic', 'create', 'max-topic'], { env: env() })).code).toBe(0);
    const stdin = `${Array.from({ length: 50 }, (_, i) => `m${i}`).join('\n')}\n`;
    expect((await runCli(['produce', 'max-topic'], { env: env(), stdin })).code).toBe(0);
    const first = await runCli(['consume', 'max-topic', '--group', 'mx', '--from', 'earliest', '--max', '20'], { env: env() });
    expect(first.stdout.trim().split('\n')).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    const rest = await runCli(['consume', 'max-topic', '--group', 'mx', '--idle-timeout', '1500'], { env: env() });
    expect(rest.stdout.trim().split('\n')).toEqual(Array.from({ length: 30 }, (_, i) => `m${i + 20}`));

    const reset = await runCli(['group', 'reset', 'mx', '--topic', 'max-topic', '--to', '45'], { env: env() });
    expect(reset.code, reset.stderr).toBe(0);
    const replay = await runCli(['consume', 'max-topic', '--group', 'mx', '--idle-timeout', '1500'], { env: env() });
    expect(replay.stdout.trim().split('\n')).toEqual(['m45', 'm46', 'm47', 'm48', 'm49']);
  });

  it('reports unknown topics and a missing broker clearly', async () => {
    const unknown = await runCli(['consume', 'nope', '--max', '1'], { env: env() });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('nope');
    const produceUnknown = await runCli(['produce', 'nope'], { env: env(), stdin: 'x\n' });
    expect(produceUnknown.code).toBe(1);
    expect(produceUnknown.stderr).toMatch(/Unknown topic "nope"/);
    const down = await runCli(['topic', 'list', '--broker', '127.0.0.1:1'], { env: env() });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('127.0.0.1:1');
  });
});
