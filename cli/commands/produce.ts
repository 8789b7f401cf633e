import readline from 'node:readline';
import type { Command } from 'commander';
import type { ProducerRecord, AcksMode } from '../../client/index.js';
import { intArg, lineSplitter } from '../args.js';
import { withBroker, withClient } from '../connect.js';
import type { CommonFlags } from '../connect.js';
import { CliError } from '../output.js';

interface ProduceFlags extends CommonFlags {
  key?: string;
  keySeparator?: string;
  partition?: string;
  acks: string;
  lingerMs: string;
}

const CHUNK = 1000;
const MAX_CHUNKS_IN_FLIGHT = 64;

export function registerProduceCommand(program: Command): void {
  withBroker(program.command('produce <topic>').description('send one record per stdin line'))
    .option('--key <key>', 'key of every record')
    .option('--key-separator <sep>', 'split each line at the first <sep> into key and value')
    .option('--partition <n>', 'send every record to this partition')
    .option('--acks <mode>', 'none | leader | all', 'leader')
    .option('--linger-ms <ms>', 'how long a batch waits for more records', '5')
    .action(async (topic: string, f: ProduceFlags) => {
      const split = lineSplitter(f.key, f.keySeparator);
      if (!['none', 'leader', 'all'].includes(f.acks)) throw new CliError(`--acks must be none, leader or all, got "${f.acks}"`);
      const partition = f.partition === undefined ? undefined : intArg('--partition', f.partition, 0);
      const toRecord = (line: string): ProducerRecord => {
        const { key, value } = split(line);
        const r: ProducerRecord = { value };
        if (key !== undefined) r.key = key;
        if (partition !== undefined) r.partition = partition;
        return r;
      };

      const count = await withClient(f, async (client) => {
        const producer = client.producer({ acks: f.acks as AcksMode, lingerMs: intArg('--linger-ms', f.lingerMs, 0) });
        const inFlight: Array<Promise<unknown>> = [];
        let failure: unknown;
        let sent = 0;
        const send = async (chunk: ProducerRecord[]): Promise<void> => {
          const p = producer.send(topic, chunk).then(
            () => {
              sent += chunk.length;
            },
            (err: unknown) => {
              failure ??= err;
            },
          );
          inFlight.push(p);
          if (inFlight.length >= MAX_CHUNKS_IN_FLIGHT) await inFlight.shift();
        };
        let chunk: ProducerRecord[] = [];
        const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
        for await (const line of lines) {
          if (failure !== undefined) break;
          chunk.push(toRecord(line));
          if (chunk.length >= CHUNK) {
            await send(chunk);
            chunk = [];
          }
        }
        if (chunk.length > 0 && failure === undefined) await send(chunk);
        await Promise.all(inFlight);
        await producer.close();
        if (failure !== undefined) throw failure;
        return sent;
      });
      process.stderr.write(`Produced ${count} record${count === 1 ? '' : 's'} to ${topic}\n`);
    });
}
