/**
 * Topic-exchange patterns: validation, and a trie that matches a routing key
 * against every pattern at once.
 *
 * Words are separated by '.'; a word may be empty ("a..b" has three words). As in
 * RabbitMQ, the empty string has zero words (so "#" and "" match it, "*" does not).
 * In a pattern, `*` matches exactly one word and `#` zero or more; both must be
 * whole words.
 *
 * The trie has one edge per literal word plus a `*` and a `#` edge per node. A
 * match walks the words keeping the set of live nodes (an NFA walk): a `#` node
 * is live as soon as its parent is (zero words) and stays live on every word. The
 * set holds each node at most once, so a match costs at most
 * words × trie nodes steps whatever the patterns — no backtracking, no regex.
 *
 * Not safe for re-entrant use: `match` reuses scratch arrays of the instance.
 */
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { MAX_ROUTING_KEY_BYTES } from './exchange-types.js';

/** Why `pattern` is not a valid topic pattern, or undefined when it is valid. */
export function topicPatternProblem(pattern: string): string | undefined {
  if (typeof pattern !== 'string') return 'it is not a string';
  const bytes = Buffer.byteLength(pattern, 'utf8');
  if (bytes > MAX_ROUTING_KEY_BYTES) return `it is ${bytes} bytes long (at most ${MAX_ROUTING_KEY_BYTES})`;
  const words = splitWords(pattern);
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w.length > 1 && (w.includes('*') || w.includes('#'))) {
      return `"*" and "#" must be whole words, but word ${i + 1} is "${w}"`;
    }
  }
  return undefined;
}

/** Throws KmqError(InvalidRoutingPattern) naming the pattern and the problem. */
export function assertTopicPattern(pattern: string, context: Record<string, unknown> = {}): void {
  const problem = topicPatternProblem(pattern);
  if (problem !== undefined) {
    throw new KmqError(ErrorCode.InvalidRoutingPattern, `Invalid routing pattern "${String(pattern)}": ${problem}`, { ...context, pattern });
  }
}

/** The words of a key or pattern; the empty string has none. */
export function splitWords(key: string): string[] {
  return key === '' ? [] : key.split('.');
}

/** True when `key` fits the routing-key limit; cheap for short keys. */
export function routingKeyFits(key: string): boolean {
  if (key.length * 3 <= MAX_ROUTING_KEY_BYTES) return true;
  if (key.length > MAX_ROUTING_KEY_BYTES) return false;
  return Buffer.byteLength(key, 'utf8') <= MAX_ROUTING_KEY_BYTES;
}

class TrieNode<T> {
  children: Map<string, TrieNode<T>> | undefined = undefined;
  star: TrieNode<T> | undefined = undefined;
  hash: TrieNode<T> | undefined = undefined;
  /** Values of the patterns that end here, one entry per add(). */
  readonly values: T[] = [];
  /** The walk step that last put this node in a live set. */
  mark = 0;

  constructor(readonly isHash: boolean) {}

  isEmpty(): boolean {
    return this.values.length === 0 && this.star === undefined && this.hash === undefined && (this.children === undefined || this.children.size === 0);
  }
}

/**
 * Topic patterns compiled into one trie. `add` and `remove` take valid patterns
 * (they throw KmqError(InvalidRoutingPattern) otherwise); the same value may be
 * added under several patterns and `match` reports it once per pattern matched.
 */
export class TopicTrie<T> {
  private readonly root = new TrieNode<T>(false);
  private step = 0;
  private live: Array<TrieNode<T>> = [];
  private nextLive: Array<TrieNode<T>> = [];
  private count = 0;

  /** Number of (pattern, value) entries. */
  get size(): number {
    return this.count;
  }

  add(pattern: string, value: T): void {
    assertTopicPattern(pattern);
    let node = this.root;
    for (const w of splitWords(pattern)) {
      if (w === '*') node = node.star ??= new TrieNode<T>(false);
      else if (w === '#') node = node.hash ??= new TrieNode<T>(true);
      else {
        node.children ??= new Map();
        let child = node.children.get(w);
        if (child === undefined) {
          child = new TrieNode<T>(false);
          node.children.set(w, child);
        }
        node = child;
      }
    }
    node.values.push(value);
    this.count++;
  }

  /** Removes one entry of `value` under `pattern`; false when there is none. Prunes empty nodes. */
  remove(pattern: string, value: T): boolean {
    assertTopicPattern(pattern);
    const words = splitWords(pattern);
    const path: Array<TrieNode<T>> = [this.root];
    let node: TrieNode<T> | undefined = this.root;
    for (const w of words) {
      node = w === '*' ? node.star : w === '#' ? node.hash : node.children?.get(w);
      if (node === undefined) return false;
      path.push(node);
    }
    const i = node.values.indexOf(value);
    if (i < 0) return false;
    node.values.splice(i, 1);
    this.count--;
    for (let d = words.length; d > 0 && path[d]!.isEmpty(); d--) {
      const parent = path[d - 1]!;
      const w = words[d - 1]!;
      if (w === '*') parent.star = undefined;
      else if (w === '#') parent.hash = undefined;
      else parent.children!.delete(w);
    }
    return true;
  }

  /**
   * Appends to `out` the values of every pattern that matches `routingKey`
   * (once per matching pattern entry). Does not check the key's length.
   */
  match(routingKey: string, out: T[]): void {
    let live = this.live;
    let next = this.nextLive;
    let liveLen = this.enter(this.root, live, 0, ++this.step);
    if (routingKey !== '') {
      let start = 0;
      for (;;) {
        let end = routingKey.indexOf('.', start);
        if (end < 0) end = routingKey.length;
        const step = ++this.step;
        let nextLen = 0;
        let word: string | undefined;
        for (let i = 0; i < liveLen; i++) {
          const n = live[i]!;
          if (n.children !== undefined) {
            word ??= routingKey.substring(start, end);
            const c = n.children.get(word);
            if (c !== undefined) nextLen = this.enter(c, next, nextLen, step);
          }
          if (n.star !== undefined) nextLen = this.enter(n.star, next, nextLen, step);
          if (n.isHash) nextLen = this.enter(n, next, nextLen, step);
        }
        const t = live;
        live = next;
        next = t;
        liveLen = nextLen;
        if (liveLen === 0 || end === routingKey.length) break;
        start = end + 1;
      }
    }
    for (let i = 0; i < liveLen; i++) {
      const values = live[i]!.values;
      for (let j = 0; j < values.length; j++) out.push(values[j]!);
    }
    this.live = live;
    this.nextLive = next;
  }

  /** Puts `node` and the chain of `#` nodes below it (they match zero words) into `set`. */
  private enter(node: TrieNode<T> | undefined, set: Array<TrieNode<T>>, len: number, step: number): number {
    // A marked node was entered this step, and its `#` chain with it.
    while (node !== undefined && node.mark !== step) {
      node.mark = step;
      set[len++] = node;
      node = node.hash;
    }
    return len;
  }
}
