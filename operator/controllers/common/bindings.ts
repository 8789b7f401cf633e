import type { Admin } from '../../../client/admin.js';
import { destinationFromWire } from '../../../client/queue-admin.js';
import type { BindingSpec, DestinationRef, ExchangeInfo } from '../../../client/queue-admin.js';
import { ErrorCode } from '../../../lib/errors.js';
import type { Binding, Exchange, KmqResource } from '../../api/v1alpha1/index.js';
import { objectKey } from '../../runtime/informer.js';
import { BrokerReason, hasCode } from './broker-errors.js';
import type { ObjectCache, Problem } from './broker-object-reconciler.js';
import { brokerSideName } from './naming.js';

/** The broker bindings a Queue or Topic declares in `spec.bindings`, exchange names namespaced. */
export function desiredBindings(namespace: string, destination: DestinationRef, bindings: readonly Binding[] | undefined): BindingSpec[] {
  return (bindings ?? []).map((b) => ({
    exchange: brokerSideName(namespace, b.exchange),
    destination,
    routingKey: b.routingKey ?? '',
    headers: { ...(b.headers ?? {}) },
    match: b.match ?? 'all',
  }));
}

/** The bindings the broker holds to `destination`, over every exchange. */
export function bindingsTo(exchanges: readonly ExchangeInfo[], destination: DestinationRef): BindingSpec[] {
  const out: BindingSpec[] = [];
  for (const x of exchanges) {
    for (const b of x.bindings) {
      const d = destinationFromWire(b.destination);
      if (d === undefined || d.kind !== destination.kind || d.name !== destination.name) continue;
      out.push({ exchange: b.exchange === '' ? x.name : b.exchange, destination: d, routingKey: b.routingKey, headers: { ...b.headers }, match: b.matchAny ? 'any' : 'all' });
    }
  }
  return out;
}

/** Identifies a binding: two with the same key route the same messages. */
export function bindingKey(b: BindingSpec): string {
  const headers = Object.entries(b.headers ?? {}).sort(([a], [c]) => (a < c ? -1 : a > c ? 1 : 0));
  return JSON.stringify([b.exchange, b.destination.kind, b.destination.name, b.routingKey ?? '', headers, headers.length === 0 ? 'all' : (b.match ?? 'all')]);
}

/** What to bind and unbind so that the broker holds exactly `desired`. */
export function diffBindings(desired: readonly BindingSpec[], current: readonly BindingSpec[]): { bind: BindingSpec[]; unbind: BindingSpec[] } {
  const want = new Map(desired.map((b) => [bindingKey(b), b]));
  const have = new Map(current.map((b) => [bindingKey(b), b]));
  return {
    bind: [...want].filter(([k]) => !have.has(k)).map(([, b]) => b),
    unbind: [...have].filter(([k]) => !want.has(k)).map(([, b]) => b),
  };
}

/** The outcome of syncing bindings. */
export interface BindingSync {
  /** Declared bindings in place on the broker. */
  inPlace: number;
  /** Set when an exchange a binding names does not exist on the broker. */
  problem?: Problem;
}

/**
 * Binds and unbinds so that the broker holds exactly the declared bindings to
 * `destination`. A binding to an exchange that does not exist is left out and reported
 * (ExchangeNotFound): objects are applied in any order, the Exchange may come later.
 */
export async function syncBindings(admin: Admin, desired: readonly BindingSpec[], destination: DestinationRef): Promise<BindingSync> {
  const exchanges = await admin.listExchanges();
  const known = new Set(exchanges.map((x) => x.name));
  const { bind, unbind } = diffBindings(desired, bindingsTo(exchanges, destination));
  for (const b of unbind) {
    try {
      await admin.unbind(b);
    } catch (err) {
      if (!hasCode(err, ErrorCode.UnknownBinding, ErrorCode.UnknownExchange)) throw err;
    }
  }
  const missing = new Set<string>();
  let failed = 0;
  for (const b of bind) {
    if (!known.has(b.exchange)) {
      missing.add(b.exchange);
      failed++;
      continue;
    }
    try {
      await admin.bind(b);
    } catch (err) {
      if (!hasCode(err, ErrorCode.UnknownExchange)) throw err;
      missing.add(b.exchange);
      failed++;
    }
  }
  const inPlace = desired.length - failed;
  if (missing.size === 0) return { inPlace };
  const names = [...missing].sort();
  return {
    inPlace,
    problem: { reason: BrokerReason.ExchangeNotFound, message: `Exchange${names.length > 1 ? 's' : ''} ${names.join(', ')} not found on the broker; ${failed} of ${desired.length} bindings not in place`, degraded: false },
  };
}

/** Removes every binding to `destination` (deleting a Queue or Topic takes its bindings with it). */
export async function removeBindings(admin: Admin, destination: DestinationRef): Promise<void> {
  await syncBindings(admin, [], destination);
}

/** Maps an Exchange to the keys of the objects of `objects` in its namespace that bind to it. */
export function keysBindingTo<T extends KmqResource<string, { bindings?: Binding[] }, unknown>>(objects: ObjectCache<T>): (exchange: Exchange) => string[] {
  return (exchange) => {
    const namespace = exchange.metadata.namespace;
    if (namespace === undefined) return [];
    return objects
      .list(namespace)
      .filter((o) => (o.spec.bindings ?? []).some((b) => b.exchange === exchange.metadata.name))
      .map((o) => objectKey(o));
  };
}
