import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerProcess } from '../utils/broker-process.js';
import { runCli } from '../utils/cli.js';
import type { CliResult } from '../utils/cli.js';

interface ConsumedLine {
  partition: number;
  offset: number;
  deliveryCount: number;
  value: string;
  headers: Record<string, string | null>;
}

function parseLines(r: CliResult): ConsumedLine[] {
  const text = r.stdout.trim();
  return text === '' ? [] : text.split('\n').map((l) => JSON.parse(l) as ConsumedLine);
}

// Queues, exchanges and dead letters through the `kmq` command only.
describe('kmq queues, exchanges and dead letters', () => {
  let broker: BrokerProcess;
  const env = (): Record<string, string> => ({ KMQ_BROKER: broker.address });
  const ok = async (args: string[], stdin?: string): Promise<CliResult> => {
    const r = await runCli(args, { env: env(), ...(stdin === undefined ? {} : { stdin }) });
    expect(r.code, `kmq ${args.join(' ')}\n${r.stderr}`).toBe(0);
    return r;
  };

  beforeAll(async () => {
    broker = await BrokerProcess.start();
  });
  afterAll(async () => {
    await broker?.cleanup();
  });

  it('two concurrent consumers get each of 100 published messages exactly once', async () => {
    await ok(['queue', 'create', 'work', '--partitions', '2']);
    await ok(['exchange', 'create', 'jobs', '--type', 'direct']);
    await ok(['bind', 'jobs', 'work', '--routing-key', 'task']);

    const lines = Array.from({ length: 100 }, (_, i) => `job-${i}`);
    const published = await ok(['publish', '--exchange', 'jobs', '--routing-key', 'task'], `${lines.join('\n')}\n`);
    expect(published.stderr).toContain('Published 100 messages: routed to queue:work 100; dropped 0');

    const listed = JSON.parse((await ok(['queue', 'list', '--output', 'json'])).stdout) as Array<{ name: string; ready: number }>;
    expect(listed.find((q) => q.name === 'work')?.ready).toBe(100);

    const consume = (): Promise<CliResult> => ok(['queue', 'consume', 'work', '--prefetch', '10', '--idle-timeout', '2000', '--output', 'json']);
    const [a, b] = await Promise.all([consume(), consume()]);
    const got = [...parseLines(a), ...parseLines(b)];
    expect(got.map((l) => l.value).sort()).toEqual([...lines].sort());
    expect(got.every((l) => l.deliveryCount === 1)).toBe(true);

    const described = JSON.parse((await ok(['queue', 'describe', 'work', '--output', 'json'])).stdout) as { ready: number; inFlight: number; delayed: number };
    expect(described).toMatchObject({ ready: 0, inFlight: 0, delayed: 0 });
    const again = await ok(['queue', 'consume', 'work', '--idle-timeout', '1000']);
    expect(again.stdout.trim()).toBe('');
  });

  it('--max settles only what it printed; the rest goes to the next consumer at once', async () => {
    await ok(['queue', 'create', 'partial']);
    await ok(['publish', '--queue', 'partial'], 'p0\np1\np2\np3\np4\n');
    const first = await ok(['queue', 'consume', 'partial', '--max', '2', '--prefetch', '5']);
    expect(first.stdout.trim().split('\n')).toHaveLength(2);
    const rest = await ok(['queue', 'consume', 'partial', '--idle-timeout', '1500', '--output', 'json']);
    const values = [...first.stdout.trim().split('\n'), ...parseLines(rest).map((l) => l.value)];
    expect(values.sort()).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
  });

  it('nacked past max deliveries, a message is dead-lettered with its headers and replayed once', async () => {
    await ok(['queue', 'create', 'flaky-dlq']);
    await ok(['queue', 'create', 'flaky', '--max-deliveries', '2', '--dead-letter-queue', 'flaky-dlq']);
    await ok(['publish', '--queue', 'flaky', '--header', 'tenant=acme'], 'poison\n');

    const first = parseLines(await ok(['queue', 'consume', 'flaky', '--nack', '--max', '1', '--output', 'json']));
    expect(first.map((l) => [l.value, l.deliveryCount, l.headers.tenant])).toEqual([['poison', 1, 'acme']]);
    const second = parseLines(await ok(['queue', 'consume', 'flaky', '--nack', '--max', '1', '--output', 'json']));
    expect(second.map((l) => [l.value, l.deliveryCount])).toEqual([['poison', 2]]);
    const none = await ok(['queue', 'consume', 'flaky', '--idle-timeout', '1500']);
    expect(none.stdout.trim()).toBe('');

    const peeked = JSON.parse((await ok(['dlq', 'peek', 'flaky', '--output', 'json'])).stdout) as Array<{ dlq: string; value: string; headers: Record<string, string> }>;
    expect(peeked).toHaveLength(1);
    expect(peeked[0]).toMatchObject({ dlq: 'flaky-dlq', value: 'poison' });
    expect(peeked[0]!.headers.tenant).toBe('acme');
    const filtered = JSON.parse((await ok(['dlq', 'peek', 'flaky', '--header', 'tenant=other', '--output', 'json'])).stdout) as unknown[];
    expect(filtered).toHaveLength(0);

    const dry = await ok(['dlq', 'replay', 'flaky', '--dry-run']);
    expect(dry.stdout).toContain('Would replay 1 dead letter');
    expect((await ok(['dlq', 'replay', 'flaky'])).stdout).toContain('Replayed 1 dead letter');
    expect((await ok(['dlq', 'replay', 'flaky'])).stdout).toContain('Replayed 0 dead letters');

    const back = parseLines(await ok(['queue', 'consume', 'flaky', '--idle-timeout', '1500', '--output', 'json']));
    expect(back.map((l) => [l.value, l.headers.tenant])).toEqual([['poison', 'acme']]);
  });

  it('routes by topic pattern, to an alternate when nothing matches, and refuses unroutable mandatory messages', async () => {
    await ok(['queue', 'create', 'eu-orders']);
    await ok(['queue', 'create', 'unrouted']);
    await ok(['exchange', 'create', 'orders', '--type', 'topic', '--alternate', 'queue:unrouted']);
    await ok(['bind', 'orders', 'eu-orders', '--routing-key', 'eu.#']);
    expect((await ok(['publish', '--exchange', 'orders', '--routing-key', 'eu.de.created'], 'o1\n')).stderr).toContain('routed to queue:eu-orders 1');
    expect((await ok(['publish', '--exchange', 'orders', '--routing-key', 'us.created'], 'o2\n')).stderr).toContain('routed to queue:unrouted 1');

    const listed = JSON.parse((await ok(['exchange', 'list', '--output', 'json'])).stdout) as Array<{ name: string; type: string; alternate: string; bindings: Array<{ destination: string; routingKey: string }> }>;
    expect(listed.find((e) => e.name === 'orders')).toMatchObject({ type: 'topic', alternate: 'queue:unrouted', bindings: [{ destination: 'queue:eu-orders', routingKey: 'eu.#' }] });

    await ok(['exchange', 'create', 'strict', '--type', 'direct']);
    const refused = await runCli(['publish', '--exchange', 'strict', '--routing-key', 'nowhere', '--mandatory'], { env: env(), stdin: 'x\n' });
    expect(refused.code).toBe(1);
    const dropped = await ok(['publish', '--exchange', 'strict', '--routing-key', 'nowhere'], 'x\n');
    expect(dropped.stderr).toContain('dropped 1');

    await ok(['unbind', 'orders', 'eu-orders', '--routing-key', 'eu.#']);
    expect((await ok(['publish', '--exchange', 'orders', '--routing-key', 'eu.fr'], 'o3\n')).stderr).toContain('routed to queue:unrouted 1');
    await ok(['exchange', 'delete', 'strict']);
    await ok(['queue', 'purge', 'unrouted']);
    await ok(['queue', 'delete', 'unrouted', '--if-empty']);
  });
});
