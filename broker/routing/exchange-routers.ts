/**
 * One router per exchange type: the in-memory index of an exchange's bindings
 * that answers "where does this message go". Routers hold already-validated
 * bindings; the registry validates, persists, and calls add/remove.
 *
 * Results are frozen and shared: direct and fanout results are built when
 * bindings change, topic results are kept per state of the matching DFA (see
 * topic-pattern.ts), so the common route() allocates little more than the words
 * of the key. Headers results depend on the message and are built per call.
 */
import type { Destination, ExchangeType, RouteResult } from './exchange-types.js';
import { headersMatch } from './headers-match.js';
import type { CompiledHeaders } from './headers-match.js';
import { TopicTrie } from './topic-pattern.js';

/** One destination of one exchange, shared by all bindings to it. */
export interface DestinationEntry {
  readonly destination: Readonly<Destination>;
  /** kind, NUL, name: the order of destinations in results. */
  readonly sortKey: string;
  /** Bindings of the exchange that point here. */
  refs: number;
  /** The dedup pass that last saw this entry. */
  mark: number;
}

/** A validated binding as a router sees it. */
export interface RoutedBinding {
  readonly routingKey: string;
  readonly target: DestinationEntry;
  /** Headers exchanges only. */
  readonly headers?: CompiledHeaders;
}

export interface ExchangeRouter {
  add(b: RoutedBinding): void;
  remove(b: RoutedBinding): void;
  route(routingKey: string, headers: Readonly<Record<string, string>> | undefined): RouteResult;
}

export const UNROUTABLE: RouteResult = Object.freeze({ destinations: Object.freeze([]), unroutable: true, usedAlternate: false });

/** The result when nothing matches: the alternate if there is one, else unroutable. */
export function noMatchResult(alternate: Destination | undefined): RouteResult {
  if (alternate === undefined) return UNROUTABLE;
  const destination = Object.freeze({ kind: alternate.kind, name: alternate.name });
  return Object.freeze({ destinations: Object.freeze([destination]), unroutable: false, usedAlternate: true });
}

let dedupPass = 0;

/** Deduplicated, sorted, frozen result for `entries` (which may repeat), or `noMatch` when empty. */
function resultOf(entries: readonly DestinationEntry[], noMatch: RouteResult): RouteResult {
  if (entries.length === 0) return noMatch;
  if (entries.length === 1) return Object.freeze({ destinations: Object.freeze([entries[0]!.destination]), unroutable: false, usedAlternate: false });
  const pass = ++dedupPass;
  const unique: DestinationEntry[] = [];
  for (const e of entries) {
    if (e.mark === pass) continue;
    e.mark = pass;
    unique.push(e);
  }
  unique.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
  const destinations = new Array<Readonly<Destination>>(unique.length);
  for (let i = 0; i < unique.length; i++) destinations[i] = unique[i]!.destination;
  return Object.freeze({ destinations: Object.freeze(destinations), unroutable: false, usedAlternate: false });
}

function removeOne<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}

/** Exact key: one map lookup. */
class DirectRouter implements ExchangeRouter {
  private readonly byKey = new Map<string, { entries: DestinationEntry[]; result: RouteResult }>();

  constructor(private readonly noMatch: RouteResult) {}

  add(b: RoutedBinding): void {
    let slot = this.byKey.get(b.routingKey);
    if (slot === undefined) {
      slot = { entries: [], result: this.noMatch };
      this.byKey.set(b.routingKey, slot);
    }
    slot.entries.push(b.target);
    slot.result = resultOf(slot.entries, this.noMatch);
  }

  remove(b: RoutedBinding): void {
    const slot = this.byKey.get(b.routingKey);
    if (slot === undefined) return;
    removeOne(slot.entries, b.target);
    if (slot.entries.length === 0) this.byKey.delete(b.routingKey);
    else slot.result = resultOf(slot.entries, this.noMatch);
  }

  route(routingKey: string): RouteResult {
    return this.byKey.get(routingKey)?.result ?? this.noMatch;
  }
}

/** Every binding, key ignored: one prebuilt result. */
class FanoutRouter implements ExchangeRouter {
  private readonly entries: DestinationEntry[] = [];
  private result: RouteResult;

  constructor(private readonly noMatch: RouteResult) {
    this.result = noMatch;
  }

  add(b: RoutedBinding): void {
    this.entries.push(b.target);
    this.result = resultOf(this.entries, this.noMatch);
  }

  remove(b: RoutedBinding): void {
    removeOne(this.entries, b.target);
    this.result = resultOf(this.entries, this.noMatch);
  }

  route(): RouteResult {
    return this.result;
  }
}

/** Patterns in one trie; each DFA state keeps its result, so a warm route is a lookup per word. */
class TopicRouter implements ExchangeRouter {
  private readonly trie: TopicTrie<DestinationEntry, RouteResult>;
  private readonly scratch: DestinationEntry[] = [];

  constructor(
    private readonly noMatch: RouteResult,
    private readonly stateBudget: number,
  ) {
    this.trie = new TopicTrie({ stateBudget });
  }

  add(b: RoutedBinding): void {
    this.trie.add(b.routingKey, b.target);
  }

  remove(b: RoutedBinding): void {
    this.trie.remove(b.routingKey, b.target);
  }

  route(routingKey: string): RouteResult {
    if (this.stateBudget > 0) {
      const state = this.trie.resolve(routingKey);
      return (state.memo ??= resultOf(state.values, this.noMatch));
    }
    const scratch = this.scratch;
    scratch.length = 0;
    this.trie.match(routingKey, scratch);
    const result = resultOf(scratch, this.noMatch);
    scratch.length = 0;
    return result;
  }
}

/** Headers: every binding is checked against the message. */
class HeadersRouter implements ExchangeRouter {
  private readonly bindings: RoutedBinding[] = [];
  private readonly scratch: DestinationEntry[] = [];

  constructor(private readonly noMatch: RouteResult) {}

  add(b: RoutedBinding): void {
    this.bindings.push(b);
  }

  remove(b: RoutedBinding): void {
    removeOne(this.bindings, b);
  }

  route(_routingKey: string, headers: Readonly<Record<string, string>> | undefined): RouteResult {
    const scratch = this.scratch;
    scratch.length = 0;
    for (const b of this.bindings) if (headersMatch(b.headers!, headers)) scratch.push(b.target);
    const result = resultOf(scratch, this.noMatch);
    scratch.length = 0;
    return result;
  }
}

/** A router for an exchange of `type` whose alternate gives `noMatch`. `topicStateBudget` 0: walk the trie on every route. */
export function createRouter(type: ExchangeType, noMatch: RouteResult, topicStateBudget: number): ExchangeRouter {
  switch (type) {
    case 'direct':
      return new DirectRouter(noMatch);
    case 'fanout':
      return new FanoutRouter(noMatch);
    case 'topic':
      return new TopicRouter(noMatch, topicStateBudget);
    case 'headers':
      return new HeadersRouter(noMatch);
  }
}
