import readline from 'node:readline';
import type { Command } from 'commander';
import { destinationFromWire, formatDestination } from '../../client/index.js';
import type { PublishMessage, PublishResponse, PublishTarget } from '../../client/index.js';
import { lineSplitter } from '../args.js';
import { withBroker, withClient } from '../connect.js';
import type { CommonFlags } from '../connect.js';
import { CliError } from '../output.js';
import { collect, parseHeaderFlags } from './routing-args.js';

interface PublishFlags extends CommonFlags {
  exchange?: string;
  routingKey?: string;
  header: string[];
  mandatory?: boolean;
  queue?: string;
  key?: string;
  keySeparator?: string;
}

const CHUNK = 1000;
const MAX_CHUNKS_IN_FLIGHT = 16;

/** Where `kmq publish` sends, from its flags. */
export function publishTargetFrom(f: PublishFlags): PublishTarget {
  if ((f.exchange === undefined) === (f.queue === undefined)) throw new CliError('give --exchange or --queue (one of them)');
  if (f.queue !== undefined) {
    if (f.routingKey !== undefined || f.mandatory === true) throw new CliError('--routing-key and --mandatory go with --exchange, not --queue');
    if (f.queue === '') throw new CliError('--queue must not be empty');
    return { queue: f.queue };
  }
  if (f.exchange === '') throw new CliError('--exchange must not be empty');
  return { exchange: f.exchange!, routingKey: f.routingKey ?? '', headers: parseHeaderFlags('--header', f.header), mandatory: f.mandatory === true };
}

/** Messages routed per destination and dropped, over many publish answers. */
export class PublishTally {
  readonly routed = new Map<string, number>();
  dropped = 0;
  published = 0;

  add(res: PublishResponse, messages: number): void {
    this.published += messages;
    if (res.dropped) this.dropped += messages;
    const seen = new Set<string>();
    for (const r of res.routed) {
      const d = destinationFromWire(r.destination);
      if (d === undefined) continue;
      const name = formatDestination(d);
      if (seen.has(name)) continue;
      seen.add(name);
      this.routed.set(name, (this.routed.get(name) ?? 0) + messages);
    }
  }

  summary(): string {
    const routed = [...this.routed.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([d, n]) => `${d} ${n}`);
    return `Published ${this.published} message${this.published === 1 ? '' : 's'}: routed to ${routed.length === 0 ? 'nothing' : routed.join(', ')}; dropped ${this.dropped}`;
  }
}

export function registerPublishCommand(program: Command): void {
  withBroker(program.command('publish').description('publish one message per stdin line through an exchange (or straight to a queue)'))
    .option('--exchange <exchange>', 'exchange to publish through')
    .option('--routing-key <key>', 'routing key (direct and topic exchanges)')
    .option('--header <key=value>', 'header of every message; headers exchanges match on it (repeatable)', collect, [])
    .option('--mandatory', 'fail when a message matches no binding instead of dropping it')
    .option('--queue <queue>', 'publish straight to this queue')
    .option('--key <key>', 'key of every message')
    .option('--key-separator <sep>', 'split each line at the first <sep> into key and value')
    .action(async (f: PublishFlags) => {
      const target = publishTargetFrom(f);
      const split = lineSplitter(f.key, f.keySeparator);
      // Headers go on every record too, so consumers see what headers exchanges matched on.
      const headers = parseHeaderFlags('--header', f.header);
      const recordHeaders = Object.keys(headers).length > 0 ? headers : undefined;
      const toMessage = (line: string): PublishMessage => {
        const { key, value } = split(line);
        const m: PublishMessage = { value };
        if (key !== undefined) m.key = key;
        if (recordHeaders !== undefined) m.headers = recordHeaders;
        return m;
      };

      const tally = new PublishTally();
      await withClient(f, async (client) => {
        const publisher = client.publisher();
        const inFlight: Array<Promise<unknown>> = [];
        let failure: unknown;
        const send = async (chunk: PublishMessage[]): Promise<void> => {
          inFlight.push(
            publisher.publish(target, chunk).then(
              (res) => tally.add(res, chunk.length),
              (err: unknown) => {
                failure ??= err;
              },
            ),
          );
          if (inFlight.length >= MAX_CHUNKS_IN_FLIGHT) await inFlight.shift();
        };
        let chunk: PublishMessage[] = [];
        const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
        for await (const line of lines) {
          if (failure !== undefined) break;
          chunk.push(toMessage(line));
          if (chunk.length >= CHUNK) {
            await send(chunk);
            chunk = [];
          }
        }
        if (chunk.length > 0 && failure === undefined) await send(chunk);
        await Promise.all(inFlight);
        if (failure !== undefined) {
          if (tally.published > 0) process.stderr.write(`${tally.summary()}\n`);
          throw failure;
        }
      });
      process.stderr.write(`${tally.summary()}\n`);
    });
}
