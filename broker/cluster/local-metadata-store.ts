import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { MetadataStore, TopicRecord } from './metadata-store.js';
import type { BindingSpec, ExchangeSpec, RoutingStore } from '../routing/exchange-types.js';

/**
 * The `local` coordination store: one JSON file, `<dataDir>/meta/cluster.json`.
 *
 * Format: { version: 1, clusterId, nextProducerId, topics: { [name]: TopicRecord },
 * exchanges?: { [name]: ExchangeSpec }, bindings?: BindingSpec[] }.
 * Every change rewrites the file atomically (write a temp file, fsync, rename,
 * fsync the folder), so a crash leaves either the old or the new file. Changes
 * are serialised by the caller (the broker's event loop awaits each one).
 */
interface FileFormat {
  version: 1;
  clusterId: string;
  nextProducerId: number;
  topics: Record<string, TopicRecord>;
  exchanges?: Record<string, ExchangeSpec>;
  bindings?: BindingSpec[];
}

/** Binding identity: every field, headers in key order. */
export function bindingKey(b: BindingSpec): string {
  const headers = b.headers === undefined ? [] : Object.entries(b.headers).sort(([a], [c]) => (a < c ? -1 : a > c ? 1 : 0));
  return JSON.stringify([b.exchange, b.destination.kind, b.destination.name, b.routingKey, headers, b.match ?? 'all']);
}

export class LocalMetadataStore implements MetadataStore {
  private state: FileFormat;
  private readonly file: string;
  private queue: Promise<void> = Promise.resolve();

  private constructor(private readonly dir: string, state: FileFormat) {
    this.state = state;
    this.file = path.join(dir, 'cluster.json');
  }

  static open(dataDir: string): LocalMetadataStore {
    const dir = path.join(dataDir, 'meta');
    const file = path.join(dir, 'cluster.json');
    try {
      fs.mkdirSync(dir, { recursive: true });
      fs.rmSync(`${file}.tmp`, { force: true });
      if (!fs.existsSync(file)) {
        const store = new LocalMetadataStore(dir, { version: 1, clusterId: randomUUID(), nextProducerId: 1, topics: {} });
        store.writeSync();
        return store;
      }
      const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as FileFormat;
      if (parsed.version !== 1 || typeof parsed.topics !== 'object') {
        throw new Error(`unsupported metadata format version ${String(parsed.version)}`);
      }
      return new LocalMetadataStore(dir, parsed);
    } catch (err) {
      throw new KmqError(ErrorCode.StorageError, `Cannot open metadata ${file}: ${(err as Error).message}`, {}, { cause: err });
    }
  }

  readonly routing: RoutingStore = {
    load: async () => ({ exchanges: Object.values(this.state.exchanges ?? {}), bindings: [...(this.state.bindings ?? [])] }),
    putExchange: (e) =>
      this.mutate((s) => {
        s.exchanges = { ...(s.exchanges ?? {}), [e.name]: e };
      }),
    deleteExchange: (name) =>
      this.mutate((s) => {
        if (s.exchanges !== undefined) delete s.exchanges[name];
      }),
    putBinding: (b) =>
      this.mutate((s) => {
        const key = bindingKey(b);
        const list = s.bindings ?? [];
        if (!list.some((x) => bindingKey(x) === key)) list.push(b);
        s.bindings = list;
      }),
    deleteBinding: (b) =>
      this.mutate((s) => {
        const key = bindingKey(b);
        s.bindings = (s.bindings ?? []).filter((x) => bindingKey(x) !== key);
      }),
  };

  get clusterId(): string {
    return this.state.clusterId;
  }

  async load(): Promise<TopicRecord[]> {
    return Object.values(this.state.topics);
  }

  putTopic(topic: TopicRecord): Promise<void> {
    return this.mutate((s) => {
      s.topics[topic.name] = topic;
    });
  }

  deleteTopic(name: string): Promise<void> {
    return this.mutate((s) => {
      delete s.topics[name];
    });
  }

  async reserveProducerIds(count: number): Promise<number> {
    let first = 0;
    await this.mutate((s) => {
      first = s.nextProducerId;
      s.nextProducerId += count;
    });
    return first;
  }

  private mutate(change: (s: FileFormat) => void): Promise<void> {
    const run = this.queue.then(() => {
      const next = structuredClone(this.state);
      change(next);
      const prev = this.state;
      this.state = next;
      try {
        this.writeSync();
      } catch (err) {
        this.state = prev;
        throw err;
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private writeSync(): void {
    const tmp = `${this.file}.tmp`;
    try {
      const fd = fs.openSync(tmp, 'w');
      try {
        fs.writeSync(fd, JSON.stringify(this.state, null, 2));
        fs.fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, this.file);
      const dfd = fs.openSync(this.dir, 'r');
      try {
        fs.fsyncSync(dfd);
      } finally {
        fs.closeSync(dfd);
      }
    } catch (err) {
      throw new KmqError(ErrorCode.StorageError, `Cannot write metadata ${this.file}: ${(err as Error).message}`, {}, { cause: err });
    }
  }
}
