/**
 * Bindings of the exchange workload: random 3–5-word topic patterns (some `*` and
 * `#`) from a seeded generator, none of which matches the routing key, plus one
 * binding that does. Checked against a reference matcher here, not the broker's.
 */

const WORDS = ['orders', 'users', 'eu', 'us', 'created', 'updated', 'deleted', 'v1', 'v2', 'audit'];

/** The routing key every message of the workload is published with: words of the patterns' alphabet, so near misses abound. */
export const EXCHANGE_ROUTING_KEY = 'orders.eu.created.v1';

/** mulberry32: a small seeded generator, so every run binds the same patterns. */
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

/** AMQP topic matching: `*` is exactly one word, `#` zero or more. */
export function topicMatches(pattern: readonly string[], key: readonly string[], i = 0, j = 0): boolean {
  if (i === pattern.length) return j === key.length;
  const w = pattern[i]!;
  if (w === '#') return topicMatches(pattern, key, i + 1, j) || (j < key.length && topicMatches(pattern, key, i, j + 1));
  if (j === key.length) return false;
  return (w === '*' || w === key[j]) && topicMatches(pattern, key, i + 1, j + 1);
}

export interface BenchBinding {
  pattern: string;
  /** Index into the non-matching destinations, or -1 for the one matching binding. */
  destination: number;
}

/**
 * `count` distinct bindings: `count − 1` patterns that do not match
 * EXCHANGE_ROUTING_KEY, spread over `sinks` destinations, and last the routing key
 * itself (destination −1).
 */
export function exchangeBindings(count: number, sinks: number, seed = 42): BenchBinding[] {
  const rand = prng(seed);
  const key = EXCHANGE_ROUTING_KEY.split('.');
  const seen = new Set<string>();
  const out: BenchBinding[] = [];
  while (out.length < count - 1) {
    const n = 3 + Math.floor(rand() * 3);
    const words: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = rand();
      words.push(r < 0.15 ? '*' : r < 0.25 ? '#' : WORDS[Math.floor(rand() * WORDS.length)]!);
    }
    const destination = out.length % sinks;
    const id = `${words.join('.')}\u0000${destination}`;
    if (seen.has(id) || topicMatches(words, key)) continue;
    seen.add(id);
    out.push({ pattern: words.join('.'), destination });
  }
  out.push({ pattern: EXCHANGE_ROUTING_KEY, destination: -1 });
  return out;
}
