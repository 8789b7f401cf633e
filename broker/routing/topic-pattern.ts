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
 * set holds each node at most once, so a step costs at most one visit per trie
 * node whatever the patterns — no backtracking, no regex.
 *
 * `resolve` memoises that walk as a lazily built DFA: each distinct set of live
 * nodes is one state, interned by its node ids, with its transitions cached per
 * literal word plus one shared transition for every other word (so keys full of
 * unique ids add nothing). Once warm, a key costs one map lookup per word. The
 * states are dropped on any add/remove, and when they outgrow `stateBudget`.
 *
 * Not safe for re-entrant use: walks reuse scratch state of the instance.
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

  constructor(
    readonly id: number,
    readonly isHash: boolean,
  ) {}

  isEmpty(): boolean {
    return this.values.length === 0 && this.star === undefined && this.hash === undefined && (this.children === undefined || this.children.size === 0);
  }
}

/** A state of the matching DFA: what a routing key that ends here matches. */
export interface TopicMatchState<T, M> {
  /** Values of every pattern entry that matches (once per entry). */
  readonly values: readonly T[];
  /** The caller's memo for this state, e.g. a routing result; dropped with the state. */
  memo: M | undefined;
}

class DfaState<T, M> implements TopicMatchState<T, M> {
  readonly next = new Map<string, DfaState<T, M>>();
  /** The transition for every word that is not in `literals`. */
  other: DfaState<T, M> | undefined = undefined;
  memo: M | undefined = undefined;
  private matched: T[] | undefined = undefined;

  constructor(
    readonly nodes: ReadonlyArray<TrieNode<T>>,
    /** Words with an edge out of some node of this state. */
    readonly literals: ReadonlySet<string>,
  ) {}

  get values(): readonly T[] {
    return (this.matched ??= this.nodes.flatMap((n) => n.values));
  }
}

/** Options of a TopicTrie. */
export interface TopicTrieOptions {
  /**
   * Memory for DFA states, in node references plus cached transitions (about 8
   * bytes each); past it every state is dropped and rebuilt on demand. Default 262144.
   */
  stateBudget?: number;
}

/**
 * Topic patterns compiled into one trie. `add` and `remove` take valid patterns
 * (they throw KmqError(InvalidRoutingPattern) otherwise); the same value may be
 * added under several patterns and is then reported once per pattern matched.
 * `T` is the value type, `M` the type of the memo callers keep per DFA state.
 */
export class TopicTrie<T, M = never> {
  private nextId = 0;
  private readonly root = new TrieNode<T>(this.nextId++, false);
  private walkStep = 0;
  private live: Array<TrieNode<T>> = [];
  private nextLive: Array<TrieNode<T>> = [];
  private count = 0;
  private readonly stateBudget: number;
  private states = new Map<string, DfaState<T, M>>();
  private start: DfaState<T, M> | undefined = undefined;
  private stateCost = 0;

  constructor(options: TopicTrieOptions = {}) {
    this.stateBudget = options.stateBudget ?? 262_144;
  }

  /** Number of (pattern, value) entries. */
  get size(): number {
    return this.count;
  }

  /** Number of DFA states built since they were last dropped. */
  get stateCount(): number {
    return this.states.size;
  }

  add(pattern: string, value: T): void {
    assertTopicPattern(pattern);
    let node = this.root;
    for (const w of splitWords(pattern)) {
      if (w === '*') node = node.star ??= new TrieNode<T>(this.nextId++, false);
      else if (w === '#') node = node.hash ??= new TrieNode<T>(this.nextId++, true);
      else {
        node.children ??= new Map();
        let child = node.children.get(w);
        if (child === undefined) {
          child = new TrieNode<T>(this.nextId++, false);
          node.children.set(w, child);
        }
        node = child;
      }
    }
    node.values.push(value);
    this.count++;
    this.dropStates();
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
    this.dropStates();
    return true;
  }

  /**
   * The DFA state `routingKey` ends in: its `values` are those of every matching
   * pattern entry. Builds missing states on the way. Does not check the key's length.
   */
  resolve(routingKey: string): TopicMatchState<T, M> {
    let state = (this.start ??= this.intern(this.closure(this.root)));
    if (routingKey === '') return state;
    let start = 0;
    for (;;) {
      // The dead state (no live node) stays dead.
      if (state.nodes.length === 0) return state;
      let end = routingKey.indexOf('.', start);
      if (end < 0) end = routingKey.length;
      const word = routingKey.substring(start, end);
      let next = state.next.get(word);
      if (next === undefined) {
        if (state.literals.has(word)) {
          next = this.transition(state.nodes, word);
          state.next.set(word, next);
          this.stateCost++;
        } else {
          next = state.other ??= this.transition(state.nodes, undefined);
        }
      }
      state = next;
      if (end === routingKey.length) return state;
      start = end + 1;
    }
  }

  /**
   * Appends to `out` the values of every pattern that matches `routingKey`
   * (once per matching pattern entry), by a plain NFA walk that builds no DFA
   * state. Does not check the key's length.
   */
  match(routingKey: string, out: T[]): void {
    let live = this.live;
    let next = this.nextLive;
    let liveLen = this.enter(this.root, live, 0, ++this.walkStep);
    if (routingKey !== '') {
      let start = 0;
      for (;;) {
        let end = routingKey.indexOf('.', start);
        if (end < 0) end = routingKey.length;
        const step = ++this.walkStep;
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

  private closure(node: TrieNode<T>): Array<TrieNode<T>> {
    const set: Array<TrieNode<T>> = [];
    this.enter(node, set, 0, ++this.walkStep);
    return set;
  }

  /** The state after one word (`undefined`: a word with no literal edge) from the live `nodes`. */
  private transition(nodes: ReadonlyArray<TrieNode<T>>, word: string | undefined): DfaState<T, M> {
    const step = ++this.walkStep;
    const set: Array<TrieNode<T>> = [];
    let len = 0;
    for (const n of nodes) {
      if (word !== undefined) {
        const c = n.children?.get(word);
        if (c !== undefined) len = this.enter(c, set, len, step);
      }
      if (n.star !== undefined) len = this.enter(n.star, set, len, step);
      if (n.isHash) len = this.enter(n, set, len, step);
    }
    return this.intern(set);
  }

  private intern(set: Array<TrieNode<T>>): DfaState<T, M> {
    set.sort((a, b) => a.id - b.id);
    let key = '';
    for (const n of set) key += `${n.id},`;
    const existing = this.states.get(key);
    if (existing !== undefined) return existing;
    const literals = new Set<string>();
    for (const n of set) if (n.children !== undefined) for (const w of n.children.keys()) literals.add(w);
    const cost = 1 + set.length + literals.size;
    // Past the budget, start over; states still referenced by a walk in progress stay valid.
    if (this.stateCost + cost > this.stateBudget) this.dropStates();
    const state = new DfaState<T, M>(set, literals);
    this.states.set(key, state);
    this.stateCost += cost;
    return state;
  }

  private dropStates(): void {
    if (this.states.size === 0 && this.start === undefined) return;
    this.states = new Map();
    this.start = undefined;
    this.stateCost = 0;
  }
}
