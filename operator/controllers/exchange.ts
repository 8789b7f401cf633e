import type { DestinationRef, ExchangeInfo, ExchangeTypeName } from '../../client/queue-admin.js';
import { destinationFromWire, exchangeTypeName, formatDestination } from '../../client/queue-admin.js';
import type { Exchange, ExchangeStatus } from '../api/v1alpha1/index.js';
import { Controller } from '../runtime/controller.js';
import type { Reconciler } from '../runtime/controller.js';
import { silentLogger } from '../../lib/logger.js';
import type { BrokerControllerOptions } from './common/broker-controller.js';
import { BROKER_CONTROLLER_WORKERS, kmqInformer, reconcilerOptions } from './common/broker-controller.js';
import { BrokerReason } from './common/broker-errors.js';
import { BrokerObjectReconciler, keysInNamespace } from './common/broker-object-reconciler.js';
import type { BrokerObjectContext, BrokerObjectHandler, EnsureOutcome } from './common/broker-object-reconciler.js';
import { brokerSideName } from './common/naming.js';

/** The status figures of an Exchange. */
export type ExchangeFigures = Omit<ExchangeStatus, 'observedGeneration' | 'conditions'>;

/** The broker destination of an Exchange's `alternate`, its name namespaced. */
export function alternateDestination(namespace: string, alternate: Exchange['spec']['alternate']): DestinationRef | undefined {
  if (alternate === undefined) return undefined;
  return { kind: alternate.kind === 'Topic' ? 'topic' : 'queue', name: brokerSideName(namespace, alternate.name) };
}

/** Where the exchange on the broker differs from the spec; neither type nor alternate can change on the broker. */
export function exchangeDrift(type: ExchangeTypeName, alternate: DestinationRef | undefined, info: ExchangeInfo): string[] {
  const out: string[] = [];
  const actualType = exchangeTypeName(info.type);
  if (actualType !== type) out.push(`spec.type is ${type} but the exchange is ${actualType}`);
  const actualAlt = destinationFromWire(info.alternate);
  const want = alternate === undefined ? 'none' : formatDestination(alternate);
  const have = actualAlt === undefined ? 'none' : formatDestination(actualAlt);
  if (want !== have) out.push(`spec.alternate is ${want} but the exchange has ${have}: the broker cannot change an exchange's alternate`);
  return out;
}

export function exchangeFigures(brokerName: string, info: ExchangeInfo): ExchangeFigures {
  return { brokerName, bindings: info.bindings.length, routed: info.routed, unroutable: info.unroutable };
}

async function find(ctx: BrokerObjectContext<Exchange>): Promise<ExchangeInfo | undefined> {
  return (await ctx.admin.listExchanges()).find((x) => x.name === ctx.brokerName);
}

/** The Exchange's steps: `<namespace>.<name>` on the broker with its type and alternate. */
export const exchangeHandler: BrokerObjectHandler<Exchange, ExchangeFigures> = {
  kind: 'Exchange',
  plural: 'exchanges',

  async ensure(ctx): Promise<EnsureOutcome<ExchangeFigures>> {
    const { obj, admin, brokerName } = ctx;
    const alternate = alternateDestination(obj.metadata.namespace ?? '', obj.spec.alternate);
    let info = await find(ctx);
    if (info === undefined) {
      await admin.createExchange(brokerName, obj.spec.type, { ...(alternate === undefined ? {} : { alternate }), ifNotExists: true });
      ctx.log.info({ brokerName, type: obj.spec.type }, 'Exchange created on the broker');
      info = await find(ctx);
      if (info === undefined) return { status: { brokerName }, problem: { reason: 'ExchangeMissing', message: `Exchange ${brokerName} was created but the broker does not list it`, degraded: true } };
    }
    const drift = exchangeDrift(obj.spec.type, alternate, info);
    return {
      status: exchangeFigures(brokerName, info),
      ...(drift.length === 0 ? {} : { problem: { reason: BrokerReason.NotAppliedByBroker, message: drift.join('; '), degraded: true } }),
    };
  },

  readyMessage(ctx, status) {
    return `Exchange ${ctx.brokerName} (${ctx.obj.spec.type}) has ${status.bindings ?? 0} binding${status.bindings === 1 ? '' : 's'}`;
  },

  async isEmpty(ctx) {
    const info = await find(ctx);
    return info === undefined || info.bindings.length === 0;
  },

  async deleteOnBroker(ctx) {
    await ctx.admin.deleteExchange(ctx.brokerName, { ifExists: true });
    ctx.log.info({ brokerName: ctx.brokerName }, 'Exchange deleted on the broker');
  },
};

/** The Exchange controller: Exchanges, re-reconciled when a BrokerCluster of their namespace changes. */
export function exchangeController(options: BrokerControllerOptions): Controller {
  const exchanges = kmqInformer<Exchange>(options, 'exchanges');
  const shared = reconcilerOptions(options, exchanges);
  const reconciler = new BrokerObjectReconciler(exchangeHandler, shared);
  const reconcile: Reconciler = options.probe ? options.probe.timed('exchange', reconciler.reconcile) : reconciler.reconcile;
  return new Controller({ name: 'exchange', workers: options.workers ?? BROKER_CONTROLLER_WORKERS, reconcile, logger: options.logger ?? silentLogger(), ...(options.rateLimiter === undefined ? {} : { rateLimiter: options.rateLimiter }) })
    .watch(exchanges)
    .watch(kmqInformer(options, 'brokerclusters'), keysInNamespace(exchanges));
}
