import { describe, expect, it } from 'vitest';
import type { Admin } from '../../../client/admin.js';
import type { BindingSpec, ExchangeInfo } from '../../../client/queue-admin.js';
import { ErrorCode, KmqError } from '../../../lib/errors.js';
import { DestinationKind, ExchangeType } from '../../../protocol/gen/kmq/broker/v1/queues.js';
import { bindingKey, bindingsTo, desiredBindings, diffBindings, syncBindings } from './bindings.js';

const emails = { kind: 'queue' as const, name: 'shop.emails' };

function exchange(name: string, bindings: Array<{ to: string; key?: string; kind?: DestinationKind; headers?: Record<string, string>; any?: boolean }>): ExchangeInfo {
  return {
    name,
    type: ExchangeType.EXCHANGE_TOPIC,
    alternate: undefined,
    routed: 0,
    unroutable: 0,
    bindings: bindings.map((b) => ({ exchange: name, destination: { kind: b.kind ?? DestinationKind.DESTINATION_QUEUE, name: b.to }, routingKey: b.key ?? '', headers: b.headers ?? {}, matchAny: b.any ?? false })),
  };
}

/** An Admin of a broker holding `exchanges`, recording bind and unbind calls. */
function fakeAdmin(exchanges: ExchangeInfo[]): Admin & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async listExchanges() {
      return exchanges;
    },
    async bind(b: BindingSpec) {
      if (!exchanges.some((x) => x.name === b.exchange)) throw new KmqError(ErrorCode.UnknownExchange, `Unknown exchange ${b.exchange}`);
      calls.push(`bind ${b.exchange} ${b.routingKey}`);
    },
    async unbind(b: BindingSpec) {
      calls.push(`unbind ${b.exchange} ${b.routingKey}`);
    },
  } as unknown as Admin & { calls: string[] };
}

describe('bindings', () => {
  it('declared bindings name namespaced exchanges, with defaults filled in', () => {
    expect(desiredBindings('shop', emails, [{ exchange: 'notifications', routingKey: 'email.#' }, { exchange: 'h', headers: { a: '1' }, match: 'any' }])).toEqual([
      { exchange: 'shop.notifications', destination: emails, routingKey: 'email.#', headers: {}, match: 'all' },
      { exchange: 'shop.h', destination: emails, routingKey: '', headers: { a: '1' }, match: 'any' },
    ]);
    expect(desiredBindings('shop', emails, undefined)).toEqual([]);
  });

  it('reads the broker\'s bindings to one destination only', () => {
    const found = bindingsTo(
      [exchange('shop.n', [{ to: 'shop.emails', key: 'a' }, { to: 'shop.other', key: 'b' }, { to: 'shop.emails', key: 'c', kind: DestinationKind.DESTINATION_TOPIC }]), exchange('shop.m', [{ to: 'shop.emails', key: 'd' }])],
      emails,
    );
    expect(found.map((b) => `${b.exchange} ${b.routingKey}`)).toEqual(['shop.n a', 'shop.m d']);
  });

  it('keys ignore header order, and match when there are no headers', () => {
    const a: BindingSpec = { exchange: 'x', destination: emails, headers: { a: '1', b: '2' }, match: 'all' };
    const b: BindingSpec = { exchange: 'x', destination: emails, headers: { b: '2', a: '1' } };
    expect(bindingKey(a)).toBe(bindingKey(b));
    expect(bindingKey({ exchange: 'x', destination: emails, match: 'any' })).toBe(bindingKey({ exchange: 'x', destination: emails, routingKey: '' }));
    expect(bindingKey({ ...a, match: 'any' })).not.toBe(bindingKey(a));
    expect(bindingKey({ ...a, routingKey: 'k' })).not.toBe(bindingKey(a));
  });

  it('diff: bind what is missing, unbind what is not declared', () => {
    const d = (key: string): BindingSpec => ({ exchange: 'x', destination: emails, routingKey: key });
    const { bind, unbind } = diffBindings([d('a'), d('b')], [d('b'), d('c')]);
    expect(bind.map((b) => b.routingKey)).toEqual(['a']);
    expect(unbind.map((b) => b.routingKey)).toEqual(['c']);
  });

  it('sync: leaves the broker with exactly the declared set; a missing exchange is ExchangeNotFound, the rest still applied', async () => {
    const admin = fakeAdmin([exchange('shop.n', [{ to: 'shop.emails', key: 'old' }, { to: 'shop.emails', key: 'keep' }])]);
    const desired = desiredBindings('shop', emails, [
      { exchange: 'n', routingKey: 'keep' },
      { exchange: 'n', routingKey: 'new' },
      { exchange: 'later', routingKey: 'x' },
    ]);
    const r = await syncBindings(admin, desired, emails);
    expect(admin.calls).toEqual(['unbind shop.n old', 'bind shop.n new']);
    expect(r.inPlace).toBe(2);
    expect(r.problem).toEqual({ reason: 'ExchangeNotFound', message: 'Exchange shop.later not found on the broker; 1 of 3 bindings not in place', degraded: false });
  });

  it('sync with nothing to do makes no call', async () => {
    const admin = fakeAdmin([exchange('shop.n', [{ to: 'shop.emails', key: 'k' }])]);
    expect(await syncBindings(admin, desiredBindings('shop', emails, [{ exchange: 'n', routingKey: 'k' }]), emails)).toEqual({ inPlace: 1 });
    expect(admin.calls).toEqual([]);
  });
});
