import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { BindingSpec, ExchangeSpec, RoutingStore } from '../routing/exchange-types.js';
import type { CoordinationStore } from './coordination-store.js';
import { bindingKey } from './local-metadata-store.js';

/** The key of the cluster's exchanges and bindings, relative to the cluster's prefix. */
export const ROUTING_KEY = 'routing';

interface RoutingDocument {
  exchanges: Record<string, ExchangeSpec>;
  bindings: BindingSpec[];
}

const MAX_ATTEMPTS = 32;

/**
 * Exchanges and bindings of a cluster, as one JSON document in the coordination
 * store: whichever broker hosts the queues loads it when it takes over, and every
 * change is a compare-and-swap on the version read, so a deposed host's late
 * write cannot undo its successor's.
 */
export function clusterRoutingStore(store: CoordinationStore): RoutingStore {
  const read = async (): Promise<{ doc: RoutingDocument; version: number | 'absent' }> => {
    const cur = await store.get(ROUTING_KEY);
    if (cur === undefined) return { doc: { exchanges: {}, bindings: [] }, version: 'absent' };
    try {
      const parsed = JSON.parse(cur.value) as Partial<RoutingDocument>;
      return { doc: { exchanges: parsed.exchanges ?? {}, bindings: parsed.bindings ?? [] }, version: cur.version };
    } catch (err) {
      throw new KmqError(ErrorCode.StorageError, `The cluster's routing document does not decode: ${(err as Error).message}`, { key: ROUTING_KEY }, { cause: err });
    }
  };
  const mutate = async (change: (doc: RoutingDocument) => void): Promise<void> => {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const { doc, version } = await read();
      change(doc);
      const r = await store.put(ROUTING_KEY, JSON.stringify(doc), { ifVersion: version });
      if (r.ok) return;
    }
    throw new KmqError(ErrorCode.RequestTimedOut, 'Could not update the cluster routing: too many concurrent changes', { key: ROUTING_KEY }, { retriable: true });
  };
  return {
    load: async () => {
      const { doc } = await read();
      return { exchanges: Object.values(doc.exchanges), bindings: doc.bindings };
    },
    putExchange: (e) =>
      mutate((d) => {
        d.exchanges[e.name] = e;
      }),
    deleteExchange: (name) =>
      mutate((d) => {
        delete d.exchanges[name];
      }),
    putBinding: (b) =>
      mutate((d) => {
        const key = bindingKey(b);
        if (!d.bindings.some((x) => bindingKey(x) === key)) d.bindings.push(b);
      }),
    deleteBinding: (b) =>
      mutate((d) => {
        const key = bindingKey(b);
        d.bindings = d.bindings.filter((x) => bindingKey(x) !== key);
      }),
  };
}
