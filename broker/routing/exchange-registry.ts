/**
 * Exchanges and their bindings: validation, persistence through a RoutingStore,
 * and route(). Transport-free: the broker maps its requests to these methods and
 * a thrown KmqError to its response.
 *
 * Concurrency: event-loop only. Mutations (create, delete, bind, unbind,
 * removeDestination) run one at a time in call order; each validates against the
 * current state, writes to the store, and changes memory only once the store
 * call has resolved, so a failed call leaves memory equal to the store. route()
 * is synchronous and reads memory only.
 */
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { EXCHANGE_TYPES, MAX_ROUTING_KEY_BYTES } from './exchange-types.js';
import type { BindingSpec, Destination, ExchangeSpec, ExchangeType, RouteResult, RoutingStore } from './exchange-types.js';
import { UNROUTABLE, createRouter, noMatchResult } from './exchange-routers.js';
import type { DestinationEntry, ExchangeRouter, RoutedBinding } from './exchange-routers.js';
import { compileHeaders, headersProblem } from './headers-match.js';
import { routingKeyFits, topicPatternProblem } from './topic-pattern.js';

const EXCHANGE_NAME = /^[a-zA-Z0-9._-]{1,200}$/;
const MAX_DESTINATION_NAME = 255;

/** Options of the registry; every field has a default. */
export interface ExchangeRegistryOptions {
  /**
   * Memory of each topic exchange's matching DFA, in node references and cached
   * transitions (about 8 bytes each); past it the DFA is rebuilt on demand. 0
   * walks the trie on every route instead. Default 262144.
   */
  topicStateBudget?: number;
}

interface StoredBinding {
  readonly spec: Readonly<BindingSpec>;
  readonly routed: RoutedBinding;
}

interface ExchangeState {
  readonly spec: Readonly<ExchangeSpec>;
  readonly noMatch: RouteResult;
  readonly router: ExchangeRouter;
  /** By binding identity (see bindingId). */
  readonly bindings: Map<string, StoredBinding>;
  /** By destinationKey. */
  readonly destinations: Map<string, DestinationEntry>;
}

/** The exchanges of one broker. See the file header for concurrency. */
export class ExchangeRegistry {
  private readonly exchanges = new Map<string, ExchangeState>();
  private readonly topicStateBudget: number;
  private tail: Promise<unknown> = Promise.resolve();
  private started = false;

  constructor(
    private readonly store: RoutingStore,
    private readonly destinationExists: (d: Destination) => boolean,
    options: ExchangeRegistryOptions = {},
  ) {
    const budget = options.topicStateBudget ?? 262_144;
    if (!Number.isInteger(budget) || budget < 0) {
      throw new KmqError(ErrorCode.InvalidConfig, `topicStateBudget must be a whole number >= 0, not ${String(budget)}`, { setting: 'topicStateBudget' });
    }
    this.topicStateBudget = budget;
  }

  /**
   * Loads exchanges and bindings from the store. Bindings whose exchange is gone
   * (left by an interrupted delete) are skipped; anything invalid stops start-up.
   */
  start(): Promise<void> {
    return this.serially(async () => {
      const { exchanges, bindings } = await this.store.load();
      const loaded = new Map<string, ExchangeState>();
      for (const e of exchanges) {
        const spec = normalizeExchange(e);
        loaded.set(spec.name, this.newState(spec));
      }
      for (const b of bindings) {
        const ex = loaded.get(b.exchange);
        if (ex === undefined) continue;
        const spec = normalizeBinding(ex.spec.type, b);
        const id = bindingId(spec);
        if (!ex.bindings.has(id)) attach(ex, id, spec);
      }
      this.exchanges.clear();
      for (const [name, state] of loaded) this.exchanges.set(name, state);
      this.started = true;
    });
  }

  /**
   * Creates an exchange. An exchange of the same name and settings is an error
   * unless `ifNotExists`; one with other settings is always an error.
   */
  createExchange(spec: ExchangeSpec, opts: { ifNotExists?: boolean } = {}): Promise<void> {
    return this.serially(async () => {
      this.assertStarted();
      const normalized = normalizeExchange(spec);
      const existing = this.exchanges.get(normalized.name);
      if (existing !== undefined) {
        const e = existing.spec;
        if (e.type !== normalized.type) {
          throw exchangeExists(e.name, `Exchange "${e.name}" exists with type "${e.type}", not "${normalized.type}"`);
        }
        if (destinationKey(e.alternate) !== destinationKey(normalized.alternate)) {
          throw exchangeExists(e.name, `Exchange "${e.name}" exists with alternate ${describe(e.alternate)}, not ${describe(normalized.alternate)}`);
        }
        if (e.internal !== normalized.internal) {
          throw exchangeExists(e.name, `Exchange "${e.name}" exists with internal=${e.internal}, not internal=${normalized.internal}`);
        }
        if (opts.ifNotExists === true) return;
        throw exchangeExists(e.name, `Exchange "${e.name}" already exists`);
      }
      await this.store.putExchange(copyExchange(normalized));
      this.exchanges.set(normalized.name, this.newState(normalized));
    });
  }

  /** Deletes an exchange and its bindings (bindings first, so the store never keeps orphans). */
  deleteExchange(name: string, opts: { ifExists?: boolean } = {}): Promise<void> {
    return this.serially(async () => {
      this.assertStarted();
      const ex = this.exchanges.get(name);
      if (ex === undefined) {
        if (opts.ifExists === true) return;
        throw unknownExchange(name);
      }
      for (const [id, b] of [...ex.bindings]) {
        await this.store.deleteBinding(copyBinding(b.spec));
        detach(ex, id, b);
      }
      await this.store.deleteExchange(name);
      this.exchanges.delete(name);
    });
  }

  /** Adds a binding; binding again what exists changes nothing. */
  bind(b: BindingSpec): Promise<void> {
    return this.serially(async () => {
      this.assertStarted();
      const ex = this.exchangeOf(b);
      const spec = normalizeBinding(ex.spec.type, b);
      if (!this.destinationExists(spec.destination)) throw unknownDestination(spec.destination, spec.exchange);
      const id = bindingId(spec);
      if (ex.bindings.has(id)) return;
      await this.store.putBinding(copyBinding(spec));
      attach(ex, id, spec);
    });
  }

  /** Removes a binding, which must exist (same destination, key, headers and match). */
  unbind(b: BindingSpec): Promise<void> {
    return this.serially(async () => {
      this.assertStarted();
      const ex = this.exchangeOf(b);
      const spec = normalizeBinding(ex.spec.type, b);
      const id = bindingId(spec);
      const stored = ex.bindings.get(id);
      if (stored === undefined) {
        throw new KmqError(
          ErrorCode.UnknownBinding,
          `Exchange "${spec.exchange}" has no binding to ${describe(spec.destination)} with key "${spec.routingKey}"${spec.headers === undefined ? '' : ` and headers ${JSON.stringify(spec.headers)} (match ${spec.match})`}`,
          { exchange: spec.exchange, routingKey: spec.routingKey },
        );
      }
      await this.store.deleteBinding(copyBinding(stored.spec));
      detach(ex, id, stored);
    });
  }

  /** Every exchange with its bindings, by name; copies the caller may keep. */
  listExchanges(): Array<ExchangeSpec & { bindings: BindingSpec[] }> {
    const names = [...this.exchanges.keys()].sort();
    return names.map((name) => {
      const ex = this.exchanges.get(name)!;
      const ids = [...ex.bindings.keys()].sort();
      return { ...copyExchange(ex.spec), bindings: ids.map((id) => copyBinding(ex.bindings.get(id)!.spec)) };
    });
  }

  /** One exchange's spec (a copy), or undefined. */
  getExchange(name: string): ExchangeSpec | undefined {
    const ex = this.exchanges.get(name);
    return ex === undefined ? undefined : copyExchange(ex.spec);
  }

  /**
   * Where a message published to `exchange` goes. The result is frozen and may be
   * shared between calls. An alternate that no longer exists counts as none.
   */
  route(exchange: string, routingKey: string, headers?: Readonly<Record<string, string>>): RouteResult {
    const ex = this.exchanges.get(exchange);
    if (ex === undefined) throw unknownExchange(exchange);
    if (typeof routingKey !== 'string' || !routingKeyFits(routingKey)) {
      const why = typeof routingKey !== 'string' ? 'is not a string' : `is longer than ${MAX_ROUTING_KEY_BYTES} bytes`;
      throw new KmqError(ErrorCode.InvalidRoutingKey, `Routing key for exchange "${exchange}" ${why}`, { exchange });
    }
    const result = ex.router.route(routingKey, headers);
    if (result.usedAlternate && !this.destinationExists(result.destinations[0]!)) return UNROUTABLE;
    return result;
  }

  /** Drops every binding to `d` (a deleted queue or topic); returns how many. Alternates naming `d` stay. */
  removeDestination(d: Destination): Promise<number> {
    return this.serially(async () => {
      this.assertStarted();
      const problem = destinationProblem(d);
      if (problem !== undefined) throw new KmqError(ErrorCode.InvalidRequest, `Invalid destination: ${problem}`);
      const key = destinationKey(d);
      let removed = 0;
      for (const ex of this.exchanges.values()) {
        if (!ex.destinations.has(key)) continue;
        for (const [id, b] of [...ex.bindings]) {
          if (b.routed.target.sortKey !== key) continue;
          await this.store.deleteBinding(copyBinding(b.spec));
          detach(ex, id, b);
          removed++;
        }
      }
      return removed;
    });
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private assertStarted(): void {
    if (!this.started) throw new KmqError(ErrorCode.BrokerNotAvailable, 'Exchange registry is not started yet');
  }

  private exchangeOf(b: BindingSpec): ExchangeState {
    if (b === null || typeof b !== 'object') throw new KmqError(ErrorCode.InvalidRequest, 'A binding must be an object');
    const ex = this.exchanges.get(b.exchange);
    if (ex === undefined) throw unknownExchange(b.exchange);
    return ex;
  }

  private newState(spec: Readonly<ExchangeSpec>): ExchangeState {
    const noMatch = noMatchResult(spec.alternate);
    return { spec, noMatch, router: createRouter(spec.type, noMatch, this.topicStateBudget), bindings: new Map(), destinations: new Map() };
  }
}

function attach(ex: ExchangeState, id: string, spec: Readonly<BindingSpec>): void {
  const key = destinationKey(spec.destination);
  let target = ex.destinations.get(key);
  if (target === undefined) {
    target = { destination: Object.freeze({ kind: spec.destination.kind, name: spec.destination.name }), sortKey: key, refs: 0, mark: 0 };
    ex.destinations.set(key, target);
  }
  target.refs++;
  const routed: RoutedBinding =
    ex.spec.type === 'headers' ? { routingKey: spec.routingKey, target, headers: compileHeaders(spec.headers, spec.match) } : { routingKey: spec.routingKey, target };
  ex.router.add(routed);
  ex.bindings.set(id, { spec, routed });
}

function detach(ex: ExchangeState, id: string, b: StoredBinding): void {
  ex.router.remove(b.routed);
  ex.bindings.delete(id);
  const target = b.routed.target;
  if (--target.refs === 0) ex.destinations.delete(target.sortKey);
}

/** Validates an exchange spec and returns a frozen copy with only known fields. */
function normalizeExchange(spec: ExchangeSpec): Readonly<ExchangeSpec> {
  if (spec === null || typeof spec !== 'object') throw new KmqError(ErrorCode.InvalidExchange, 'An exchange spec must be an object');
  const { name, type, alternate, internal } = spec;
  if (name === '') {
    throw new KmqError(ErrorCode.InvalidExchange, 'The empty exchange name is reserved for the default exchange', { exchange: name });
  }
  if (typeof name !== 'string' || !EXCHANGE_NAME.test(name)) {
    throw new KmqError(ErrorCode.InvalidExchange, `Invalid exchange name ${JSON.stringify(name)}: use 1-200 characters of a-z, A-Z, 0-9, ".", "_", "-"`, {
      exchange: name,
    });
  }
  if (!EXCHANGE_TYPES.includes(type)) {
    throw new KmqError(ErrorCode.InvalidExchange, `Exchange "${name}" has unknown type ${JSON.stringify(type)} (one of ${EXCHANGE_TYPES.join(', ')})`, {
      exchange: name,
    });
  }
  if (alternate !== undefined) {
    const problem = destinationProblem(alternate);
    if (problem !== undefined) throw new KmqError(ErrorCode.InvalidExchange, `Exchange "${name}" has an invalid alternate: ${problem}`, { exchange: name });
  }
  if (internal !== undefined && typeof internal !== 'boolean') {
    throw new KmqError(ErrorCode.InvalidExchange, `Exchange "${name}": internal must be true or false`, { exchange: name });
  }
  return Object.freeze({
    name,
    type,
    ...(alternate === undefined ? {} : { alternate: Object.freeze({ kind: alternate.kind, name: alternate.name }) }),
    internal: internal ?? false,
  });
}

/**
 * Validates a binding for an exchange of `type` and returns a frozen copy with
 * only known fields; headers bindings get explicit `headers` and `match`.
 */
function normalizeBinding(type: ExchangeType, b: BindingSpec): Readonly<BindingSpec> {
  const { exchange, destination, routingKey, headers, match } = b;
  const problem = destinationProblem(destination);
  if (problem !== undefined) throw new KmqError(ErrorCode.InvalidRequest, `Invalid binding destination on exchange "${exchange}": ${problem}`, { exchange });
  if (type === 'topic') {
    const why = topicPatternProblem(routingKey);
    if (why !== undefined) {
      throw new KmqError(ErrorCode.InvalidRoutingPattern, `Invalid routing pattern ${JSON.stringify(routingKey)} on exchange "${exchange}": ${why}`, {
        exchange,
        pattern: routingKey,
      });
    }
  } else if (typeof routingKey !== 'string' || Buffer.byteLength(routingKey, 'utf8') > MAX_ROUTING_KEY_BYTES) {
    throw new KmqError(
      ErrorCode.InvalidRoutingKey,
      `Invalid binding key on exchange "${exchange}": ${typeof routingKey !== 'string' ? 'it is not a string' : `longer than ${MAX_ROUTING_KEY_BYTES} bytes`}`,
      { exchange },
    );
  }
  const dest = Object.freeze({ kind: destination.kind, name: destination.name });
  if (type !== 'headers') {
    if (headers !== undefined || match !== undefined) {
      throw new KmqError(ErrorCode.InvalidRequest, `Exchange "${exchange}" is a ${type} exchange: headers and match apply only to headers exchanges`, {
        exchange,
      });
    }
    return Object.freeze({ exchange, destination: dest, routingKey });
  }
  const why = headersProblem(headers, match);
  if (why !== undefined) throw new KmqError(ErrorCode.InvalidRequest, `Invalid headers binding on exchange "${exchange}": ${why}`, { exchange });
  // fromEntries defines own properties, so a header named "__proto__" stays a header.
  const sorted = Object.fromEntries(Object.entries(headers ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) as Record<string, string>;
  return Object.freeze({ exchange, destination: dest, routingKey, headers: Object.freeze(sorted), match: match ?? 'all' });
}

function destinationProblem(d: unknown): string | undefined {
  if (d === null || typeof d !== 'object') return 'a destination must be {kind, name}';
  const { kind, name } = d as Partial<Destination>;
  if (kind !== 'queue' && kind !== 'topic') return `destination kind must be "queue" or "topic", not ${JSON.stringify(kind)}`;
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_DESTINATION_NAME) {
    return `destination name must be 1-${MAX_DESTINATION_NAME} characters, not ${JSON.stringify(name)}`;
  }
  return undefined;
}

/** A binding's identity within its exchange: every field. */
function bindingId(b: Readonly<BindingSpec>): string {
  return JSON.stringify([b.destination.kind, b.destination.name, b.routingKey, b.headers === undefined ? null : Object.entries(b.headers), b.match ?? null]);
}

/** Identity and sort key of a destination: kind, NUL, name. */
function destinationKey(d: Destination | undefined): string {
  return d === undefined ? '' : `${d.kind}\u0000${d.name}`;
}

function describe(d: Destination | undefined): string {
  return d === undefined ? 'none' : `${d.kind} "${d.name}"`;
}

function copyExchange(e: Readonly<ExchangeSpec>): ExchangeSpec {
  const out: ExchangeSpec = { name: e.name, type: e.type, internal: e.internal ?? false };
  if (e.alternate !== undefined) out.alternate = { kind: e.alternate.kind, name: e.alternate.name };
  return out;
}

function copyBinding(b: Readonly<BindingSpec>): BindingSpec {
  const out: BindingSpec = { exchange: b.exchange, destination: { kind: b.destination.kind, name: b.destination.name }, routingKey: b.routingKey };
  if (b.headers !== undefined) out.headers = { ...b.headers };
  if (b.match !== undefined) out.match = b.match;
  return out;
}

function unknownExchange(name: string): KmqError {
  return new KmqError(ErrorCode.UnknownExchange, `Unknown exchange "${String(name)}"`, { exchange: name });
}

function exchangeExists(name: string, message: string): KmqError {
  return new KmqError(ErrorCode.ExchangeExists, message, { exchange: name });
}

function unknownDestination(d: Destination, exchange: string): KmqError {
  return d.kind === 'queue'
    ? new KmqError(ErrorCode.UnknownQueue, `Unknown queue "${d.name}"`, { exchange, queue: d.name })
    : new KmqError(ErrorCode.UnknownTopic, `Unknown topic "${d.name}"`, { exchange, topic: d.name });
}
