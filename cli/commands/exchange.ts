import type { Command } from 'commander';
import { destinationFromWire, exchangeTypeName, formatDestination } from '../../client/index.js';
import type { BindingSpec, ExchangeTypeName } from '../../client/index.js';
import { outputOf, withBroker, withClient } from '../connect.js';
import type { CommonFlags } from '../connect.js';
import { CliError, printJson, printTable } from '../output.js';
import { collect, parseDestination, parseHeaderFlags } from './routing-args.js';

const TYPES: readonly ExchangeTypeName[] = ['direct', 'topic', 'fanout', 'headers'];

interface BindFlags extends CommonFlags {
  routingKey?: string;
  toTopic?: boolean;
  header: string[];
  match: string;
}

/** The binding `kmq bind` / `kmq unbind` describe. */
export function bindingFrom(exchange: string, destination: string, f: BindFlags): BindingSpec {
  if (destination === '') throw new CliError('DESTINATION must not be empty');
  if (f.match !== 'all' && f.match !== 'any') throw new CliError(`--match must be all or any, got "${f.match}"`);
  const headers = parseHeaderFlags('--header', f.header);
  return {
    exchange,
    destination: { kind: f.toTopic === true ? 'topic' : 'queue', name: destination },
    routingKey: f.routingKey ?? '',
    headers,
    match: f.match,
  };
}

function bindFlags(cmd: Command): Command {
  return cmd
    .option('--routing-key <key>', 'exact key (direct) or pattern (topic: * one word, # zero or more)')
    .option('--to-topic', 'DESTINATION is a topic (default: a queue)')
    .option('--header <key=value>', 'headers exchanges: a header to match (repeatable)', collect, [])
    .option('--match <all|any>', 'headers exchanges: every header must match, or one', 'all');
}

export function registerExchangeCommands(program: Command): void {
  const exchange = program.command('exchange').description('create, list and delete exchanges (routing to queues and topics)');

  withBroker(exchange.command('create <name>').description('create an exchange'))
    .requiredOption('--type <type>', 'direct | topic | fanout | headers')
    .option('--alternate <destination>', 'queue:NAME or topic:NAME that receives unroutable messages')
    .option('--if-not-exists', 'succeed when the exchange exists already')
    .action(async (name: string, f: CommonFlags & { type: string; alternate?: string; ifNotExists?: boolean }) => {
      if (!TYPES.includes(f.type as ExchangeTypeName)) throw new CliError(`--type must be direct, topic, fanout or headers, got "${f.type}"`);
      const alternate = f.alternate === undefined ? undefined : parseDestination('--alternate', f.alternate);
      await withClient(f, (c) =>
        c.admin().createExchange(name, f.type as ExchangeTypeName, { ...(alternate === undefined ? {} : { alternate }), ifNotExists: f.ifNotExists === true }),
      );
      process.stdout.write(`Created ${f.type} exchange ${name}${alternate === undefined ? '' : ` (alternate ${formatDestination(alternate)})`}\n`);
    });

  withBroker(exchange.command('list').description('list exchanges with their bindings'), true).action(async (f: CommonFlags) => {
    const list = (await withClient(f, (c) => c.admin().listExchanges())).sort((a, b) => a.name.localeCompare(b.name));
    const rows = list.map((e) => {
      const alternate = destinationFromWire(e.alternate);
      return {
        name: e.name,
        type: exchangeTypeName(e.type),
        alternate: alternate === undefined ? null : formatDestination(alternate),
        bindings: e.bindings.map((b) => ({
          destination: formatDestination(destinationFromWire(b.destination) ?? { kind: 'queue', name: '?' }),
          routingKey: b.routingKey,
          headers: b.headers,
          match: b.matchAny ? 'any' : 'all',
        })),
        routed: e.routed,
        unroutable: e.unroutable,
      };
    });
    if (outputOf(f) === 'json') {
      printJson(rows);
      return;
    }
    printTable(
      ['EXCHANGE', 'TYPE', 'ALTERNATE', 'ROUTED', 'UNROUTABLE', 'BINDINGS'],
      rows.map((r) => [
        r.name,
        r.type,
        r.alternate ?? '-',
        r.routed,
        r.unroutable,
        r.bindings
          .map((b) => {
            const hs = Object.entries(b.headers).map(([k, v]) => `${k}=${v}`);
            return `${b.destination}${b.routingKey === '' ? '' : `[${b.routingKey}]`}${hs.length === 0 ? '' : `{${b.match}:${hs.join(',')}}`}`;
          })
          .join(' ') || '-',
      ]),
    );
  });

  withBroker(exchange.command('delete <name>').description('delete an exchange and its bindings'))
    .option('--if-exists', 'succeed when the exchange does not exist')
    .action(async (name: string, f: CommonFlags & { ifExists?: boolean }) => {
      await withClient(f, (c) => c.admin().deleteExchange(name, { ifExists: f.ifExists === true }));
      process.stdout.write(`Deleted exchange ${name}\n`);
    });

  bindFlags(withBroker(program.command('bind <exchange> <destination>').description('route matching messages of an exchange to a queue (or --to-topic a topic)'))).action(
    async (exchangeName: string, destination: string, f: BindFlags) => {
      const binding = bindingFrom(exchangeName, destination, f);
      await withClient(f, (c) => c.admin().bind(binding));
      process.stdout.write(`Bound ${exchangeName} to ${formatDestination(binding.destination)}\n`);
    },
  );

  bindFlags(withBroker(program.command('unbind <exchange> <destination>').description('remove a binding (same flags as bind)'))).action(
    async (exchangeName: string, destination: string, f: BindFlags) => {
      const binding = bindingFrom(exchangeName, destination, f);
      await withClient(f, (c) => c.admin().unbind(binding));
      process.stdout.write(`Unbound ${exchangeName} from ${formatDestination(binding.destination)}\n`);
    },
  );
}
