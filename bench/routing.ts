/**
 * Exchange routing micro-benchmark: ExchangeRegistry.route() with 1 and with
 * 1,000 bindings. Topic bindings are random 3-5 word patterns over a 10-word
 * alphabet with some `*` and `#`; routing keys are 4096 random 4-word keys over
 * the same alphabet. Topic routing is measured walking the trie on every call
 * (topicStateBudget 0) and through the lazily built DFA (the default), after one
 * warm-up pass. Also: direct, fanout, headers, and stacked `#` patterns against
 * 64-word keys.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/routing.js
 */
import { ExchangeRegistry } from '../broker/routing/exchange-registry.js';
import type { BindingSpec, ExchangeSpec, ExchangeType, RoutingStore } from '../broker/routing/exchange-types.js';

const WORDS = ['orders', 'users', 'eu', 'us', 'created', 'updated', 'deleted', 'v1', 'v2', 'audit'];

/** mulberry32: a small seeded generator, so every run measures the same bindings. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = prng(42);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

function randomPattern(): string {
  const n = 3 + Math.floor(rand() * 3);
  const words: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = rand();
    words.push(r < 0.15 ? '*' : r < 0.25 ? '#' : pick(WORDS));
  }
  return words.join('.');
}

function randomKey(): string {
  return [pick(WORDS), pick(WORDS), pick(WORDS), pick(WORDS)].join('.');
}

const nullStore: RoutingStore = {
  load: async () => ({ exchanges: [], bindings: [] }),
  putExchange: async (_e: ExchangeSpec) => undefined,
  deleteExchange: async () => undefined,
  putBinding: async (_b: BindingSpec) => undefined,
  deleteBinding: async () => undefined,
};

async function registryWith(type: ExchangeType, bindings: number, pattern: (i: number) => string, stateBudget: number, headers?: (i: number) => Record<string, string>): Promise<ExchangeRegistry> {
  const registry = new ExchangeRegistry(nullStore, () => true, { topicStateBudget: stateBudget });
  await registry.start();
  await registry.createExchange({ name: 'x', type });
  for (let i = 0; i < bindings; i++) {
    // 100 queues, so several bindings share a destination and dedup does real work.
    const b: BindingSpec = { exchange: 'x', destination: { kind: 'queue', name: `q${i % 100}` }, routingKey: pattern(i) };
    if (headers !== undefined) b.headers = headers(i);
    await registry.bind(b);
  }
  return registry;
}

function measure(label: string, registry: ExchangeRegistry, keys: string[], headers?: Array<Record<string, string>>, minMs = 400): void {
  let sink = 0;
  const mask = keys.length - 1; // keys.length is a power of two
  for (let i = 0; i < 20_000; i++) sink += registry.route('x', keys[i & mask]!, headers?.[i & mask]).destinations.length;
  let calls = 0;
  const start = process.hrtime.bigint();
  let elapsedNs = 0;
  while (elapsedNs < minMs * 1e6) {
    for (let i = 0; i < 10_000; i++) sink += registry.route('x', keys[(calls + i) & mask]!, headers?.[(calls + i) & mask]).destinations.length;
    calls += 10_000;
    elapsedNs = Number(process.hrtime.bigint() - start);
  }
  const opsPerSec = calls / (elapsedNs / 1e9);
  const avgDest = sink / (calls + 20_000);
  console.log(`${label.padEnd(46)} ${(opsPerSec / 1e6).toFixed(2).padStart(7)} M ops/s  ${(elapsedNs / calls).toFixed(0).padStart(6)} ns/op  avg ${avgDest.toFixed(1)} destinations`);
}

const keys = Array.from({ length: 4096 }, randomKey);
const patterns = Array.from({ length: 1000 }, randomPattern);
const DEFAULT_BUDGET = 262_144;

for (const n of [1, 1000]) {
  measure(`topic, ${n} binding(s), trie walk per call`, await registryWith('topic', n, (i) => patterns[i]!, 0), keys);
  measure(`topic, ${n} binding(s), DFA`, await registryWith('topic', n, (i) => patterns[i]!, DEFAULT_BUDGET), keys);
  measure(`direct, ${n} binding(s)`, await registryWith('direct', n, () => randomKey(), 0), keys);
  measure(`fanout, ${n} binding(s)`, await registryWith('fanout', n, (i) => `k${i}`, 0), keys);
  const msgHeaders = keys.map(() => ({ region: pick(WORDS), kind: pick(WORDS) }));
  measure(
    `headers, ${n} binding(s)`,
    await registryWith('headers', n, () => '', 0, () => ({ region: pick(WORDS), kind: pick(WORDS) })),
    keys,
    msgHeaders,
  );
}

// Stacked `#`: 50 patterns "#.#.#.#.#.<w><i>", 64-word keys (127 bytes). A backtracking matcher would not finish.
const letters = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
const longKeys = Array.from({ length: 4096 }, () => Array.from({ length: 64 }, () => pick(letters)).join('.'));
for (const budget of [0, DEFAULT_BUDGET]) {
  const stacked = await registryWith('topic', 50, (i) => `#.#.#.#.#.${letters[i % letters.length]}${i}`, budget);
  measure(`topic, 50 stacked-# patterns, 64 words, ${budget === 0 ? 'walk' : 'DFA'}`, stacked, longKeys);
}
